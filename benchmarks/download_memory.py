"""Peak memory of the downloader while it moves a large sample from VirusTotal into OpenCTI.

Runs the real downloader connector (``vtframework run downloader``, real pycti
helper, real RabbitMQ) against the fake VirusTotal serving a generated sample
and the fake OpenCTI receiving the Artifact upload, and reads the connector
process's resident memory before the download and at its peak (VmHWM). Then
does the same for ``vtframework download`` (VirusTotal to disk).

Target: the peak grows by less than 100 MB, whatever the sample size.

    python benchmarks/download_memory.py [--size-mb 200]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from vtframework.policy.markings import TLP_MARKINGS
from vtframework.testing import FakeVirusTotal
from vtframework.testing.connector import Connector, marking
from vtframework.testing.fakeopencti import FakeOpenCTI

MB = 1024 * 1024


def connector_peak(size: int, workdir: Path) -> tuple[int, int, float]:
    with FakeOpenCTI() as opencti, FakeVirusTotal() as vt:
        sha256 = vt.add_generated_download(size, seed=f"benchmark-{size}")
        connector = Connector("downloader", opencti, vt.base_url, workdir)
        connector.start()
        try:
            opencti.wait_consumers(connector.id)
            time.sleep(1.0)  # let start-up allocations settle before the baseline
            baseline, _ = connector.rss()
            standard_id = f"file--{uuid.uuid4()}"
            entity = opencti.add_entity({
                "standard_id": standard_id, "entity_type": "StixFile", "observable_value": sha256,
                "name": "large.bin", "objectMarking": [marking("TLP:GREEN")],
                "hashes": [{"algorithm": "SHA-256", "hash": sha256}],
            })
            stix_entity = {"type": "file", "spec_version": "2.1", "id": standard_id, "name": "large.bin",
                           "hashes": {"SHA-256": sha256}, "object_marking_refs": [TLP_MARKINGS["TLP:GREEN"]["id"]]}
            message = opencti.enrichment_message(entity, stix_entity)
            started = time.monotonic()
            opencti.publish(connector.id, message)
            done = opencti.wait_processed(message["internal"]["work_id"], timeout=600)
            elapsed = time.monotonic() - started
            _, peak = connector.rss()
        finally:
            connector.stop()
        if done.variables["inError"]:
            raise SystemExit(f"the download failed: {done.variables['message']}")
        uploaded = opencti.artifacts[sha256]
        assert uploaded["size"] == size, "OpenCTI did not receive the whole sample"
        return baseline, peak, elapsed


def cli_peak(size: int, workdir: Path) -> tuple[int, float]:
    with FakeVirusTotal() as vt:
        sha256 = vt.add_generated_download(size, seed=f"cli-{size}")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "VIRUSTOTAL_DOWNLOADER_API_KEY": "benchmark",
               "VIRUSTOTAL_BASE_URL": vt.base_url, "VIRUSTOTAL_DETECT_QUOTA": "false",
               "VTF_STATE_DIR": str(workdir / "cli-state"), "VTF_EXTERNAL_PLUGINS": "false"}
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "vtframework", "download", sha256, "--dir", str(workdir / "samples")],
                       env=env, check=True, capture_output=True)
        elapsed = time.monotonic() - started
        saved = workdir / "samples" / sha256
        assert saved.stat().st_size == size
        saved.unlink()
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200, help="sample size in MB (default 200)")
    args = parser.parse_args()
    size = args.size_mb * MB
    with tempfile.TemporaryDirectory(prefix="vtf-bench-") as tmp:
        workdir = Path(tmp)
        baseline, peak, elapsed = connector_peak(size, workdir)
        growth = peak - baseline
        print(f"downloader connector, {args.size_mb} MB sample VirusTotal -> OpenCTI in {elapsed:.1f} s")
        print(f"  resident memory before {baseline / MB:.0f} MB, peak {peak / MB:.0f} MB, "
              f"growth {growth / MB:.1f} MB (target < 100 MB) -> {'OK' if growth < 100 * MB else 'FAIL'}")
        cli_max, cli_elapsed = cli_peak(size, workdir)
        print(f"vtframework download, {args.size_mb} MB sample to disk in {cli_elapsed:.1f} s: "
              f"peak resident memory {cli_max / MB:.0f} MB for the whole process")
    if growth >= 100 * MB:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
