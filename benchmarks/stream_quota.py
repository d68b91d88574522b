"""Stream benchmark: the livehunt listener under a quota far smaller than the events it receives.

N YARA indicator events reach the stream connector's callback (what pycti's
listener thread calls) against the fake VirusTotal enforcing Q requests per
window (shortened from 60 s so a run takes seconds). pycti's watchdog ends a
process whose listener is held 45 s per 60 s window; scaled, the bound is
0.75 window. Prints the longest callback against that bound, the time to
apply every event against the fastest the quota allows, and whether the
rulesets match the indicators. Exits 1 when a target is missed.

    python benchmarks/stream_quota.py --events 80 --quota 20 --window 1
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vtframework import STIX_EXT_OCTI, build_app  # noqa: E402
from vtframework.opencti.metrics import Metrics  # noqa: E402
from vtframework.opencti.stream import QUEUE, StreamConnector  # noqa: E402
from vtframework.state import open_state  # noqa: E402
from vtframework.testing import FakeVirusTotal  # noqa: E402
from vtframework.vt.client import ClientConfig, VTClient  # noqa: E402

KEY = "benchmark-key"
#: Requests a hunted indicator's create costs: the marker lookup, the POST, the duplicate check.
CREATE_REQUESTS = 3


def indicator_event(n: int) -> SimpleNamespace:
    ident = f"indicator--{uuid.uuid4()}"
    data = {
        "id": ident, "type": "indicator", "spec_version": "2.1", "name": f"Family {n}",
        "pattern": f'rule family_{n} {{ strings: $s = "family{n}" condition: $s }}', "pattern_type": "yara",
        "created": "2024-05-02T08:00:00.000Z", "modified": "2024-05-02T08:00:00.000Z",
        "valid_from": "2024-05-02T08:00:00.000Z",
        "extensions": {STIX_EXT_OCTI: {"extension_type": "property-extension", "detection": True}},
    }
    return SimpleNamespace(event="create", id=f"{1714636800000 + n}-0", data=json.dumps({"data": data}))


class Quiet:
    def __getattr__(self, _level):
        return lambda *args, **kwargs: None


def run(events: int, quota: int, window: float) -> int:
    app = build_app("virustotal-livehunt", config_file=None, env={"CONNECTOR_LIVE_STREAM_ID": "live"})
    with tempfile.TemporaryDirectory() as state_dir, \
            FakeVirusTotal(api_key=KEY, quota_per_minute=quota, quota_window=window) as fake:
        state = open_state(state_dir)
        config = ClientConfig(api_key=KEY, base_url=fake.base_url, detect_quota=False, requests_per_minute=quota,
                              requests_per_day=1_000_000, quota_window=window, max_quota_wait=0, require_scope=True)
        client = VTClient(config, state)
        helper = SimpleNamespace(api=None, connector_logger=Quiet())
        connector = StreamConnector(app, helper, state=state, client=client, metrics=Metrics(False))
        connector.IDLE = window / 4
        messages = [indicator_event(n) for n in range(events)]
        connector.start_worker()
        started = time.perf_counter()
        longest = 0.0
        for message in messages:  # this thread is pycti's listener
            before = time.perf_counter()
            connector.process(message)
            longest = max(longest, time.perf_counter() - before)
        deadline = started + 10 * window * (events * CREATE_REQUESTS / quota + 1)
        while (state.kv_items(QUEUE) or len(fake.hunting_rulesets) < events) and time.perf_counter() < deadline:
            time.sleep(window / 20)
        elapsed = time.perf_counter() - started
        connector.stop()
        client.close()
        made = len(fake.hunting_rulesets)
        too_many = fake.count("/api/v3/", status=429)
        state.close()

    watchdog = 0.75 * window
    fastest = (events * CREATE_REQUESTS / quota - 1) * window
    print(f"{events} events, quota {quota} per {window:g}s window")
    print(f"longest listener callback: {longest * 1000:.1f} ms = {longest / watchdog:.4f} of the watchdog bound")
    print(f"all events applied in {elapsed:.2f}s = {elapsed / fastest:.2f} x the fastest the quota allows "
          f"({fastest:.2f}s)")
    print(f"rulesets: {made} of {events}; 429 answers: {too_many}")
    missed = []
    if longest > 0.05 * watchdog:
        missed.append("the listener was held more than 5% of the watchdog bound")
    if made != events:
        missed.append("not every indicator has its ruleset")
    if too_many:
        missed.append("VirusTotal answered 429")
    if elapsed > 2.0 * fastest:
        missed.append("applying the events took more than twice the fastest schedule")
    for line in missed:
        print(f"MISSED: {line}")
    return 1 if missed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=80)
    parser.add_argument("--quota", type=int, default=20)
    parser.add_argument("--window", type=float, default=1.0)
    args = parser.parse_args()
    return run(args.events, args.quota, args.window)


if __name__ == "__main__":
    sys.exit(main())
