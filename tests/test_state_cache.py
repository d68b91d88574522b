"""The response cache in the state: expired entries leave, the SQLite cache keeps under its cap by
evicting the least recently used entries, values are stored compressed, a state file of an earlier
schema is migrated, and one connection serves any number of threads."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import zlib
from pathlib import Path

import pytest

from vtframework.host.app import build_app
from vtframework.host.services import open_app_state
from vtframework.state import DAY, SQLiteState, base
from vtframework.state.base import pack_value, unpack_value
from vtframework.state.sqlite import SCHEMA_VERSION, TOUCH_EVERY

NOON = 19675 * DAY + 12 * 3600
SAMPLES = Path(__file__).parent / "samples"
# A recorded IP address answer (12 KB of JSON).
ANSWER = json.loads((SAMPLES / "ip_address_138.128.150.133.json").read_text())


def rows(path: str, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


def noise(i: int, n: int = 2000) -> dict:
    """A value that compresses little, ``n`` characters of JSON."""
    return {"data": os.urandom(n // 2).hex(), "i": i}


def test_expired_entries_leave_a_few_at_each_write(tmp_path):
    path = str(tmp_path / "state.sqlite3")
    store = SQLiteState(path)
    for i in range(100):
        store.cache_set(f"old-{i}", {"i": i}, ttl=10, now=NOON)
    store.cache_set("fresh-0", {"i": 0}, ttl=3600, now=NOON + 5)
    assert rows(path, "SELECT COUNT(*) FROM cache") == [(101,)]  # nothing expired yet
    for i in range(1, 8):  # each write after the expiry removes up to 16 expired entries
        store.cache_set(f"fresh-{i}", {"i": i}, ttl=3600, now=NOON + 20)
    assert rows(path, "SELECT COUNT(*) FROM cache WHERE key LIKE 'old-%'") == [(0,)]
    assert rows(path, "SELECT COUNT(*) FROM cache") == [(8,)]
    assert store.cache_get("fresh-0", NOON + 20) == {"i": 0}
    assert store.cache_bytes() == rows(path, "SELECT SUM(size) FROM cache")[0][0]
    store.close()


def test_the_cache_stays_under_its_cap_by_evicting_the_least_recently_used(tmp_path):
    path = str(tmp_path / "state.sqlite3")
    probe = SQLiteState(str(tmp_path / "probe.sqlite3"))
    probe.cache_set("k0", noise(0), ttl=DAY, now=NOON)
    one = probe.cache_bytes()  # about what each entry counts
    probe.close()
    cap = 19 * one + one // 2  # 19 entries fit under the cap
    store = SQLiteState(path, cache_max_bytes=cap)
    now = NOON
    for i in range(10):
        store.cache_set(f"k{i}", noise(i), ttl=DAY, now=now)
        now += 1
    now += TOUCH_EVERY + 1
    assert store.cache_get("k0", now)["i"] == 0  # k0 is now the most recently used
    # Each entry counts about 2,100 bytes: 19 fit under the cap.
    for i in range(10, 26):
        now += 1
        store.cache_set(f"k{i}", noise(i), ttl=DAY, now=now)
        assert store.cache_bytes() <= cap
        if i >= 19:  # full: only what was needed went
            assert store.cache_bytes() > cap - 2 * one
    kept = {key for (key,) in rows(path, "SELECT key FROM cache")}
    assert "k0" in kept and "k1" not in kept and "k7" not in kept
    assert {f"k{i}" for i in range(10, 26)} <= kept
    assert store.cache_bytes() == rows(path, "SELECT SUM(size) FROM cache")[0][0]
    for i in range(26, 200):  # far more than the cap, k0 unused since: it goes too
        now += 1
        store.cache_set(f"k{i}", noise(i), ttl=DAY, now=now)
        assert store.cache_bytes() <= cap
    assert store.cache_get("k0", now) is None and store.cache_get("k199", now)["i"] == 199
    store.close()


def test_replacing_an_entry_keeps_the_running_size_exact(tmp_path):
    path = str(tmp_path / "state.sqlite3")
    store = SQLiteState(path)
    store.cache_set("k", noise(0, 4000), ttl=60, now=NOON)
    store.cache_set("k", {"small": True}, ttl=60, now=NOON + 1)
    store.cache_set("other", ANSWER, ttl=60, now=NOON + 1)
    assert store.cache_get("k", NOON + 2) == {"small": True}
    assert store.cache_bytes() == rows(path, "SELECT SUM(size) FROM cache")[0][0]
    assert rows(path, "SELECT COUNT(*) FROM cache") == [(2,)]
    store.close()


def test_an_answer_larger_than_the_cap_is_not_kept(tmp_path):
    store = SQLiteState(str(tmp_path / "state.sqlite3"), cache_max_bytes=5000)
    store.cache_set("small", {"i": 1}, ttl=60, now=NOON)
    store.cache_set("huge", noise(0, 20_000), ttl=60, now=NOON)
    assert store.cache_get("huge", NOON) is None
    assert store.cache_get("small", NOON) == {"i": 1}
    store.close()


def test_a_cap_below_one_byte_is_refused(tmp_path):
    with pytest.raises(ValueError, match="cache_max_bytes must be positive"):
        SQLiteState(str(tmp_path / "state.sqlite3"), cache_max_bytes=0)


def test_large_values_are_stored_compressed_and_read_back(tmp_path):
    path = str(tmp_path / "state.sqlite3")
    store = SQLiteState(path)
    store.cache_set("ip", ANSWER, ttl=60, now=NOON)
    store.cache_set("small", {"a": 1}, ttl=60, now=NOON)
    assert store.cache_get("ip", NOON) == ANSWER
    assert store.cache_get("small", NOON) == {"a": 1}
    (kind, stored), = rows(path, "SELECT typeof(value), length(value) FROM cache WHERE key = 'ip'")
    assert kind == "blob" and stored * 4 < len(json.dumps(ANSWER))
    assert rows(path, "SELECT typeof(value), value FROM cache WHERE key = 'small'") == [("text", '{"a":1}')]
    store.close()


def test_pack_and_unpack_roundtrip_and_refuse_damage(monkeypatch):
    packed = pack_value(ANSWER)
    assert isinstance(packed, bytes) and packed[:1] == b"\x78"
    assert unpack_value(packed) == ANSWER
    assert pack_value([1, "a"]) == '[1,"a"]' and unpack_value('[1,"a"]') == [1, "a"]
    assert unpack_value(b'{"old": "uncompressed"}') == {"old": "uncompressed"}
    assert unpack_value(packed[: len(packed) // 2]) is None  # cut short
    assert unpack_value(b"\x78 not zlib") is None
    assert unpack_value(zlib.compress(b"not json")) is None
    monkeypatch.setattr(base, "MAX_VALUE_BYTES", 4096)
    assert unpack_value(zlib.compress(b"[" + b"0," * 10_000 + b"0]")) is None  # inflates past the limit


# The schema of files written before schema 2 (user_version 1; 0 before versioning).
OLD_SCHEMA = """
CREATE TABLE cache (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE kv (ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (ns, key));
CREATE TABLE quota_events (bucket TEXT NOT NULL, ts REAL NOT NULL);
CREATE INDEX quota_events_bucket_ts ON quota_events (bucket, ts);
CREATE TABLE quota_days (
    bucket TEXT NOT NULL, day INTEGER NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (bucket, day)
);
"""


@pytest.mark.parametrize("version", [0, 1])
def test_a_state_file_of_an_earlier_schema_is_migrated_and_used(tmp_path, version):
    path = str(tmp_path / "state.sqlite3")
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_SCHEMA + f"PRAGMA user_version = {version};")
        conn.execute("INSERT INTO cache VALUES (?, ?, ?)", ("GET /ip_addresses/1", json.dumps(ANSWER), NOON + 60))
        conn.execute("INSERT INTO cache VALUES (?, ?, ?)", ("GET /gone", json.dumps({"x": 1}), NOON - 60))
        conn.execute("INSERT INTO kv VALUES ('livehunt', 'indicator--1', ?)", (json.dumps({"ruleset": "63"}),))
        conn.execute("INSERT INTO quota_days VALUES ('k', ?, 3)", (int(NOON // DAY),))
    store = SQLiteState(path, cache_max_bytes=1 << 20)
    assert rows(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert store.cache_get("GET /ip_addresses/1", NOON) == ANSWER
    assert store.kv_get("livehunt", "indicator--1") == {"ruleset": "63"}
    assert store.quota_try_acquire("k", NOON, per_minute=10, per_day=4) == 0.0
    assert store.quota_try_acquire("k", NOON, per_minute=10, per_day=4) > 60  # the day's 3 were kept
    migrated = store.cache_bytes()
    assert migrated == rows(path, "SELECT SUM(size) FROM cache")[0][0] > len(json.dumps(ANSWER))
    store.cache_set("GET /new", {"y": 2}, ttl=60, now=NOON)
    assert store.cache_get("GET /new", NOON) == {"y": 2}
    assert store.cache_get("GET /gone", NOON) is None
    assert rows(path, "SELECT key FROM cache ORDER BY key") == [("GET /ip_addresses/1",), ("GET /new",)]
    store.close()
    again = SQLiteState(path)  # a second open finds the new schema and changes nothing
    assert again.cache_bytes() == rows(path, "SELECT SUM(size) FROM cache")[0][0]
    again.close()


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files through /proc")
def test_open_files_stay_flat_over_thousands_of_short_lived_threads(tmp_path):
    store = SQLiteState(str(tmp_path / "state.sqlite3"))
    store.cache_set("warm", {"i": -1}, ttl=60, now=NOON)
    before = open_files()
    failures: list[BaseException] = []
    hits = []

    def work(i: int) -> None:
        try:
            store.cache_set(f"k{i}", {"i": i}, ttl=60, now=NOON)
            hits.append(store.cache_get(f"k{i}", NOON) == {"i": i})
            store.kv_set("ns", f"k{i % 10}", i)
        except BaseException as exc:  # noqa: BLE001 - every failure is reported below
            failures.append(exc)

    for batch in range(100):  # 2,000 threads, 20 alive at a time
        threads = [threading.Thread(target=work, args=(batch * 20 + j,)) for j in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    after = open_files()
    assert failures == []
    assert len(hits) == 2000 and all(hits)
    assert after - before <= 2, f"{before} open files before the threads, {after} after"
    store.close()


def test_the_cache_cap_is_a_setting(tmp_path):
    app = build_app(None, env={"VTF_CACHE_MAX_MB": "3", "VTF_STATE_DIR": str(tmp_path / "state")}, cwd=tmp_path)
    store = open_app_state(app)
    assert isinstance(store, SQLiteState) and store.cache_max_bytes == 3 << 20
    store.close()


def test_every_cache_query_is_served_by_an_index(tmp_path):
    """Work per read and write independent of the cache's size: no statement scans the table."""
    store = SQLiteState(str(tmp_path / "state.sqlite3"), cache_max_bytes=4000)
    store.cache_set("old", ANSWER, ttl=60, now=NOON)
    statements = []
    store._conn().set_trace_callback(statements.append)
    store.cache_set("k", ANSWER, ttl=7200, now=NOON)  # evicts "old"
    store.cache_get("k", NOON + TOUCH_EVERY + 1)
    store.cache_get("k", NOON + 3600)
    store.cache_set("k2", {"small": True}, ttl=60, now=NOON + 2)  # records the read's use
    store.cache_bytes()
    store._conn().set_trace_callback(None)
    assert store.cache_get("old", NOON) is None
    queries = [s for s in statements if s.split()[0] in ("SELECT", "INSERT", "UPDATE", "DELETE")]
    assert len(queries) >= 8 and any("ORDER BY used_at" in sql for sql in queries)
    assert any(sql.startswith("UPDATE cache SET used_at") for sql in queries)
    for sql in queries:
        plan = " / ".join(row[3] for row in store._conn().execute(f"EXPLAIN QUERY PLAN {sql}"))
        scans = [step for step in plan.split(" / ") if step.startswith("SCAN cache") and "USING" not in step]
        assert not scans, f"{sql!r} scans a table: {plan}"
    store.close()


@pytest.mark.services
def test_redis_stores_large_entries_compressed_and_reads_older_ones(redis_state):
    redis_state.cache_set("ip", ANSWER, ttl=60, now=NOON)
    raw = redis_state._redis.get(f"{redis_state.prefix}cache:ip")
    assert raw[:1] == b"\x78" and len(raw) * 4 < len(json.dumps(ANSWER))
    assert 0 < redis_state._redis.pttl(f"{redis_state.prefix}cache:ip") <= 60_000
    assert redis_state.cache_get("ip", NOON + 1) == ANSWER
    # An entry as earlier versions wrote it: plain JSON.
    old = json.dumps({"value": {"data": {"id": "old"}}, "expires_at": NOON + 60})
    redis_state._redis.set(f"{redis_state.prefix}cache:old", old)
    assert redis_state.cache_get("old", NOON) == {"data": {"id": "old"}}


def test_reads_record_their_use_in_batches_and_at_close(tmp_path):
    path = str(tmp_path / "state.sqlite3")
    store = SQLiteState(path)
    for i in range(70):
        store.cache_set(f"k{i}", {"i": i}, ttl=DAY, now=NOON)
    later = NOON + TOUCH_EVERY + 1
    for i in range(63):
        assert store.cache_get(f"k{i}", later) == {"i": i}
    assert rows(path, f"SELECT COUNT(*) FROM cache WHERE used_at = {later!r}") == [(0,)]
    store.cache_get("k63", later)  # the 64th read records them all
    assert rows(path, f"SELECT COUNT(*) FROM cache WHERE used_at = {later!r}") == [(64,)]
    store.cache_get("k64", later + 1)
    store.close()
    assert rows(path, "SELECT key FROM cache WHERE used_at > " + repr(later)) == [("k64",)]


def test_two_stores_on_one_file_keep_one_running_size(tmp_path):
    """Replicas sharing a state file: each one's writes count against the same cap."""
    path = str(tmp_path / "state.sqlite3")
    first = SQLiteState(path, cache_max_bytes=60_000)
    second = SQLiteState(path, cache_max_bytes=60_000)
    for i in range(60):
        (first if i % 2 else second).cache_set(f"k{i}", noise(i), ttl=DAY, now=NOON + i)
        assert first.cache_bytes() == second.cache_bytes() <= 60_000
    assert second.cache_get("k59", NOON + 60)["i"] == 59 and first.cache_get("k58", NOON + 60)["i"] == 58
    assert first.cache_bytes() == rows(path, "SELECT SUM(size) FROM cache")[0][0]
    first.close()
    second.close()


def test_a_lower_cap_applies_at_the_next_write(tmp_path):
    path = str(tmp_path / "state.sqlite3")
    roomy = SQLiteState(path, cache_max_bytes=1 << 30)
    for i in range(300):
        roomy.cache_set(f"k{i}", noise(i), ttl=DAY, now=NOON + i)
    roomy.close()
    tight = SQLiteState(path, cache_max_bytes=20_000)
    assert tight.cache_bytes() > 15 * 20_000
    tight.cache_set("new", {"i": -1}, ttl=DAY, now=NOON + 400)
    assert 20_000 - 2000 < tight.cache_bytes() <= 20_000  # just the oldest went
    assert tight.cache_get("new", NOON + 400) == {"i": -1} and tight.cache_get("k299", NOON + 400)["i"] == 299
    assert tight.cache_get("k0", NOON + 400) is None
    tight.close()


def test_a_lost_size_row_is_counted_again(tmp_path):
    path = str(tmp_path / "state.sqlite3")
    store = SQLiteState(path)
    store.cache_set("k", ANSWER, ttl=60, now=NOON)
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM cache_size")
    store.cache_set("k2", {"i": 2}, ttl=60, now=NOON)
    assert store.cache_bytes() == rows(path, "SELECT SUM(size) FROM cache")[0][0] > 2000
    store.close()
