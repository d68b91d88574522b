"""Livehunt notifications benchmark: VirusTotal requests per imported notification, throughput, memory.

N notifications (half from rulesets vtframework made for OpenCTI indicators,
half from others) of F files over R rulesets, served by the fake VirusTotal
from real recorded file objects, imported in one run by the real plugin into
a sink that counts (and keeps nothing). Prints the VirusTotal requests per
notification against the original connector's request pattern (one ruleset
read per notification plus a listing page per 10: at least 1.1 a
notification), the notifications imported per second, and the growth of the
process's resident memory between the first and the last quarter of a run
twice as long. Exits 1 when a target is missed.

    python benchmarks/notifications.py --notifications 2000 --rulesets 8 --files 50
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vtframework import SQLiteState, build_app, open_client, ruleset_marker  # noqa: E402
from vtframework.pipeline.importing import run_imports  # noqa: E402
from vtframework.testing import FakeVirusTotal  # noqa: E402

SAMPLE = json.loads((ROOT / "tests" / "samples" / "file_malicious_4bc00f7d.json").read_text())["data"]
#: The original connector reads a ruleset per notification and lists 10 notifications a page.
ORIGINAL_PER_NOTIFICATION = 1 + 1 / 10


class CountingOpenCTI:
    """Counts what a run sends; keeps only the connector state (so memory measures the importer)."""

    opencti = None
    artifacts = None

    def __init__(self) -> None:
        self.state: dict = {}
        self.bundles = 0
        self.objects = 0

    def load_state(self) -> dict:
        return json.loads(json.dumps(self.state))

    def save_state(self, state: dict) -> None:
        self.state = json.loads(json.dumps(state))

    def send_bundle(self, bundle: dict) -> None:
        self.bundles += 1
        self.objects += len(bundle["objects"])

    def stopping(self) -> bool:
        return False


def rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def populate(vt: FakeVirusTotal, notifications: int, rulesets: int, files: int, start: int) -> None:
    ids = []
    for number in range(rulesets):
        rules = f"rule r{number} {{ strings: $a = \"x{number}\" condition: $a }}"
        if number % 2 == 0:
            rules = ruleset_marker(f"indicator--{uuid.uuid4()}") + "\n" + rules
        ids.append(vt.add_hunting_ruleset(f"ruleset {number}", rules, enabled=True))
    for index in range(notifications):
        sha256 = f"{index % files:064x}"
        entity = {"type": "file", "id": sha256, "attributes": {**SAMPLE["attributes"], "sha256": sha256}}
        number = index % rulesets
        vt.add_hunting_notification(entity, ruleset_id=ids[number], rule_name=f"r{number}", date=start + index)


def run(notifications: int, rulesets: int, files: int) -> tuple[float, int, CountingOpenCTI, list[int]]:
    with FakeVirusTotal() as vt, tempfile.TemporaryDirectory() as directory:
        populate(vt, notifications, rulesets, files, int(time.time()) - notifications - 60)
        env = {"VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_API_KEY": "benchmark", "VIRUSTOTAL_BASE_URL": vt.base_url,
               "VIRUSTOTAL_DETECT_QUOTA": "false", "VIRUSTOTAL_REQUESTS_PER_MINUTE": "100000",
               "VIRUSTOTAL_REQUESTS_PER_DAY": "10000000", "VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_MAX_AGE_DAYS": "0",
               "VTF_EXTERNAL_PLUGINS": "false"}
        app = build_app("virustotal-livehunt-notifications", env=env, config_file=None)
        state = SQLiteState(str(Path(directory) / "state.sqlite3"))
        sink = CountingOpenCTI()
        samples: list[int] = []
        original = sink.send_bundle

        def sampling(bundle: dict) -> None:
            original(bundle)
            if sink.bundles % max(1, notifications // 8) == 0:
                samples.append(rss())

        sink.send_bundle = sampling  # type: ignore[method-assign]
        with open_client(app, state) as client:
            started = time.perf_counter()
            outcome = run_imports(app, client, state, sink)
            elapsed = time.perf_counter() - started
        state.close()
        if outcome.failed:
            raise SystemExit(f"the run failed: {outcome.message}")
        return elapsed, len(vt.requests), sink, samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notifications", type=int, default=2000)
    parser.add_argument("--rulesets", type=int, default=8)
    parser.add_argument("--files", type=int, default=50)
    args = parser.parse_args(argv)

    elapsed, requests, sink, _ = run(args.notifications, args.rulesets, args.files)
    per_notification = requests / args.notifications
    print(f"{args.notifications} notifications, {args.rulesets} rulesets, {args.files} files: "
          f"{requests} VirusTotal requests, {per_notification:.3f} a notification "
          f"({per_notification / ORIGINAL_PER_NOTIFICATION:.3f} of the original's {ORIGINAL_PER_NOTIFICATION:.1f}); "
          f"{sink.bundles} bundles, {sink.objects} STIX objects")
    print(f"throughput: {args.notifications / elapsed:.0f} notifications a second ({elapsed:.1f} s)")
    _elapsed, _requests, _sink, samples = run(args.notifications * 2, args.rulesets, args.files)
    quarter = max(1, len(samples) // 4)
    early, late = max(samples[:quarter]), max(samples[-quarter:])
    growth = (late - early) / 2**20
    print(f"memory: resident {early / 2**20:.0f} MB after the first quarter of {args.notifications * 2} "
          f"notifications, {late / 2**20:.0f} MB in the last ({growth:+.1f} MB)")
    missed = []
    if per_notification > 0.1:
        missed.append(f"{per_notification:.3f} requests a notification (target 0.1)")
    if growth > 32:
        missed.append(f"memory grew {growth:.1f} MB (target 32)")
    for miss in missed:
        print(f"MISSED: {miss}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
