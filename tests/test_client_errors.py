"""Every way a VirusTotal request can fail reaches the caller as a typed error with a
message to act on; retries back off through the injected clock and stop in time."""

from __future__ import annotations

import io
import pickle
import socket

import pytest

from vtframework.errors import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    ConnectionFailed,
    ForbiddenError,
    MalformedResponse,
    NotFoundError,
    QuotaExceededError,
    RequestTimeout,
    TooManyRequestsError,
    TransientError,
    VTError,
    error_from_response,
)
from vtframework.testing import FakeClock
from vtframework.vt.client import ClientConfig, VTClient

SHA256 = "4bc00f7d638e042da764e8648c03c0db46700599dd4f08d117e3e9e8b538519b"
FILE = f"/files/{SHA256}"
SUBJECT = f"file {SHA256[:8]}"


class UpperBound:
    """Full jitter picks uniform(0, cap); always taking the cap makes the sleeps exact."""

    def uniform(self, low: float, high: float) -> float:
        return high


@pytest.fixture
def make(fake_vt, sqlite_state):
    clients = []

    def build(**config) -> VTClient:
        config.setdefault("api_key", "test-key")
        config.setdefault("base_url", fake_vt.base_url)
        config.setdefault("requests_per_minute", 1000)
        client = VTClient(ClientConfig(**config), sqlite_state, clock=FakeClock(), rng=UpperBound())
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close()


def api_requests(fake_vt) -> int:
    return fake_vt.count("/api/v3/")


# -- 4xx -------------------------------------------------------------------------------------


def test_missing_key_is_an_authentication_error(make, fake_vt):
    with pytest.raises(AuthenticationError) as caught:
        make(api_key="").get(FILE, subject=SUBJECT)
    assert caught.value.code == "AuthenticationRequiredError"
    assert api_requests(fake_vt) == 1


def test_wrong_key_names_the_setting_and_is_not_retried(make, fake_vt):
    with pytest.raises(AuthenticationError) as caught:
        make(api_key="wrong", key_setting="VIRUSTOTAL_DOWNLOADER_TOKEN").get(FILE, subject=SUBJECT)
    assert str(caught.value) == (
        f"{SUBJECT}: VirusTotal rejected the API key (401 WrongCredentialsError: Wrong API key); "
        "check VIRUSTOTAL_DOWNLOADER_TOKEN"
    )
    assert api_requests(fake_vt) == 1


def test_forbidden_download_says_which_privilege_is_missing(make, fake_vt):
    fake_vt.add_route(
        "GET", f"/files/{SHA256}/download", 403,
        {"error": {"code": "ForbiddenError", "message": "You are not authorized to perform the requested operation"}},
    )
    with pytest.raises(ForbiddenError) as caught:
        make().download(f"/files/{SHA256}/download", io.BytesIO(), subject=SUBJECT)
    assert caught.value.status == 403
    assert "the API key may lack the download (premium) privilege" in str(caught.value)


def test_not_found_keeps_virustotals_message(make):
    with pytest.raises(NotFoundError) as caught:
        make().get("/domains/unknown.example", subject="domain unknown.example")
    assert str(caught.value).startswith(
        'domain unknown.example: not found on VirusTotal (404 NotFoundError: Domain "unknown.example" not found)'
    )


def test_invalid_argument_is_a_bad_request(make, fake_vt):
    fake_vt.add_route(
        "GET", "/ip_addresses/999.1.1.1", 400,
        {"error": {"code": "InvalidArgumentError", "message": "Invalid IP address"}},
    )
    with pytest.raises(BadRequestError) as caught:
        make().get("/ip_addresses/999.1.1.1", subject="IPv4-Addr 999.1.1.1")
    assert (caught.value.status, caught.value.code) == (400, "InvalidArgumentError")
    assert "Invalid IP address" in str(caught.value)


def test_already_exists_is_a_conflict(make, fake_vt):
    fake_vt.add_route(
        "POST", "/intelligence/hunting_rulesets", 409,
        {"error": {"code": "AlreadyExistsError", "message": "Ruleset already exists"}},
    )
    with pytest.raises(ConflictError) as caught:
        make().post("/intelligence/hunting_rulesets", json={"data": {}}, subject="ruleset demo")
    assert caught.value.status == 409


# -- 429 -------------------------------------------------------------------------------------


def test_too_many_requests_is_retried_with_exponential_backoff(make, fake_vt):
    fake_vt.inject("too_many_requests", count=2)
    client = make(backoff_base=1.0)
    assert client.get(FILE)["data"]["id"] == SHA256
    assert client.clock.sleeps == [1.0, 2.0]
    assert client.stats.retries == 2 and api_requests(fake_vt) == 3


def test_too_many_requests_gives_up_after_max_retries(make, fake_vt):
    fake_vt.inject("too_many_requests", count=10)
    client = make(max_retries=3, backoff_base=0.5, backoff_max=1.5)
    with pytest.raises(TooManyRequestsError) as caught:
        client.get(FILE, subject=SUBJECT)
    assert client.clock.sleeps == [0.5, 1.0, 1.5]
    assert api_requests(fake_vt) == 4
    assert "after 3 retries" in str(caught.value)


def test_post_is_retried_on_too_many_requests(make, fake_vt):
    fake_vt.add_route("POST", "/urls", 200, {"data": {"type": "analysis", "id": "u-1-2"}})
    fake_vt.inject("too_many_requests", count=1)
    assert make().post("/urls", data={"url": "http://example.com/"})["data"]["id"] == "u-1-2"
    assert api_requests(fake_vt) == 2


def test_upload_retried_after_too_many_requests_resends_the_whole_file(make, fake_vt):
    fake_vt.add_route("POST", "/files", 200, {"data": {"type": "analysis", "id": "abc"}})
    fake_vt.inject("too_many_requests", count=1)
    payload = b"MZ" + bytes(range(256)) * 20
    make().post("/files", files={"file": ("sample.exe", io.BytesIO(payload))})
    first, second = [r for r in fake_vt.requests if r.method == "POST"]
    assert payload in first.body and payload in second.body


def test_quota_exceeded_waits_for_the_window_then_succeeds(make, fake_vt):
    fake_vt.inject("quota_exceeded", count=1)
    client = make()
    assert client.get(FILE)["data"]["id"] == SHA256
    assert client.clock.sleeps == [61.0]  # the minute window plus the arrival margin
    assert client.stats.quota_waits == 1 and client.stats.retries == 0


def quotas(daily_used: int, daily_allowed: int = 500, monthly_used: int = 12) -> dict:
    # VirusTotal's overall_quotas shape per the API reference (no recording of a spent quota exists).
    return {"data": {
        "api_requests_hourly": {"user": {"allowed": 240, "used": 3}},
        "api_requests_daily": {"user": {"allowed": daily_allowed, "used": daily_used}},
        "api_requests_monthly": {"user": {"allowed": 15500, "used": monthly_used}},
    }}


def test_quota_exceeded_after_a_full_window_names_the_spent_day(make, fake_vt):
    fake_vt.inject("quota_exceeded", count=5, path_prefix="/files")
    fake_vt.add_route("GET", "/users/test-key/overall_quotas", 200, quotas(daily_used=500))
    client = make()
    with pytest.raises(QuotaExceededError) as caught:
        client.get(FILE, subject=SUBJECT)
    assert caught.value.window == "day" and caught.value.status == 429
    assert "daily quota (500 requests, 500 used) is exhausted" in str(caught.value)
    assert "resets at 00:00 UTC (in " in str(caught.value)
    assert fake_vt.count("/api/v3/files") == 2


def test_two_minute_429s_with_room_left_are_not_called_a_spent_day(make, fake_vt):
    fake_vt.inject("quota_exceeded", count=5, path_prefix="/files")
    fake_vt.add_route("GET", "/users/test-key/overall_quotas", 200, quotas(daily_used=40))
    with pytest.raises(QuotaExceededError) as caught:
        make().get(FILE, subject=SUBJECT)
    message = str(caught.value)
    assert caught.value.window == "minute"
    assert "daily quota (" not in message and "00:00 UTC" not in message
    assert "something else is spending this key's per-minute quota" in message


def test_a_spent_month_says_when_it_frees(make, fake_vt):
    fake_vt.inject("quota_exceeded", count=5, path_prefix="/files")
    fake_vt.add_route("GET", "/users/test-key/overall_quotas", 200, quotas(daily_used=40, monthly_used=15500))
    with pytest.raises(QuotaExceededError) as caught:
        make().get(FILE, subject=SUBJECT)
    assert caught.value.window == "month"
    assert "monthly quota (15500 requests, 15500 used) is exhausted" in str(caught.value)
    assert "it frees on the first of the month at 00:00 UTC (in 16d01h)" in str(caught.value)


def test_when_virustotal_does_not_say_which_quota_ran_out_neither_do_we(make, fake_vt):
    fake_vt.inject("quota_exceeded", count=5)  # the quota endpoint is refused too
    with pytest.raises(QuotaExceededError) as caught:
        make().get(FILE, subject=SUBJECT)
    message = str(caught.value)
    assert caught.value.window == "unknown" and caught.value.retry_after is None
    assert "daily quota exhausted" not in message and "did not say which" in message


def test_quota_exceeded_beyond_the_allowed_wait_fails_at_once(make, fake_vt):
    fake_vt.inject("quota_exceeded", count=1)
    client = make(max_quota_wait=10)
    with pytest.raises(QuotaExceededError):
        client.get(FILE, subject=SUBJECT)
    assert client.clock.sleeps == [] and api_requests(fake_vt) == 1


# -- 5xx, timeouts, connections ----------------------------------------------------------------


def test_transient_error_is_retried_then_raised(make, fake_vt):
    fake_vt.inject("503", count=10)
    client = make(max_retries=3)
    with pytest.raises(TransientError) as caught:
        client.get(FILE, subject=SUBJECT)
    assert client.clock.sleeps == [1.0, 2.0, 4.0]
    assert (caught.value.status, caught.value.code) == (503, "TransientError")
    assert str(caught.value).startswith(f"{SUBJECT}: VirusTotal had a temporary failure (503 TransientError")


@pytest.mark.parametrize(("fault", "code"), [("500", "ServerError"), ("504", "DeadlineExceededError")])
def test_server_errors_recover_on_retry(make, fake_vt, fault, code):
    fake_vt.inject(fault, count=1)
    client = make()
    assert client.get(FILE)["data"]["id"] == SHA256
    assert client.stats.retries == 1


def test_retry_budget_stops_retries_early(make, fake_vt):
    fake_vt.inject("503", count=10)
    client = make(max_retries=10, retry_budget=2.5)
    with pytest.raises(TransientError) as caught:
        client.get(FILE)
    # 1 s, then 2 s more would pass the 2.5 s budget.
    assert client.clock.sleeps == [1.0] and caught.value.retries == 1


def test_post_is_not_retried_after_a_server_error(make, fake_vt):
    fake_vt.inject("503", count=1)
    with pytest.raises(TransientError):
        make().post("/urls", data={"url": "http://example.com/"})
    assert api_requests(fake_vt) == 1


def test_timeout_is_a_typed_error(make, fake_vt):
    fake_vt.inject("hang", count=1)
    with pytest.raises(RequestTimeout) as caught:
        make(read_timeout=0.3, max_retries=0).get(FILE, subject=SUBJECT)
    assert caught.value.code == "Timeout" and caught.value.status is None
    assert "did not answer in time (Timeout: no answer within 0.3s)" in str(caught.value)


def test_get_is_retried_after_a_timeout(make, fake_vt):
    fake_vt.inject("hang", count=1)
    assert make(read_timeout=0.3).get(FILE)["data"]["id"] == SHA256
    assert api_requests(fake_vt) == 2


def test_post_is_not_retried_after_a_timeout(make, fake_vt):
    fake_vt.inject("hang", count=1, path_prefix="/urls")
    with pytest.raises(RequestTimeout):
        make(read_timeout=0.3).post("/urls", data={"url": "http://example.com/"})
    assert fake_vt.count("/api/v3/urls") == 1


def test_connection_reset_is_retried_then_raised(make, fake_vt):
    fake_vt.inject("reset", count=10)
    client = make(max_retries=2)
    with pytest.raises(ConnectionFailed) as caught:
        client.get(FILE, subject=SUBJECT)
    assert caught.value.code == "ConnectionError" and caught.value.request_sent
    assert str(caught.value).startswith(f"{SUBJECT}: could not talk to VirusTotal")
    assert api_requests(fake_vt) == 3


def test_post_is_not_retried_after_a_reset(make, fake_vt):
    fake_vt.inject("reset", count=1)
    with pytest.raises(ConnectionFailed):
        make().post("/urls", data={"url": "http://example.com/"})
    assert api_requests(fake_vt) == 1


def test_refused_connection_is_retried_even_for_post(make):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    client = make(base_url=f"http://127.0.0.1:{closed_port}/api/v3", max_retries=2)
    with pytest.raises(ConnectionFailed) as caught:
        client.post("/urls", data={"url": "http://example.com/"})
    assert not caught.value.request_sent
    assert client.clock.sleeps == [1.0, 2.0]


# -- answers that are not VirusTotal's ----------------------------------------------------------


def test_broken_json_is_a_malformed_response(make, fake_vt):
    fake_vt.inject("malformed", count=1)
    with pytest.raises(MalformedResponse) as caught:
        make().get(FILE, subject=SUBJECT)
    assert caught.value.status == 200
    assert "body that is not JSON" in str(caught.value)


@pytest.mark.parametrize(
    ("body", "headers"),
    [({"result": "ok"}, None), ("<html>Please log in to the proxy</html>", {"Content-Type": "text/html"})],
)
def test_success_without_an_envelope_is_never_an_empty_success(make, fake_vt, body, headers):
    fake_vt.add_route("GET", "/domains/example.com", 200, body, headers)
    with pytest.raises(MalformedResponse):
        make().get("/domains/example.com")


def test_errors_never_show_the_api_key(make):
    # The key sits in this path and the fake echoes unknown paths in its message.
    with pytest.raises(NotFoundError) as caught:
        make().get("/users/test-key/overall_quotas", cache=False)
    assert "test-key" not in str(caught.value)


# -- mapping ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "cls", "code"),
    [
        (401, b'{"error": {"code": "UserNotActiveError", "message": "x"}}', AuthenticationError, "UserNotActiveError"),
        (400, b'{"error": {"code": "NotAvailableYet", "message": "x"}}', BadRequestError, "NotAvailableYet"),
        (429, b'{"error": {"code": "QuotaExceededError", "message": "x"}}', QuotaExceededError, "QuotaExceededError"),
        (429, b'{"error": {"code": "TooManyRequestsError", "message": "x"}}', TooManyRequestsError, "TooManyRequestsError"),
        (504, b'{"error": {"code": "DeadlineExceededError", "message": "x"}}', TransientError, "DeadlineExceededError"),
        (502, b"<html>Bad Gateway</html>", TransientError, "ServerError"),
        (418, b"teapot", VTError, "ClientError"),
        (404, {"error": {"code": "NotFoundError", "message": "x"}}, NotFoundError, "NotFoundError"),
    ],
)
def test_error_from_response_maps_code_and_status(status, body, cls, code):
    err = error_from_response(status, body, "file abc")
    assert type(err) is cls and err.code == code and err.status == status and err.subject == "file abc"


def test_errors_cross_process_boundaries_intact():
    err = error_from_response(403, b'{"error": {"code": "ForbiddenError", "message": "no"}}', "f", privilege="x")
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is ForbiddenError and str(copy) == str(err)
