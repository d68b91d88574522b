"""The client against answers it must not trust, and the secrets it must not let out."""

from __future__ import annotations

import json
import logging

import pytest

from vtframework.errors import (
    AuthenticationError,
    ConfigError,
    ConnectionFailed,
    InputError,
    MalformedResponse,
    QuotaExceededError,
    RequestTimeout,
)
from vtframework.testing import FakeClock
from vtframework.vt.client import ClientConfig, VTClient
from vtframework.vt.quota import QuotaLimiter
from vtframework.vt.redaction import install, register_secret

SHA256 = "4bc00f7d638e042da764e8648c03c0db46700599dd4f08d117e3e9e8b538519b"
FILE = f"/files/{SHA256}"
KEY = "test-key"


@pytest.fixture
def make(fake_vt, sqlite_state):
    clients = []

    def build(**config) -> VTClient:
        config.setdefault("api_key", KEY)
        config.setdefault("base_url", fake_vt.base_url)
        config.setdefault("requests_per_minute", 1000)
        config.setdefault("backoff_base", 0.01)
        client = VTClient(ClientConfig(**config), sqlite_state, clock=FakeClock())
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close()


def test_a_body_cut_short_is_retried_like_any_transient_fault(make, fake_vt):
    fake_vt.inject("truncated", count=1, path_prefix=FILE)
    assert make().get(FILE)["data"]["id"] == SHA256
    assert fake_vt.count(f"/api/v3{FILE}") == 2


def test_a_post_cut_short_is_not_sent_again(make, fake_vt):
    fake_vt.inject("truncated", count=1, path_prefix="/urls")
    with pytest.raises(ConnectionFailed, match="answer broke off"):
        make().post("/urls", data={"url": "http://example.com/"})
    assert fake_vt.count("/api/v3/urls") == 1


@pytest.mark.parametrize("kind", ["data_list", "data_int", "wrong_object", "deep_json"])
def test_a_malformed_answer_is_never_cached(make, fake_vt, kind):
    fake_vt.inject(kind, count=1, path_prefix=FILE)
    client = make(max_retries=0)
    with pytest.raises(MalformedResponse):
        client.get(FILE, subject="file 4bc00f7d")
    # The next lookup asks again (and gets the real answer), instead of replaying the bad one for a day.
    assert client.get(FILE)["data"]["id"] == SHA256
    assert fake_vt.count(f"/api/v3{FILE}") == 2


def test_a_cached_answer_that_is_not_the_object_asked_for_is_not_reused(make, fake_vt, sqlite_state):
    client = make()
    client.get(FILE)
    # What an older version (or another program sharing the state) left: a list where an object belongs.
    (key,) = [row[0] for row in sqlite_state._conn().execute("SELECT key FROM cache")]
    sqlite_state.cache_set(key, {"status": 200, "body": {"data": [1, 2]}}, 3600, client.clock.time())
    assert client.get(FILE)["data"]["id"] == SHA256
    assert fake_vt.count(f"/api/v3{FILE}") == 2


def test_an_answer_for_another_file_is_refused(make, fake_vt, samples_dir):
    other = json.loads((samples_dir / "file_clean_b8e7a581.json").read_bytes())
    fake_vt.add_route("GET", FILE, 200, other)
    with pytest.raises(MalformedResponse, match="the answer is about file 'b8e7a581"):
        make().get(FILE, subject="file 4bc00f7d")


def test_a_trickling_answer_is_cut_at_the_deadline(make, fake_vt):
    fake_vt.trickle_seconds = 0.2
    fake_vt.inject("trickle", count=5, path_prefix=FILE)
    with pytest.raises(RequestTimeout) as caught:
        make(request_deadline=0.5, read_timeout=5, max_retries=0).get(FILE, subject="file 4bc00f7d")
    assert "no complete answer within 0.5s" in str(caught.value)


def test_no_value_escapes_its_path_segment(make, fake_vt):
    client = make(max_retries=0)
    with pytest.raises(InputError, match="'..' segment"):
        client.get("/files/../users/test-key/overall_quotas")
    with pytest.raises(Exception):
        client.get("/domains/evil.example?x=1#frag")
    assert [r.path for r in fake_vt.requests] == ["/api/v3/domains/evil.example?x=1#frag"]
    assert fake_vt.requests[0].query == ""


@pytest.mark.parametrize("key", ["secret-key-1\n", "  secret-key-1\r\n"])
def test_a_key_with_surrounding_whitespace_is_stripped(key):
    assert ClientConfig(api_key=key).api_key == "secret-key-1"


def test_a_key_with_whitespace_inside_is_refused_by_name_without_showing_it():
    with pytest.raises(ConfigError) as caught:
        ClientConfig(api_key="secret\nkey-1", key_setting="VIRUSTOTAL_LIVEHUNT_TOKEN")
    assert "VIRUSTOTAL_LIVEHUNT_TOKEN holds whitespace or control characters" in str(caught.value)
    assert "secret" not in str(caught.value)


def test_a_key_virustotal_echoes_goes_no_further(make, fake_vt):
    fake_vt.inject("echo_key", count=1, path_prefix=FILE)
    with pytest.raises(Exception) as caught:
        make().get(FILE)
    assert KEY not in str(caught.value) and "<redacted>" in str(caught.value)
    fake_vt.inject("echo_key_200", count=1, path_prefix=FILE)
    answer = make().get(FILE, cache=False)
    assert KEY not in json.dumps(answer) and "report-for-<redacted>.exe" in json.dumps(answer)


def test_every_log_record_is_redacted_third_party_loggers_included(caplog):
    install()
    register_secret("log-secret-123")
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("urllib3.connectionpool").debug('"GET /api/v3/users/%s/overall_quotas" 200', "log-secret-123")
        try:
            raise ValueError("boom with log-secret-123")
        except ValueError:
            logging.getLogger("somebody.else").exception("failed for %s", "log-secret-123")
    assert "log-secret-123" not in caplog.text
    assert "/users/<redacted>/overall_quotas" in caplog.text and "boom with <redacted>" in caplog.text


def test_error_text_from_virustotal_cannot_drive_a_terminal(make, fake_vt):
    fake_vt.inject("ansi_400", count=1, path_prefix=FILE)
    with pytest.raises(Exception) as caught:
        make().get(FILE)
    text = str(caught.value)
    assert "\x1b" not in text and "\n" not in text and "\r" not in text and "\x07" not in text


def test_a_long_error_text_is_capped(make, fake_vt):
    fake_vt.add_route("GET", FILE, 400, {"error": {"code": "BadRequestError", "message": "x" * 100_000}})
    with pytest.raises(Exception) as caught:
        make().get(FILE)
    assert len(str(caught.value)) < 600


def test_a_rejected_key_is_remembered_and_nothing_more_is_sent(fake_vt, sqlite_state):
    client = VTClient(ClientConfig(api_key="wrong-key", base_url=fake_vt.base_url), sqlite_state, clock=FakeClock())
    with pytest.raises(AuthenticationError):
        client.get(FILE)
    with pytest.raises(AuthenticationError, match="rejected earlier in this run"):
        client.get("/domains/github.com")
    assert len(fake_vt.requests) == 1


def test_the_quota_is_read_lazily_so_an_answer_from_the_cache_costs_nothing(fake_vt, sqlite_state):
    fake_vt.add_route("GET", f"/users/{KEY}/overall_quotas", 200,
                      {"data": {"api_requests_daily": {"user": {"allowed": 1000, "used": 0}}}})
    warm = VTClient(ClientConfig(api_key=KEY, base_url=fake_vt.base_url), sqlite_state, clock=FakeClock())
    warm.start_lazily()
    warm.get(FILE)
    assert [r.path for r in fake_vt.requests] == [f"/api/v3/users/{KEY}/overall_quotas", f"/api/v3{FILE}"]
    fake_vt.clear_log()
    rerun = VTClient(ClientConfig(api_key=KEY, base_url=fake_vt.base_url), sqlite_state, clock=FakeClock())
    rerun.start_lazily()
    rerun.get(FILE)
    assert fake_vt.requests == []


def test_the_quota_message_counts_the_time_already_waited(sqlite_state):
    class Contended(FakeClock):
        """While this process sleeps for a slot, another one sharing the state takes it."""

        def sleep(self, seconds: float) -> None:
            super().sleep(seconds)
            sqlite_state.quota_try_acquire("waited", self.time(), 1, 100, 61.0)

    quota = QuotaLimiter(sqlite_state, per_minute=1, per_day=100, clock=Contended(), max_wait=90, bucket="waited")
    quota.acquire()
    with pytest.raises(QuotaExceededError) as caught:
        quota.acquire()
    message = str(caught.value)
    assert "the next slot frees in 1m01s, but after 1m01s of waiting only 29s of the allowed quota wait (1m30s) is left" in message
    assert "more than the allowed quota wait" not in message


def test_paths_shaped_like_an_object_that_are_not_one_are_not_held_to_it(make, fake_vt, samples_dir):
    fake_vt.add_route("GET", "/files/upload_url", 200, (samples_dir / "files_upload_url.json").read_bytes())
    answer = make().get("/files/upload_url", cache=False)
    assert answer["data"].startswith("https://www.virustotal.com/_ah/upload/")
