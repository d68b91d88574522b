"""Quota benchmark: how close the client gets to the fastest schedule VirusTotal allows.

N lookups with W worker threads against the fake VirusTotal (latency L per answer,
quota Q per window, the window shortened from 60 s so a run takes seconds). Prints
the achieved throughput against the bound min(Q/window, W/L), the 429s drawn, the
requests a repeated run makes (the cache should answer all of them) and the
speed-up of 8 workers over 1 when the quota is ample. Exits 1 when a target is missed.

    python benchmarks/quota.py --lookups 60 --workers 8 --latency 0.1 --quota 20 --window 2
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vtframework.state import RedisState, StateStore, open_state  # noqa: E402
from vtframework.testing import FakeVirusTotal  # noqa: E402
from vtframework.vt.client import ClientConfig, VTClient  # noqa: E402

SAMPLES = ROOT / "tests" / "samples"
SAMPLE = json.loads((SAMPLES / "file_clean_b8e7a581.json").read_bytes())
KEY = "benchmark-key"


def hashes(n: int, run: str) -> list[str]:
    return [f"{run}{i:x}".rjust(64, "0")[-64:] for i in range(n)]


def fresh_state(state_dir: str, redis_url: str | None) -> StateStore:
    """Empty state for each run: a cache left by an earlier run would make the numbers lie."""
    if redis_url:
        return RedisState(redis_url, prefix=f"vtf:bench:{uuid.uuid4().hex}:")
    return open_state(state_dir)


def drop(state: StateStore) -> None:
    if isinstance(state, RedisState):
        for key in state._redis.scan_iter(f"{state.prefix}*"):
            state._redis.delete(key)
    state.close()


def serve(fake: FakeVirusTotal, lookups: list[str]) -> None:
    for h in lookups:
        # The real answer made about each hash (CONSTRUCTED): the client refuses an answer about another file.
        body = json.loads(json.dumps(SAMPLE))
        body["data"]["id"] = body["data"]["attributes"]["sha256"] = h
        fake.add_route("GET", f"/files/{h}", 200, body)


def client_for(fake: FakeVirusTotal, state: StateStore, quota: int, window: float) -> VTClient:
    config = ClientConfig(
        api_key=KEY, base_url=fake.base_url, requests_per_minute=quota, requests_per_day=10**9,
        quota_window=window, max_quota_wait=10 * window + 60, detect_quota=False,
    )
    return VTClient(config, state)


def run(client: VTClient, lookups: list[str], workers: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda h: client.get(f"/files/{h}", subject=f"file {h[:8]}"), lookups))
    return time.perf_counter() - started


def ideal_time(n: int, workers: int, latency: float, quota: int, window: float) -> float:
    """The fastest schedule the bound min(Q/window, W/L) allows for a finite run.

    Each lookup starts as soon as a worker is free and, past the first Q, one
    window after the lookup Q places earlier (a sliding window lets a burst go at
    once). Greedy is optimal here, so this is the time an ideal client would take.
    """
    free = [0.0] * workers
    starts: list[float] = []
    for i in range(n):
        start = heapq.heappop(free)
        if i >= quota:
            start = max(start, starts[i - quota] + window)
        starts.append(start)
        heapq.heappush(free, start + latency)
    return max(free)


def quota_run(args: argparse.Namespace, state_dir: str) -> list[str]:
    missed = []
    n, w, lat, q, win = args.lookups, args.workers, args.latency, args.quota, args.window
    with FakeVirusTotal(api_key=KEY, latency=lat, quota_per_minute=q, quota_window=win) as fake:
        lookups = hashes(n, "a")
        serve(fake, lookups)
        state = fresh_state(state_dir, args.redis_url)
        client = client_for(fake, state, q, win)
        elapsed = run(client, lookups, w)
        bound = min(q / win, w / lat)
        ideal = ideal_time(n, w, lat, q, win)
        fraction = ideal / elapsed
        rejected = fake.count("/api/v3/", status=429)
        print(f"quota run: {n} lookups, {w} workers, latency {lat:.2f} s, quota {q} per {win:g} s window, "
              f"state {'redis' if args.redis_url else 'sqlite'}")
        print(f"  elapsed {elapsed:.2f} s, achieved {n / elapsed:.1f} req/s; bound min(Q/window, W/L) = "
              f"{bound:.1f} req/s; an ideal client under that bound takes {ideal:.2f} s")
        print(f"  fraction of bound (ideal time / elapsed): {fraction:.2f} (target >= 0.90)")
        print(f"  429 answers: {rejected} (target 0); client waits for quota: {client.stats.quota_waits}")
        missed += ["fraction"] * (fraction < 0.9) + ["429s"] * (rejected > 0)

        before = fake.count("/api/v3/")
        repeat = client_for(fake, state, q, win)
        run(repeat, lookups, w)
        again = fake.count("/api/v3/") - before
        print(f"repeat run: {n} lookups made {again} requests (target 0), {repeat.stats.cache_hits} cache hits")
        missed += ["repeat"] * (again > 0)
        client.close()
        repeat.close()
        drop(state)
    return missed


def scaling_run(args: argparse.Namespace, state_dir: str) -> list[str]:
    n, lat = args.scaling_lookups, args.scaling_latency
    times = {}
    with FakeVirusTotal(api_key=KEY, latency=lat) as fake:
        for workers in (1, 8):
            lookups = hashes(n, f"b{workers}")
            serve(fake, lookups)
            state = fresh_state(f"{state_dir}/scaling-{workers}", args.redis_url)
            client = client_for(fake, state, 10**6, 60.0)
            times[workers] = run(client, lookups, workers)
            client.close()
            drop(state)
    speedup = times[1] / times[8]
    print(f"scaling (ample quota, latency {lat:.2f} s, {n} lookups): 1 worker {times[1]:.2f} s, "
          f"8 workers {times[8]:.2f} s, speed-up {speedup:.1f}x (target >= 6x)")
    return ["scaling"] if speedup < 6 else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lookups", type=int, default=60)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per answer")
    parser.add_argument("--quota", type=int, default=20, help="requests per window")
    parser.add_argument("--window", type=float, default=2.0, help="quota window in seconds (VirusTotal: 60)")
    parser.add_argument("--scaling-lookups", type=int, default=64)
    parser.add_argument("--scaling-latency", type=float, default=0.05)
    parser.add_argument("--redis-url", default=None, help="share state through Redis instead of SQLite")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as state_dir:
        missed = quota_run(args, state_dir) + scaling_run(args, state_dir)
    if missed:
        print(f"targets missed: {', '.join(missed)}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
