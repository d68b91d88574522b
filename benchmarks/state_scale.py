"""State scale benchmark: the SQLite response cache at 1k, 10k and 50k entries.

One run prints, for caches filled with a recorded IP address answer (12 KB of
JSON), the microseconds per ``cache_set`` (a new answer, with expired entries
to sweep) and per ``cache_get`` (a hit that notes its use, and the same hit
again), and their ratios between sizes; the bytes per entry on disk with this version's compressed
values and with uncompressed values as earlier versions stored them (and how
an earlier version's write scaled); the file size after writing three times
the cap; and the open files and memory after 2,000 short-lived threads used
the state. It prints measurements and ratios, not pass/fail.

    python benchmarks/state_scale.py                 # 1k, 10k, 50k entries
    python benchmarks/state_scale.py --sizes 1000 5000 --ops 500
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vtframework.state import DAY, SQLiteState  # noqa: E402
from vtframework.state.base import pack_value  # noqa: E402
from vtframework.state.sqlite import TOUCH_EVERY  # noqa: E402

ANSWER = json.loads((ROOT / "tests" / "samples" / "ip_address_138.128.150.133.json").read_text())
START = 19675 * DAY
TTL = DAY


def answer(i: int) -> dict:
    """The recorded answer, about another address (so no two entries are the same)."""
    body = dict(ANSWER)
    body["data"] = dict(ANSWER["data"], id=f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
    return {"status": 200, "body": body}


def key(i: int) -> str:
    return f"GET /ip_addresses/{answer(i)['body']['data']['id']}#{i}"


def disk_bytes(path: str) -> int:
    return sum(os.path.getsize(path + s) for s in ("", "-wal") if os.path.exists(path + s))


def fill(store: SQLiteState, n: int) -> float:
    """``n`` entries written over one TTL, so that the oldest tenth has expired by ``START + TTL``."""
    for i in range(n):
        store.cache_set(key(i), answer(i), ttl=TTL, now=START + 0.1 * TTL * i / n)
    return START + TTL + 1


def per_op_us(run, ops: int) -> float:
    began = time.perf_counter()
    for i in range(ops):
        run(i)
    return (time.perf_counter() - began) / ops * 1e6


def scale_run(directory: str, n: int, ops: int) -> dict[str, float]:
    path = os.path.join(directory, f"scale-{n}.sqlite3")
    store = SQLiteState(path, cache_max_bytes=1 << 40)
    now = fill(store, n)
    values = [answer(n + i) for i in range(ops)]
    rng = random.Random(n)
    hits = [rng.randrange(n // 10, n) for _ in range(ops)]  # live entries
    set_us = per_op_us(lambda i: store.cache_set(key(n + i), values[i], TTL, now), ops)
    # Reads later than TOUCH_EVERY: each hit also notes its use (the dearer path), then the same reads again.
    later = now + TOUCH_EVERY + 1
    get_us = per_op_us(lambda i: store.cache_get(key(hits[i]), later), ops)
    again_us = per_op_us(lambda i: store.cache_get(key(hits[i]), later + 1), ops)
    got = store.cache_get(key(hits[0]), later)
    assert got is not None and got["body"]["data"]["id"] == answer(hits[0])["body"]["data"]["id"]
    entries = sqlite3.connect(path).execute("SELECT COUNT(*) FROM cache").fetchone()[0]
    store._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    result = {"set": set_us, "get": get_us, "again": again_us, "disk": disk_bytes(path) / entries}
    store.close()
    os.remove(path)
    return result


def legacy_run(directory: str, n: int, ops: int) -> dict[str, float]:
    """The schema and the write of earlier versions (no index on expiry, uncompressed values)."""
    path = os.path.join(directory, f"legacy-{n}.sqlite3")
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("CREATE TABLE cache (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at REAL NOT NULL)")
    db.execute("BEGIN")
    for i in range(n):
        db.execute("INSERT INTO cache VALUES (?, ?, ?)", (key(i), json.dumps(answer(i)), START + TTL))
    db.execute("COMMIT")
    now = START + TTL / 2

    def write(i: int) -> None:
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT OR REPLACE INTO cache (key, value, expires_at) VALUES (?, ?, ?)",
                   (key(n + i), json.dumps(answer(n + i)), now + TTL))
        db.execute("DELETE FROM cache WHERE expires_at <= ? AND rowid % 64 = 0", (now,))
        db.execute("COMMIT")

    set_us = per_op_us(write, ops)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    result = {"set": set_us, "disk": disk_bytes(path) / (n + ops)}
    db.close()
    os.remove(path)
    return result


def cap_run(directory: str, cap_mb: int) -> tuple[int, int, int, float]:
    path = os.path.join(directory, "cap.sqlite3")
    cap = cap_mb << 20
    store = SQLiteState(path, cache_max_bytes=cap)
    per_entry = len(pack_value(answer(0)))
    count = 3 * cap // per_entry
    for i in range(2 * count // 3):
        store.cache_set(key(i), answer(i), ttl=TTL, now=START + i)
    # The last third: every write evicts.
    rest = range(2 * count // 3, count)
    values = [answer(i) for i in rest]
    evicting_us = per_op_us(lambda j: store.cache_set(key(rest[j]), values[j], TTL, START + rest[j]), len(rest))
    counted = store.cache_bytes()
    store.close()
    return count, counted, disk_bytes(path), evicting_us


def rss_kb() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def threads_run(directory: str, threads: int) -> tuple[int, int, int, int, int]:
    store = SQLiteState(os.path.join(directory, "threads.sqlite3"))
    store.cache_set("warm", answer(0), ttl=TTL, now=START)
    fds_before, rss_before = len(os.listdir("/proc/self/fd")), rss_kb()
    failures = []

    def work(i: int) -> None:
        try:
            store.cache_set(key(i), answer(i), ttl=TTL, now=START)
            if store.cache_get(key(i), START) is None:
                failures.append(f"entry {i} missing")
        except Exception as exc:  # noqa: BLE001 - counted and printed
            failures.append(repr(exc))

    for batch in range(0, threads, 20):
        group = [threading.Thread(target=work, args=(batch + j,)) for j in range(min(20, threads - batch))]
        for thread in group:
            thread.start()
        for thread in group:
            thread.join()
    fds_after, rss_after = len(os.listdir("/proc/self/fd")), rss_kb()
    store.close()
    return fds_before, fds_after, rss_before, rss_after, len(failures)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 50_000])
    parser.add_argument("--ops", type=int, default=2000, help="timed operations per size")
    parser.add_argument("--legacy-sizes", type=int, nargs="*", default=[1000, 10_000],
                        help="sizes for the earlier versions' write (uncompressed: 12 KB per entry)")
    parser.add_argument("--cap-mb", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2000)
    args = parser.parse_args(argv)
    plain = len(json.dumps(answer(0)))
    packed = len(pack_value(answer(0)))
    print(f"value: a recorded IP address answer, {plain} bytes as JSON (as stored before), {packed} bytes "
          f"stored now (compact, zlib): {plain / packed:.1f}x smaller")
    with tempfile.TemporaryDirectory() as directory:
        results = {}
        for n in args.sizes:
            results[n] = r = scale_run(directory, n, args.ops)
            print(f"{n:>7} entries: cache_set {r['set']:7.1f} us  cache_get {r['get']:7.1f} us (noting its use), "
                  f"{r['again']:7.1f} us (read again)  {r['disk']:6.0f} bytes on disk per entry")
        sizes = sorted(args.sizes)
        for small in sizes[:-1]:
            large, a, b = sizes[-1], results[small], results[sizes[-1]]
            print(f"ratio {large}/{small} entries: cache_set {b['set'] / a['set']:.2f}x, cache_get "
                  f"{b['get'] / a['get']:.2f}x (noting its use), {b['again'] / a['again']:.2f}x (read again)")
        legacy = {n: legacy_run(directory, n, min(args.ops, 200)) for n in args.legacy_sizes}
        for n, r in legacy.items():
            print(f"{n:>7} entries, earlier schema: cache_set {r['set']:8.1f} us  {r['disk']:8.0f} bytes on disk "
                  f"per entry")
        if len(legacy) > 1:
            lo, hi = min(legacy), max(legacy)
            print(f"earlier schema ratio {hi}/{lo} entries: cache_set {legacy[hi]['set'] / legacy[lo]['set']:.2f}x")
        for n in set(legacy) & set(results):
            print(f"at {n} entries: bytes on disk per entry {legacy[n]['disk'] / results[n]['disk']:.1f}x fewer, "
                  f"cache_set {legacy[n]['set'] / results[n]['set']:.1f}x faster than the earlier schema")
        count, counted, on_disk, evicting_us = cap_run(directory, args.cap_mb)
        cap = args.cap_mb << 20
        print(f"cap {args.cap_mb} MB, {count} answers written ({count * packed / cap:.1f}x the cap): cache counts "
              f"{counted / cap:.2f}x the cap, file (with WAL) {on_disk / cap:.2f}x the cap; cache_set "
              f"{evicting_us:.1f} us while evicting")
        before, after, rss_before, rss_after, failed = threads_run(directory, args.threads)
        print(f"{args.threads} short-lived threads, each a write and a read: open files {before} -> {after} "
              f"({after - before:+d}), RSS {rss_before / 1024:.0f} -> {rss_after / 1024:.0f} MB, {failed} failures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
