"""Fault storm: a batch where one observable in five meets a fault, of every kind there is.

200 observables (IPv4 addresses, domains, files and URLs, each answered by the
fake VirusTotal with a real recorded answer made about it) are enriched by 8
workers through the real pipeline. One in five gets a fault aimed at it, the
kinds taken in turn from every fault the fake knows: transient ones (5xx,
429, a hang, a reset, a body cut short, a trickle) as a burst of a few
answers, hostile ones (a gzip bomb, an endless body, data of the wrong
shape, an answer about another object, untrustworthy numbers, an echoed
key...) on every attempt.

It prints the outcomes (clean, recovered by the client's own retries,
survived with the bad parts left out, failed, by reason), then enriches the
failures again once the transient faults have passed, the hostile ones still
there: how many failures a later retry saves is the last figure. It also
checks that the bundle of what succeeded is one valid STIX bundle and that
the key appears nowhere in it. Exits 1 when the run misses a target: a batch
that does not finish, an error that escapes, a bundle that is not valid.

    python benchmarks/fault_storm.py --observables 200 --fault-rate 0.2 --workers 8
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import logging
import re
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vtframework.host.app import build_app  # noqa: E402
from vtframework.host.services import open_app_state, open_client  # noqa: E402
from vtframework.pipeline.enrich import Pipeline, bundle  # noqa: E402
from vtframework.stix.observables import from_value  # noqa: E402
from vtframework.testing import FakeVirusTotal  # noqa: E402
from vtframework.testing.fakevt import FAULTS  # noqa: E402
from vtframework.testing.hostile import SURVIVABLE  # noqa: E402
from vtframework.vt.client import url_id  # noqa: E402

SAMPLES = ROOT / "tests" / "samples"
KEY = "fault-storm-key-" + "5" * 24
#: Faults that pass: VirusTotal or the network answers properly a moment later.
TRANSIENT = ("500", "503", "504", "too_many_requests", "quota_exceeded", "hang", "reset",
             "truncated", "chunked_cut", "trickle")


def sample(name: str) -> dict:
    return json.loads((SAMPLES / name).read_bytes())


def observables(n: int) -> list[tuple[str, str, dict]]:
    """``(value, API path, answer)``: real recorded answers, each made about its own observable (CONSTRUCTED)."""
    made = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            value = f"10.{i // 250}.{i % 250}.{1 + i % 200}"
            answer, path = sample("ip_address_138.128.150.133.json"), f"/ip_addresses/{value}"
            answer["data"]["id"] = value
        elif kind == 1:
            value = f"storm-{i}.example.com"
            answer, path = sample("domain_clean_haiku-os.org.json"), f"/domains/{value}"
            answer["data"]["id"] = value
        elif kind == 2:
            value = hashlib.sha256(f"storm-{i}".encode()).hexdigest()
            answer, path = sample("file_clean_b8e7a581.json"), f"/files/{value}"
            answer["data"]["id"] = answer["data"]["attributes"]["sha256"] = value
        else:
            value = f"http://storm-{i}.example/path?q={i}"
            answer, path = sample("url_malicious_7d83e9f6.json"), f"/urls/{url_id(value)}"
            answer["data"]["attributes"]["url"] = value
            answer["data"]["id"] = hashlib.sha256(value.encode()).hexdigest()
        made.append((value, path, answer))
    return made


def reason(message: str) -> str:
    """A failure message reduced to its reason (the words after the observable, before the detail)."""
    text = message.split(": ", 1)[-1]
    return re.split(r" \(| after \d+ retr|;", text, maxsplit=1)[0][:70]


def enrich_all(app, client, values: list[str], workers: int) -> list:
    pipeline = Pipeline(app, client)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda value: pipeline.enrich(from_value(value, tlp="TLP:AMBER")), values))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--observables", type=int, default=200)
    parser.add_argument("--fault-rate", type=float, default=0.2)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--burst", type=int, default=3, help="answers a transient fault lasts")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the retries' warnings would bury the figures

    made = observables(args.observables)
    step = max(1, round(1 / args.fault_rate))
    faulted = {index: FAULTS[n % len(FAULTS)] for n, index in enumerate(range(0, len(made), step))}
    with FakeVirusTotal(str(SAMPLES), api_key=KEY) as fake, tempfile.TemporaryDirectory() as state_dir:
        fake.hang_seconds, fake.trickle_seconds = 3.0, 0.5
        for _value, path, answer in made:
            fake.add_route("GET", path, 200, answer)

        def inject(transient: bool) -> None:
            for index, kind in faulted.items():
                if (kind in TRANSIENT) == transient:
                    fake.inject(kind, count=args.burst if transient else 100, path_prefix=made[index][1])

        inject(transient=True)
        inject(transient=False)
        app = build_app("virustotal", env={"VTF_EXTERNAL_PLUGINS": "false", "VIRUSTOTAL_TOKEN": KEY,
                                           "VIRUSTOTAL_DOMAIN_ADD_RELATIONSHIPS": "true"}, config_file=None)
        client = open_client(
            app, open_app_state(app, state_dir), base_url=fake.base_url, detect_quota=False,
            requests_per_minute=100_000, requests_per_day=10**9, read_timeout=1.0, request_deadline=2.0,
            max_answer_bytes=8 << 20, backoff_base=0.05, backoff_max=0.5, quota_window=1.0,
        )
        started = time.monotonic()
        try:
            results = enrich_all(app, client, [value for value, _p, _a in made], args.workers)
        except Exception as exc:  # the target: nothing escapes the per-observable boundary
            print(f"FAIL: {type(exc).__name__} escaped the batch: {exc}")
            return 1
        elapsed = time.monotonic() - started
        stats = client.stats

        outcomes: collections.Counter[str] = collections.Counter()
        by_kind: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        failures = []
        for index, result in enumerate(results):
            kind = faulted.get(index)
            if result.ok:
                label = "ok" if kind is None else ("ok, answer survived" if kind in SURVIVABLE else "ok, recovered")
            else:
                label = "failed"
                failures.append(index)
            outcomes[label] += 1
            if kind:
                by_kind[kind]["ok" if result.ok else reason(result.message)] += 1

        text = json.dumps(bundle(obj for r in results if r.ok for obj in r.objects), allow_nan=False)
        valid_bundle = KEY not in text
        try:
            import stix2

            stix2.parse(text, allow_custom=True)
        except Exception as exc:  # noqa: BLE001 - any parse error is the finding
            print(f"bundle does not parse: {exc}")
            valid_bundle = False

        # Later: the transient faults have passed, the hostile answers are still what VirusTotal (or the proxy) sends.
        fake.clear_faults()
        inject(transient=False)
        retried = enrich_all(app, client, [made[i][0] for i in failures], args.workers)
        saved = sum(1 for r in retried if r.ok)
        client.close()

    faults = len(faulted)
    print(f"{len(made)} observables, {faults} with a fault ({faults / len(made):.0%}), "
          f"{len(set(faulted.values()))} fault kinds, {args.workers} workers, {elapsed:.1f} s")
    print(f"requests {stats.requests}, client retries {stats.retries}, quota waits {stats.quota_waits}")
    for label in ("ok", "ok, recovered", "ok, answer survived", "failed"):
        print(f"  {label:22s} {outcomes[label]:4d}")
    print("per fault kind (kind: outcome x count):")
    for kind in FAULTS:
        if kind in by_kind:
            shown = ", ".join(f"{outcome} x{count}" for outcome, count in by_kind[kind].most_common())
            print(f"  {kind:18s} {'transient' if kind in TRANSIENT else 'hostile':9s} {shown}")
    transient = [i for i, kind in faulted.items() if kind in TRANSIENT]
    absorbed = sum(1 for i in transient if results[i].ok)
    print(f"transient faults absorbed by the client's own retries: {absorbed}/{len(transient)} "
          f"({absorbed / max(1, len(transient)):.2f})")
    rate = saved / len(failures) if failures else 0.0
    print(f"failures a later retry saves: {saved}/{len(failures)} ({rate:.2f}); "
          f"clean observables lost: {len(made) - faults - outcomes['ok']}")
    print(f"bundle of the successes: {'valid STIX, no key' if valid_bundle else 'INVALID'}")
    return 0 if valid_bundle and outcomes["ok"] == len(made) - faults else 1


if __name__ == "__main__":
    sys.exit(main())
