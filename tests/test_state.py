"""The state stores: one contract, two backends (SQLite file, Redis)."""

from __future__ import annotations

import multiprocessing
import socket
import threading
import uuid
from pathlib import Path

import pytest

from vtframework.errors import ConfigError
from vtframework.state import DAY, RedisState, SQLiteState, open_state

# Noon UTC on 2023-11-14: 12 hours from the daily reset.
NOON = 19675 * DAY + 12 * 3600


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.services)])
def store(request):
    return request.getfixturevalue(f"{request.param}_state")


def test_cache_value_lives_until_its_ttl(store):
    store.cache_set("GET /files/abc", {"data": {"id": "abc"}}, ttl=60, now=NOON)
    assert store.cache_get("GET /files/abc", NOON + 59.9) == {"data": {"id": "abc"}}
    assert store.cache_get("GET /files/abc", NOON + 60) is None
    assert store.cache_get("GET /files/other", NOON) is None


def test_kv_map_keeps_values_without_expiry(store):
    store.kv_set("livehunt", "indicator--1", {"ruleset": "6360290934161408"})
    store.kv_set("livehunt", "indicator--2", {"ruleset": "5551558908215296"})
    store.kv_set("other", "indicator--1", "x")
    assert store.kv_get("livehunt", "indicator--1") == {"ruleset": "6360290934161408"}
    store.kv_delete("livehunt", "indicator--2")
    assert store.kv_items("livehunt") == {"indicator--1": {"ruleset": "6360290934161408"}}
    assert store.kv_get("livehunt", "missing") is None


def test_quota_grants_a_burst_then_waits_for_the_oldest_request(store):
    grants = [store.quota_try_acquire("k", NOON + i, per_minute=4, per_day=500) for i in range(4)]
    assert grants == [0.0, 0.0, 0.0, 0.0]
    # The fifth request, at +4 s, waits until the first (at +0 s) leaves the 60 s window.
    assert store.quota_try_acquire("k", NOON + 4, 4, 500) == pytest.approx(56)
    assert store.quota_try_acquire("k", NOON + 60, 4, 500) == 0.0


def test_quota_refusals_are_not_counted(store):
    for _ in range(3):
        store.quota_try_acquire("k", NOON, 1, 500)
    assert store.quota_try_acquire("k", NOON + 60, 1, 500) == 0.0


def test_quota_day_is_the_utc_calendar_day(store):
    assert store.quota_try_acquire("k", NOON, per_minute=100, per_day=2) == 0.0
    assert store.quota_try_acquire("k", NOON + 1, 100, 2) == 0.0
    assert store.quota_try_acquire("k", NOON + 120, 100, 2) == pytest.approx(12 * 3600 - 120)
    assert store.quota_try_acquire("k", NOON + 12 * 3600, 100, 2) == 0.0  # 00:00 UTC: a new day


def test_quota_buckets_are_independent(store):
    assert store.quota_try_acquire("key-a", NOON, 1, 500) == 0.0
    assert store.quota_try_acquire("key-b", NOON, 1, 500) == 0.0
    assert store.quota_try_acquire("key-a", NOON, 1, 500) > 0


def test_quota_holds_across_threads(store):
    granted = []

    def worker():
        for _ in range(20):
            if store.quota_try_acquire("k", NOON, per_minute=50, per_day=500) == 0.0:
                granted.append(1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == 50


def _acquire_many(kind: str, where: str, prefix: str, attempts: int) -> int:
    store = SQLiteState(where) if kind == "sqlite" else RedisState(where, prefix=prefix)
    try:
        return sum(store.quota_try_acquire("k", NOON, 30, 500) == 0.0 for _ in range(attempts))
    finally:
        store.close()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("redis", marks=pytest.mark.services)])
def test_quota_holds_across_processes(kind, request, tmp_path: Path):
    if kind == "redis":
        where, prefix = request.getfixturevalue("redis_url"), f"vtf:test:{uuid.uuid4().hex}:"
    else:
        where, prefix = str(tmp_path / "shared.sqlite3"), ""
        SQLiteState(where).close()  # create the schema before the race
    ctx = multiprocessing.get_context("spawn")
    try:
        with ctx.Pool(3) as pool:
            granted = pool.starmap(_acquire_many, [(kind, where, prefix, 25)] * 3)
    finally:
        if kind == "redis":
            cleanup = RedisState(where, prefix=prefix)
            for key in cleanup._redis.scan_iter(f"{prefix}*"):
                cleanup._redis.delete(key)
            cleanup.close()
    assert sum(granted) == 30


def test_sqlite_state_persists_in_the_state_dir(tmp_path: Path):
    first = open_state(str(tmp_path / "state"))
    first.kv_set("ns", "k", [1, 2])
    first.close()
    again = open_state(str(tmp_path / "state"))
    assert again.kv_get("ns", "k") == [1, 2]
    again.close()


def test_unreachable_redis_is_a_config_error_without_the_password():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here
    with pytest.raises(ConfigError) as caught:
        open_state("unused", f"redis://user:s3cret@127.0.0.1:{port}/0")
    assert caught.value.key == "vtf.redis_url"
    assert "s3cret" not in str(caught.value) and "VTF_REDIS_URL" in str(caught.value)
