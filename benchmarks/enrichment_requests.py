"""VirusTotal requests per enrichment, with every plugin on, and on a repeat within the cache TTL.

Enriches each recorded observable of ``vtframework enrich --replay`` through the
real pipeline and client against the fake VirusTotal, with the features that
cost requests turned on (Sigma rule bodies, community comments and votes), then
enriches them all again on the same state. Prints, per observable, what the
result counts and what the fake VirusTotal received (they must agree), and the
totals. Exits 1 when a repeat makes any request or the two counts disagree.

    python benchmarks/enrichment_requests.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vtframework.cli.enrich import REPLAY_DIR, REPLAY_VALUES  # noqa: E402
from vtframework.host.app import build_app, with_paid_features  # noqa: E402
from vtframework.host.services import open_app_state, open_client  # noqa: E402
from vtframework.pipeline.enrich import Pipeline  # noqa: E402
from vtframework.stix.observables import from_value  # noqa: E402
from vtframework.testing import FakeVirusTotal  # noqa: E402


def main() -> int:
    app = with_paid_features(build_app("virustotal", env={"VTF_EXTERNAL_PLUGINS": "false"}, config_file=None))
    rows, failures = [], 0
    with FakeVirusTotal(str(REPLAY_DIR)) as fake, tempfile.TemporaryDirectory() as state_dir:
        client = open_client(app, open_app_state(app, state_dir), base_url=fake.base_url, api_key="bench",
                             detect_quota=False, requests_per_minute=100_000, requests_per_day=1_000_000)
        with client:
            pipeline = Pipeline(app, client)
            for round_name in ("first", "repeat"):
                for value in REPLAY_VALUES:
                    before = len(fake.requests)
                    result = pipeline.enrich(from_value(value, tlp="TLP:AMBER"))
                    received = len(fake.requests) - before
                    rows.append((round_name, value, result.requests, received, result.cache_hits, len(result.warnings)))
                    failures += result.requests != received or (round_name == "repeat" and received != 0)
    print(f"{'ROUND':7} {'VALUE':66} {'REQUESTS':>8} {'RECEIVED':>8} {'CACHE HITS':>10} {'WARNINGS':>8}")
    for round_name, value, requests, received, hits, warnings in rows:
        print(f"{round_name:7} {value[:66]:66} {requests:>8} {received:>8} {hits:>10} {warnings:>8}")
    for round_name in ("first", "repeat"):
        picked = [row for row in rows if row[0] == round_name]
        total = sum(row[2] for row in picked)
        print(f"{round_name}: {total} requests for {len(picked)} enrichments ({total / len(picked):.2f} each)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
