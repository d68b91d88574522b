"""Resident memory and open files of the enrichment connector over many messages.

Runs the real enrichment connector (``vtframework run enrichment``, pycti's
helper, our queue runtime, real RabbitMQ) against the fake OpenCTI and the
fake VirusTotal, enriches a warm-up batch, then ``--messages`` more, and
prints the process's RSS and open file descriptors after the warm-up and at
the end, and their growth per message, for the embedded SQLite state and
(with ``--redis-url``) for Redis.

Target: flat, a few bytes per message at most and no descriptor kept per message.

    python benchmarks/soak.py [--messages 10000] [--redis-url redis://127.0.0.1:6379/15]
    python benchmarks/soak.py --messages 300 --outage graphql_error --outage-seconds 30
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from vtframework.testing import FakeVirusTotal
from vtframework.testing.connector import Connector, publish_requests
from vtframework.testing.fakeopencti import FakeOpenCTI

SAMPLES = Path(__file__).resolve().parent.parent / "tests" / "samples"
VALUES = ["138.128.150.133", "1.1.1.1", "tawuhoju.com", "haiku-os.org", "github.com",
          "4bc00f7d638e042da764e8648c03c0db46700599dd4f08d117e3e9e8b538519b"]
#: At most this many messages wait in the queue at once (what a platform sends in a burst).
CHUNK = 500


@dataclass
class Soak:
    messages: int
    rss_start: int
    rss_end: int
    files_start: int
    files_end: int
    lost: int
    doubled: int
    seconds: float

    @property
    def rss_per_message(self) -> float:
        return (self.rss_end - self.rss_start) / self.messages

    @property
    def files_per_message(self) -> float:
        return (self.files_end - self.files_start) / self.messages


def run_batch(opencti: FakeOpenCTI, connector: Connector, count: int, timeout: float,
              outage: tuple[str, float] | None = None) -> tuple[int, int]:
    """Enrich ``count`` new observables; ``(works never reported, works reported more than once)``.

    :param outage: ``(kind, seconds)`` of an OpenCTI outage begun once a tenth of the first chunk is reported.
    """
    lost = doubled = 0
    for start in range(0, count, CHUNK):
        work_ids = publish_requests(opencti, connector.id, VALUES, min(CHUNK, count - start))
        deadline = time.monotonic() + timeout
        counts = opencti.processed_counts(work_ids)
        while time.monotonic() < deadline and not all(counts.values()):
            if outage and sum(1 for n in counts.values() if n) >= len(work_ids) // 10:
                opencti.outage(*outage)
                outage = None
            if connector.process.poll() is not None:
                raise AssertionError(f"the connector stopped:\n{connector.output()[-4000:]}")
            time.sleep(0.1)
            counts = opencti.processed_counts(work_ids)
        lost += sum(1 for n in counts.values() if n == 0)
        doubled += sum(1 for n in counts.values() if n > 1)
        opencti.pushed_messages(connector.id, timeout=0.2, expect=0)  # drain: RabbitMQ holds what is pushed
        opencti.calls.clear()  # the fake's own record must not grow with the soak
    return lost, doubled


def soak(messages: int, workdir: Path, warmup: int = 50, outage: tuple[str, float] | None = None,
         **env: str) -> Soak:
    with FakeOpenCTI() as opencti, FakeVirusTotal(str(SAMPLES)) as vt:
        connector = Connector("enrichment", opencti, vt.base_url, workdir, **env)
        connector.start()
        try:
            opencti.wait_consumers(connector.id)
            run_batch(opencti, connector, warmup, timeout=120)
            rss_start, files_start = connector.rss()[0], connector.open_files()
            started = time.monotonic()
            lost, doubled = run_batch(opencti, connector, messages, timeout=max(120.0, messages * 0.5), outage=outage)
            seconds = time.monotonic() - started
            return Soak(messages, rss_start, connector.rss()[0], files_start, connector.open_files(),
                        lost, doubled, seconds)
        finally:
            connector.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--redis-url", help="also soak with the state in this Redis")
    parser.add_argument("--outage", choices=["graphql_error", "http_502"],
                        help="break OpenCTI this way once a tenth of the messages are done")
    parser.add_argument("--outage-seconds", type=float, default=30.0)
    args = parser.parse_args()
    outage = (args.outage, args.outage_seconds) if args.outage else None
    states = [("sqlite", {})]
    if args.redis_url:
        states.append(("redis", {"VTF_REDIS_URL": args.redis_url}))
    for name, env in states:
        with tempfile.TemporaryDirectory() as workdir:
            result = soak(args.messages, Path(workdir), outage=outage, **env)
        during = f" with {args.outage_seconds:.0f} s of {args.outage}" if outage else ""
        print(f"{name:>6} state, {result.messages} messages{during} in {result.seconds:.1f} s: "
              f"RSS {result.rss_start / 2**20:.1f} MB -> {result.rss_end / 2**20:.1f} MB "
              f"({result.rss_per_message:+.0f} bytes/message), "
              f"open files {result.files_start} -> {result.files_end} ({result.files_per_message:+.4f}/message), "
              f"works lost {result.lost}, reported twice {result.doubled}")


if __name__ == "__main__":
    main()
