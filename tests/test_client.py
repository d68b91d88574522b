"""The VirusTotal client: every wrapped endpoint replayed from real responses, plus
what users notice on the wire (headers, caching, downloads, quota detection)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging

import pytest

from vtframework.errors import AuthenticationError, DownloadTooLarge, NotFoundError
from vtframework.testing import FakeClock, FakeVirusTotal, default_vcr_config
from vtframework.vt.client import ClientConfig, VTClient, url_id

MALICIOUS_SHA256 = "4bc00f7d638e042da764e8648c03c0db46700599dd4f08d117e3e9e8b538519b"


@pytest.fixture
def vt(sqlite_state, clock) -> VTClient:
    client = VTClient(ClientConfig(api_key="test-key", requests_per_minute=1000), sqlite_state, clock=clock)
    yield client
    client.close()


def fake_client(fake: FakeVirusTotal, state, clock=None, **config) -> VTClient:
    config.setdefault("api_key", "test-key")
    config.setdefault("requests_per_minute", 1000)
    return VTClient(ClientConfig(base_url=fake.base_url, **config), state, clock=clock or FakeClock())


def sample(samples_dir, name: str) -> dict:
    return json.loads((samples_dir / name).read_bytes())


# -- replayed from cassettes --------------------------------------------------------------


@pytest.mark.vcr
def test_get_file(vt, samples_dir):
    answer = vt.get(f"/files/{MALICIOUS_SHA256}", subject=f"file {MALICIOUS_SHA256}")
    assert answer == sample(samples_dir, "file_malicious_4bc00f7d.json")
    assert answer["data"]["attributes"]["last_analysis_stats"]["malicious"] == 47


@pytest.mark.vcr
def test_get_ip_address(vt):
    answer = vt.get("/ip_addresses/1.1.1.1")
    assert answer["data"]["attributes"]["as_owner"] == "Cloudflare, Inc."


@pytest.mark.vcr
def test_get_domain(vt):
    answer = vt.get("/domains/tawuhoju.com")
    assert answer["data"]["type"] == "domain"
    assert answer["data"]["attributes"]["last_analysis_stats"]["malicious"] == 6


@pytest.mark.vcr
def test_get_url(vt):
    answer = vt.get(f"/urls/{url_id('http://example.com/')}")
    assert answer["data"]["id"] == hashlib.sha256(b"http://example.com/").hexdigest()


@pytest.mark.vcr
def test_get_analysis(vt):
    answer = vt.get("/analyses/u-2a1b402420ef46577471cdc7409b0fa2c6a204db316e59ade2d805435489a067-1569484202")
    assert answer["data"]["attributes"]["status"] == "completed"


@pytest.mark.vcr
def test_get_yara_ruleset(vt):
    answer = vt.get("/yara_rulesets/00888403c4")
    assert "rule win_kerrdown_auto" in answer["data"]["attributes"]["rules"]


@pytest.mark.vcr
def test_get_domain_resolutions(vt):
    answer = vt.get("/domains/github.com/resolutions")
    assert answer["data"][0]["type"] == "resolution"
    assert answer["meta"]["cursor"]


@pytest.mark.vcr
def test_post_url_analyse(vt):
    # The recorded client sent an empty JSON object; body matching holds us to the same.
    answer = vt.post(f"/urls/{url_id('http://example.com/')}/analyse", json={})
    assert answer["data"]["type"] == "analysis"


@pytest.mark.vcr
def test_not_found(vt):
    missing = "fffdddd2c3dc06d147c5ddddddd5c7e6acda4d1f1369fbc994cddd3c19a2de88"
    with pytest.raises(NotFoundError) as caught:
        vt.get(f"/files/{missing}", subject=f"file {missing}")
    assert caught.value.status == 404
    assert str(caught.value).startswith(f"file {missing}: not found on VirusTotal")


@pytest.mark.vcr
def test_wrong_api_key(vt):
    with pytest.raises(AuthenticationError) as caught:
        vt.get(f"/files/{MALICIOUS_SHA256}")
    assert caught.value.code == "WrongCredentialsError"
    assert "check VIRUSTOTAL_TOKEN" in str(caught.value)


@pytest.mark.vcr
def test_download_follows_redirect(vt):
    dest = io.BytesIO()
    sha256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
    written = vt.download(f"/files/{sha256}/download", dest)
    assert written == len(dest.getvalue()) > 0
    assert dest.getvalue().startswith(b"MZ")


def test_cassettes_hold_no_api_key(samples_dir):
    cassettes = samples_dir.parent / "cassettes"
    for path in cassettes.rglob("*.yaml"):
        text = path.read_text()
        assert "test-key" not in text, path


# -- URL identifiers ------------------------------------------------------------------------


def test_url_id_is_unpadded_urlsafe_base64():
    assert url_id("http://example.com/") == "aHR0cDovL2V4YW1wbGUuY29tLw"
    # Standard base64 would put '+' and '/' here, which VirusTotal does not accept in a path.
    awkward = "http://example.com/?q=>>>???"
    assert "/" in base64.b64encode(awkward.encode()).decode()
    ident = url_id(awkward)
    assert "=" not in ident and "+" not in ident and "/" not in ident
    assert base64.urlsafe_b64decode(ident + "=" * (-len(ident) % 4)).decode() == awkward


# -- against the fake server ------------------------------------------------------------------


def test_every_request_carries_key_accept_and_tool(fake_vt, sqlite_state):
    client = fake_client(fake_vt, sqlite_state, tool="vtframework-test")
    client.get(f"/files/{MALICIOUS_SHA256}")
    headers = fake_vt.requests[-1].headers
    assert headers["x-apikey"] == "<redacted>"
    assert headers["accept"] == "application/json"
    assert headers["x-tool"] == "vtframework-test"


def test_lookup_by_any_hash(fake_vt, sqlite_state, samples_dir):
    attrs = sample(samples_dir, "file_malicious_4bc00f7d.json")["data"]["attributes"]
    client = fake_client(fake_vt, sqlite_state)
    for digest in (attrs["md5"], attrs["sha1"], attrs["sha256"].upper()):
        assert client.get(f"/files/{digest}")["data"]["id"] == MALICIOUS_SHA256


def test_cache_hit_costs_no_request_and_no_quota(fake_vt, sqlite_state):
    client = fake_client(fake_vt, sqlite_state, requests_per_minute=1, max_quota_wait=0)
    first = client.get(f"/files/{MALICIOUS_SHA256}")
    # The one slot is spent: a second request would raise QuotaExceededError, a cache hit does not.
    assert client.get(f"/files/{MALICIOUS_SHA256}") == first
    assert fake_vt.count("/api/v3/files") == 1
    assert client.stats.requests == 1 and client.stats.cache_hits == 1


def test_track_counts_one_enrichment(fake_vt, sqlite_state):
    client = fake_client(fake_vt, sqlite_state)
    client.get("/domains/tawuhoju.com")
    with client.track() as usage:
        client.get("/domains/tawuhoju.com")
        client.get("/ip_addresses/138.128.150.133")
    assert (usage.requests, usage.cache_hits) == (1, 1)


def test_download_streams_large_file_without_key_to_storage(fake_vt, sqlite_state):
    sha256 = "ab" * 32
    size = 12 * (1 << 20) + 7
    fake_vt.add_download(sha256, size)
    # One slot and no waiting: the storage fetch is no VirusTotal API call and must not need one.
    client = fake_client(fake_vt, sqlite_state, requests_per_minute=1, max_quota_wait=0)
    digest = hashlib.sha256()

    class Sink:
        def write(self, chunk: bytes) -> None:
            digest.update(chunk)

    assert client.download(f"/files/{sha256}/download", Sink(), subject=f"file {sha256}") == size
    expected = hashlib.sha256(b"".join(fake_vt.iter_payload(sha256))).hexdigest()
    assert digest.hexdigest() == expected
    api, storage = fake_vt.requests
    assert api.status == 302 and "x-apikey" in api.headers
    assert storage.path.startswith("/_storage/") and "x-apikey" not in storage.headers


def test_download_refuses_more_than_max_bytes(fake_vt, sqlite_state):
    sha256 = "cd" * 32
    fake_vt.add_download(sha256, 3 << 20)
    client = fake_client(fake_vt, sqlite_state)
    with pytest.raises(DownloadTooLarge) as caught:
        client.download(f"/files/{sha256}/download", io.BytesIO(), subject=f"file {sha256}", max_bytes=1 << 20)
    assert f"file {sha256}: the download is larger than the allowed maximum" in str(caught.value)


# -- quota detection --------------------------------------------------------------------------

# VirusTotal's answer shape per the API reference (no recording of this endpoint is available).
PUBLIC_QUOTAS = {
    "data": {
        "api_requests_hourly": {"user": {"allowed": 240, "used": 0}},
        "api_requests_daily": {"user": {"allowed": 500, "used": 12}},
        "api_requests_monthly": {"user": {"allowed": 1000000000, "used": 12}},
    }
}
PREMIUM_QUOTAS = {
    "data": {
        "api_requests_minute": {"user": {"allowed": 1000, "used": 0}},
        "api_requests_daily": {"user": {"allowed": 300000, "used": 0}, "group": {"allowed": 200000, "used": 0}},
    }
}


@pytest.mark.parametrize(
    ("answer", "tier", "per_minute", "per_day"),
    [(PUBLIC_QUOTAS, "public", 4, 500), (PREMIUM_QUOTAS, "premium", 1000, 200000)],
)
def test_start_adopts_the_keys_real_quota(fake_vt, sqlite_state, answer, tier, per_minute, per_day, caplog):
    fake_vt.add_route("GET", "/users/test-key/overall_quotas", 200, answer)
    client = fake_client(fake_vt, sqlite_state, requests_per_minute=50, requests_per_day=5000)
    with caplog.at_level(logging.INFO, logger="vtframework.client"):
        detected = client.start()
    assert (detected.tier, detected.per_minute, detected.per_day) == (tier, per_minute, per_day)
    assert (client.limiter.per_minute, client.limiter.per_day) == (per_minute, per_day)
    assert f"VirusTotal {tier} key detected" in caplog.text
    assert "test-key" not in caplog.text


def test_start_keeps_configured_quota_when_detection_is_refused(fake_vt, sqlite_state, caplog):
    fake_vt.add_route(
        "GET", "/users/test-key/overall_quotas", 403,
        {"error": {"code": "ForbiddenError", "message": "You are not authorized to perform the requested operation"}},
    )
    client = fake_client(fake_vt, sqlite_state, requests_per_minute=30, requests_per_day=900)
    with caplog.at_level(logging.WARNING, logger="vtframework.client"):
        detected = client.start()
    assert (detected.detected, client.limiter.per_minute, client.limiter.per_day) == (False, 30, 900)
    assert "keeping the configured 30 a minute, 900 a day" in caplog.text


def test_start_fails_fast_on_a_rejected_key(fake_vt, sqlite_state):
    client = fake_client(fake_vt, sqlite_state, api_key="wrong")
    with pytest.raises(AuthenticationError):
        client.start()


def test_cassette_config_scrubs_the_key_from_headers_and_paths():
    from vcr.request import Request

    config = default_vcr_config()
    assert ("x-apikey", "<VIRUSTOTAL_API_KEY>") in config["filter_headers"]
    request = Request("GET", "https://www.virustotal.com/api/v3/users/s3cr3t/overall_quotas", None, {})
    assert "s3cr3t" not in config["before_record_request"](request).uri
