"""CPU per observable, peak memory and state size of `vtframework enrich` at scale, and start-up times.

One run, every figure measured in it. A fake VirusTotal (this process, no
latency) answers each synthetic value with a report about itself, made from
a recorded real answer; `vtframework enrich --input FILE -o FILE` runs in a
child process per size, which reports its own CPU time (imports excluded)
and peak resident memory. Printed per size (IPv4 addresses and domains, half
each): CPU ms per observable, its ratio to the stix2-only lower bound
(building and serialising the same STIX objects with the stix2 library
alone, in another child), peak RSS, state size on disk. Then a set of files
that each carry a crowdsourced YARA hit on one ruleset, against the cost of
an IP; then start-up: CPU of `vtframework --help`, `vtframework plugins` and
an `enrich` of one cached value, each against `python -c "import stix2"`
(median of five).

    python benchmarks/scale.py                   # 1,000 / 10,000 / 50,000 values
    python benchmarks/scale.py --quick           # 1,000 / 5,000
    python benchmarks/scale.py --cache-ttl 0     # without the response cache: the pipeline alone
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vtframework.testing import RECORDINGS_DIR  # noqa: E402
from vtframework.testing.fakevt import FakeVirusTotal  # noqa: E402

TEMPLATES = {
    "ip_addresses": RECORDINGS_DIR / "ip_address_138.128.150.133.json",
    "domains": RECORDINGS_DIR / "domain_malicious_tawuhoju.com.json",
}
YARA_FILE = RECORDINGS_DIR / "file_malicious_4bc00f7d.json"

#: Run in the child: imports first (not counted), then the command; prints its CPU seconds and peak RSS.
ENRICH_CHILD = """
import json, resource, sys
import vtframework.cli.enrich, vtframework.pipeline.enrich, vtframework.host.app
import vtframework.stix.factory, vtframework.stix.ids, vtframework.host.services
from vtframework.cli.main import main
before = resource.getrusage(resource.RUSAGE_SELF)
code = main(sys.argv[1:])
after = resource.getrusage(resource.RUSAGE_SELF)
cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
print(json.dumps({"code": code, "cpu": cpu, "maxrss_kb": after.ru_maxrss}))
"""

#: The lower bound: the same objects built (validated) and serialised by stix2 alone, markings aside.
STIX2_CHILD = """
import json, resource, sys
import stix2
objects = json.load(open(sys.argv[1]))["objects"]
objects = [obj for obj in objects if obj["type"] != "marking-definition"]
before = resource.getrusage(resource.RUSAGE_SELF)
out = [stix2.parse(obj, allow_custom=True).serialize() for obj in objects]
after = resource.getrusage(resource.RUSAGE_SELF)
cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
print(json.dumps({"cpu": cpu, "objects": len(objects)}))
"""


class SyntheticVirusTotal(FakeVirusTotal):
    """The fake VirusTotal, answering any IP address or domain with a recorded report made about it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._templates = {kind: json.loads(path.read_text(encoding="utf-8")) for kind, path in TEMPLATES.items()}

    def _serve_get(self, h: Any, api_path: str, query: str = "") -> int:
        parts = api_path.strip("/").split("/")
        if len(parts) == 2 and parts[0] in self._templates and (parts[0], parts[1]) not in self._samples:
            answer = copy.deepcopy(self._templates[parts[0]])
            answer["data"]["id"] = parts[1]
            answer["data"]["links"] = {"self": f"https://www.virustotal.com/api/v3/{parts[0]}/{parts[1]}"}
            return h.send(200, json.dumps(answer).encode())
        return super()._serve_get(h, api_path, query)


def synthetic_values(count: int) -> list[str]:
    """Half IPv4 addresses (public ranges), half domains, all distinct."""
    values = []
    for index in range(count):
        if index % 2:
            values.append(f"bench{index}.com")
        else:
            n = index // 2
            values.append(f"23.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}")
    return values


def yara_files(fake: FakeVirusTotal, count: int) -> list[str]:
    """``count`` files, each with the recorded crowdsourced YARA hit (one ruleset for all)."""
    recorded = json.loads(YARA_FILE.read_text(encoding="utf-8"))
    hashes = []
    for seed in range(count):
        answer = copy.deepcopy(recorded)
        attrs = answer["data"]["attributes"]
        for name, algorithm in (("md5", hashlib.md5), ("sha1", hashlib.sha1), ("sha256", hashlib.sha256)):
            attrs[name] = algorithm(f"scale file {seed}".encode()).hexdigest()
        answer["data"]["id"] = attrs["sha256"]
        fake.add_object(answer)
        hashes.append(attrs["sha256"])
    return hashes


def child_env(fake: FakeVirusTotal, state_dir: Path, cache_ttl: int | None = None) -> dict[str, str]:
    extra = {"VIRUSTOTAL_CACHE_TTL": str(cache_ttl)} if cache_ttl is not None else {}
    return {**extra,
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(state_dir.parent),
        "VIRUSTOTAL_TOKEN": "scale-benchmark-key", "VIRUSTOTAL_BASE_URL": fake.base_url,
        "VIRUSTOTAL_DETECT_QUOTA": "false", "VIRUSTOTAL_REQUESTS_PER_MINUTE": "10000000",
        "VIRUSTOTAL_REQUESTS_PER_DAY": "100000000", "VTF_STATE_DIR": str(state_dir), "VTF_EXTERNAL_PLUGINS": "false",
    }


def enrich(values: list[str], workdir: Path, env: dict[str, str], name: str) -> dict[str, Any]:
    source = workdir / f"{name}.txt"
    source.write_text("\n".join(values) + "\n", encoding="utf-8")
    output = workdir / f"{name}.json"
    done = subprocess.run(
        [sys.executable, "-c", ENRICH_CHILD, "enrich", "--input", str(source), "-o", str(output), "--tlp", "TLP:GREEN"],
        env=env, cwd=workdir, capture_output=True, text=True,
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise SystemExit(f"enrich of {name} failed:\n{done.stderr[-3000:]}")
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    if measured["code"] != 0:
        raise SystemExit(f"enrich of {name} failed:\n{done.stderr[-3000:]}")
    measured["output"] = output
    return measured


def stix2_bound(bundle_file: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", STIX2_CHILD, str(bundle_file)], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout)


def directory_size(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def child_cpu(command: list[str], env: dict[str, str], cwd: Path, runs: int = 5) -> float:
    """Median CPU seconds (user + system) of ``command`` in a child process."""
    times = []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(command, env=env, cwd=cwd, capture_output=True, check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        times.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 and 5,000 values instead of 1k/10k/50k")
    parser.add_argument("--yara-files", type=int, default=200, help="files with a YARA hit (default 200)")
    parser.add_argument("--cache-ttl", type=int, help="VIRUSTOTAL_CACHE_TTL of the runs (default: its default)")
    args = parser.parse_args()
    sizes = (1_000, 5_000) if args.quick else (1_000, 10_000, 50_000)
    executable = str(Path(sys.executable).with_name("vtframework"))
    with SyntheticVirusTotal(str(RECORDINGS_DIR)) as fake, tempfile.TemporaryDirectory(prefix="vtf-scale-") as tmp:
        workdir = Path(tmp)
        ttl = "default" if args.cache_ttl is None else args.cache_ttl
        print(f"VIRUSTOTAL_CACHE_TTL: {ttl}; CPU of the enrich process, imports excluded")
        print(f"{'VALUES':>7} {'CPU ms/obs':>10} {'stix2 ms/obs':>12} {'RATIO':>6} {'PEAK RSS MB':>11} "
              f"{'STATE MB':>8} {'BUNDLE OBJECTS':>14}")
        per_observable = {}
        for size in sizes:
            state = workdir / f"state-{size}"
            measured = enrich(synthetic_values(size), workdir, child_env(fake, state, args.cache_ttl), f"values-{size}")
            bound = stix2_bound(measured["output"])
            ms, bound_ms = measured["cpu"] * 1000 / size, bound["cpu"] * 1000 / size
            per_observable[size] = ms
            print(f"{size:>7} {ms:>10.2f} {bound_ms:>12.2f} {ms / bound_ms:>6.2f} {measured['maxrss_kb'] / 1024:>11.1f} "
                  f"{directory_size(state) / 2**20:>8.1f} {bound['objects']:>14}")
            measured["output"].unlink()
        first, last = sizes[0], sizes[-1]
        print(f"CPU per observable at {last:,} vs {first:,} values: {per_observable[last] / per_observable[first]:.2f}x")

        files = yara_files(fake, args.yara_files)
        measured = enrich(files, workdir, child_env(fake, workdir / "state-yara", args.cache_ttl), "yara")
        file_ms = measured["cpu"] * 1000 / len(files)
        print(f"files with a crowdsourced YARA hit (one ruleset, {len(files)} files): {file_ms:.2f} ms/file, "
              f"{file_ms / per_observable[first]:.2f}x an IPv4/domain at {first:,} values")

        env = child_env(fake, workdir / "state-start")
        cached = synthetic_values(1)[0]
        subprocess.run([executable, "enrich", cached, "-o", str(workdir / "one.json")], env=env, cwd=workdir,
                       capture_output=True, check=True)
        stix2_cpu = child_cpu([sys.executable, "-c", "import stix2"], env, workdir)
        print(f"start-up, CPU median of 5 runs; python -c 'import stix2': {stix2_cpu * 1000:.0f} ms")
        for label, command in (
            ("vtframework --help", [executable, "--help"]),
            ("vtframework plugins", [executable, "plugins"]),
            ("vtframework enrich (one cached value)", [executable, "enrich", cached, "-o", str(workdir / "one.json")]),
        ):
            cpu = child_cpu(command, env, workdir)
            print(f"  {label:40} {cpu * 1000:>5.0f} ms  {cpu / stix2_cpu:.2f}x")


if __name__ == "__main__":
    main()
