"""The quota limiter: bursts while the window has allowance, waits only when it is
spent, fails clearly when the wait is too long, and holds across processes."""

from __future__ import annotations

import multiprocessing
import uuid
from pathlib import Path

import pytest

from vtframework.errors import NotFoundError, QuotaExceededError
from vtframework.state import DAY, RedisState, SQLiteState
from vtframework.testing import FakeClock, FakeVirusTotal
from vtframework.vt.client import ClientConfig, VTClient
from vtframework.vt.quota import QuotaLimiter, tier_from_quotas

# 20:48 UTC: 3 h 12 min before the daily reset.
EVENING = 19675 * DAY + 20 * 3600 + 48 * 60


def limiter(state, clock, **kw) -> QuotaLimiter:
    kw.setdefault("per_minute", 4)
    kw.setdefault("per_day", 500)
    return QuotaLimiter(state, clock=clock, bucket="test", **kw)


def test_requests_pass_at_once_while_the_window_has_allowance(sqlite_state):
    clock = FakeClock(EVENING)
    quota = limiter(sqlite_state, clock, per_minute=120)
    for _ in range(30):
        quota.acquire("lookup")
    # 30 lookups on a 120-a-minute key never wait: no even pacing.
    assert clock.sleeps == [] and quota.waits == 0


def test_a_spent_window_waits_for_its_oldest_request(sqlite_state):
    clock = FakeClock(EVENING)
    quota = limiter(sqlite_state, clock, per_minute=2)
    quota.acquire()
    clock.advance(10)
    quota.acquire()
    assert quota.acquire() == pytest.approx(51)  # 60 s window + 1 s arrival margin - 10 s
    assert clock.sleeps == [pytest.approx(51)]
    assert (quota.waits, quota.waited_seconds) == (1, pytest.approx(51))


def test_a_wait_beyond_max_wait_fails_with_what_to_do(sqlite_state):
    clock = FakeClock(EVENING)
    quota = limiter(sqlite_state, clock, per_minute=2, max_wait=30)
    quota.acquire()
    quota.acquire()
    with pytest.raises(QuotaExceededError) as caught:
        quota.acquire("file 4bc00f7d")
    assert caught.value.window == "minute"
    assert str(caught.value) == (
        "file 4bc00f7d: VirusTotal per-minute quota (2 requests) is spent (QuotaExceededError); "
        "the next slot frees in 1m01s, more than the allowed quota wait of 30s; "
        "raise the allowed wait or lower the number of workers"
    )
    assert clock.sleeps == []


def test_a_spent_day_fails_at_once_and_says_when_it_resets(sqlite_state):
    clock = FakeClock(EVENING)
    quota = limiter(sqlite_state, clock, per_minute=1000, per_day=500)
    for _ in range(500):
        quota.acquire()
    with pytest.raises(QuotaExceededError) as caught:
        quota.acquire("file 4bc00f7d")
    assert caught.value.window == "day" and caught.value.retry_after == pytest.approx(3 * 3600 + 12 * 60)
    assert str(caught.value) == (
        "file 4bc00f7d: VirusTotal daily quota (500 requests) is exhausted (QuotaExceededError); "
        "it resets at 00:00 UTC (in 3h12m)"
    )
    assert clock.sleeps == []


def test_client_stops_before_the_daily_quota_is_overdrawn(fake_vt, sqlite_state):
    client = VTClient(
        ClientConfig(api_key="test-key", base_url=fake_vt.base_url, requests_per_day=2),
        sqlite_state,
        clock=FakeClock(EVENING),
    )
    client.get("/domains/tawuhoju.com")
    client.get("/ip_addresses/1.1.1.1")
    with pytest.raises(QuotaExceededError):
        client.get("/domains/haiku-os.org", subject="Domain-Name haiku-os.org")
    assert fake_vt.count("/api/v3/") == 2
    assert client.stats.errors == {"QuotaExceededError": 1}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"api_requests_hourly": {"user": {"allowed": 240}}, "api_requests_daily": {"user": {"allowed": 500}}},
         (4, 500, "public")),
        ({"api_requests_minute": {"user": {"allowed": 30}}, "api_requests_daily": {"user": {"allowed": 20000}}},
         (30, 20000, "premium")),
        ({"intelligence_downloads_monthly": {"user": {"allowed": 100}}}, (7, 700, "configured")),
    ],
)
def test_tier_from_quotas(data, expected):
    tier = tier_from_quotas(data, per_minute=7, per_day=700)
    assert (tier.per_minute, tier.per_day, tier.tier) == expected


# -- several processes, one key -------------------------------------------------------------

QUOTA, WINDOW, PROCESSES, LOOKUPS = 6, 2.0, 3, 4


def _lookups(kind: str, where: str, prefix: str, base_url: str, worker: int) -> list[str]:
    state = SQLiteState(where) if kind == "sqlite" else RedisState(where, prefix=prefix)
    config = ClientConfig(
        api_key="test-key", base_url=base_url, requests_per_minute=QUOTA, quota_window=WINDOW,
        max_quota_wait=30, max_retries=0, detect_quota=False,
    )
    outcomes = []
    with VTClient(config, state) as client:
        for i in range(LOOKUPS):
            try:
                client.get(f"/files/{worker:032x}{i:032x}")
                outcomes.append("found")
            except NotFoundError:
                outcomes.append("not found")
            except Exception as exc:  # reported back to the test, which fails on it
                outcomes.append(f"{type(exc).__name__}: {exc}")
    state.close()
    return outcomes


@pytest.mark.parametrize("kind", [pytest.param("redis", marks=pytest.mark.services), "sqlite"])
def test_processes_sharing_state_never_draw_a_429(kind, request, tmp_path: Path, samples_dir):
    if kind == "redis":
        where, prefix = request.getfixturevalue("redis_url"), f"vtf:test:{uuid.uuid4().hex}:"
    else:
        where, prefix = str(tmp_path / "shared.sqlite3"), ""
        SQLiteState(where).close()
    # The fake enforces the same 6 requests per 2-second window VirusTotal would per minute.
    with FakeVirusTotal(str(samples_dir), api_key="test-key", quota_per_minute=QUOTA, quota_window=WINDOW) as fake:
        ctx = multiprocessing.get_context("spawn")
        try:
            with ctx.Pool(PROCESSES) as pool:
                outcomes = pool.starmap(
                    _lookups, [(kind, where, prefix, fake.base_url, w) for w in range(PROCESSES)]
                )
        finally:
            if kind == "redis":
                cleanup = RedisState(where, prefix=prefix)
                for key in cleanup._redis.scan_iter(f"{prefix}*"):
                    cleanup._redis.delete(key)
                cleanup.close()
        assert [o for per_process in outcomes for o in per_process] == ["not found"] * PROCESSES * LOOKUPS
        assert fake.count("/api/v3/", status=429) == 0
        assert fake.count("/api/v3/files", status=404) == PROCESSES * LOOKUPS
