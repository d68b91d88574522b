"""Hostile answers from the fake VirusTotal, through `vtframework enrich` as a user runs it.

Each case aims one hostile answer at one observable of a batch. Whatever it
is, the good observable's enrichment ends in a valid bundle, the hostile one
is a failure that names it (or, where the answer is still usable, a success
with the bad parts left out), nothing prints a traceback, nothing hangs past
the deadline and memory stays bounded.
"""

from __future__ import annotations

import contextlib
import json
import threading
import tracemalloc
from typing import Iterator

import pytest

from vtframework.cli.main import main
from vtframework.testing import FakeVirusTotal, assert_valid_bundle
from vtframework.testing.hostile import HOSTILE_FAULTS

GOOD = "4bc00f7d638e042da764e8648c03c0db46700599dd4f08d117e3e9e8b538519b"
IP = "138.128.150.133"
DOMAIN = "haiku-os.org"
#: The answer cap during these tests; a gzip bomb or an endless body must stop near it.
CAP = 4 << 20
DEADLINE = 1.0

#: kind -> (the observable it hits, the path it is aimed at, what the failure must say).
CASES = {
    "truncated": (IP, f"/ip_addresses/{IP}", "answer broke off"),
    "chunked_cut": (IP, f"/ip_addresses/{IP}", "answer broke off"),
    "trickle": (IP, f"/ip_addresses/{IP}", f"no complete answer within {DEADLINE:g}s"),
    "endless": (IP, f"/ip_addresses/{IP}", "larger than the allowed maximum"),
    "gzip_bomb": (IP, f"/ip_addresses/{IP}", "larger than the allowed maximum"),
    "deep_json": (IP, f"/ip_addresses/{IP}", "not JSON"),
    "data_list": (IP, f"/ip_addresses/{IP}", "data is a list, not the ip_address object asked for"),
    "data_string": (IP, f"/ip_addresses/{IP}", "data is a string, not the ip_address object asked for"),
    "data_int": (IP, f"/ip_addresses/{IP}", "data is a int, not the ip_address object asked for"),
    "wrong_object": (IP, f"/ip_addresses/{IP}", "not the ip_address asked for"),
    "ansi_400": (IP, f"/ip_addresses/{IP}", "rejected the request as invalid"),
    "echo_key": (IP, f"/ip_addresses/{IP}", "rejected the request as invalid"),
    "bad_numbers": (IP, f"/ip_addresses/{IP}", None),
    "many_records": (DOMAIN, f"/domains/{DOMAIN}", None),
    "echo_key_200": (IP, f"/ip_addresses/{IP}", None),
}
KEY = "hostile-test-key-0123456789"


def test_every_hostile_kind_has_a_case():
    assert sorted(CASES) == sorted(HOSTILE_FAULTS)


@pytest.fixture
def fake(samples_dir):
    with FakeVirusTotal(str(samples_dir), api_key=KEY) as vt:
        vt.trickle_seconds = 0.3
        yield vt


@pytest.fixture
def environment(fake, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, value in {
        "VIRUSTOTAL_TOKEN": KEY,
        "VIRUSTOTAL_BASE_URL": fake.base_url,
        "VIRUSTOTAL_DETECT_QUOTA": "false",
        "VIRUSTOTAL_REQUESTS_PER_MINUTE": "1000",
        "VIRUSTOTAL_MAX_RETRIES": "1",
        "VIRUSTOTAL_READ_TIMEOUT": "5",
        "VIRUSTOTAL_REQUEST_DEADLINE": str(DEADLINE),
        "VIRUSTOTAL_MAX_ANSWER_SIZE": str(CAP),
        "VIRUSTOTAL_IP_ADD_RELATIONSHIPS": "true",
        "VIRUSTOTAL_DOMAIN_ADD_RELATIONSHIPS": "true",
        "VTF_STATE_DIR": str(tmp_path / "state"),
        "VTF_EXTERNAL_PLUGINS": "false",
    }.items():
        monkeypatch.setenv(name, value)
    return tmp_path


def _peak_rss_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))


@contextlib.contextmanager
def memory_growth() -> Iterator[list[int]]:
    """The peak memory growth (bytes) of this process during the block.

    Linux lets a process reset its resident-memory high-water mark; where it
    cannot, Python's own allocations are traced instead (much slower).
    """
    found = [0]
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        start = _peak_rss_kib()
        yield found
        found[0] = (_peak_rss_kib() - start) << 10
    except OSError:
        tracemalloc.start()
        try:
            yield found
            found[0] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()


def run_cli(*args: str) -> tuple[int, int]:
    """``vtframework ARGS`` in this process, in a thread it must leave in time; (exit code, peak growth)."""
    outcome: dict[str, int] = {}

    def target() -> None:
        outcome["code"] = main(list(args))

    with memory_growth() as growth:
        worker = threading.Thread(target=target, daemon=True)
        worker.start()
        # A generous bound: each hostile answer is cut within the 1 s deadline (twice, with the retry).
        worker.join(60)
    assert not worker.is_alive(), "the run hangs"
    return outcome["code"], growth[0]


@pytest.mark.parametrize("kind", sorted(CASES))
def test_a_hostile_answer_costs_only_its_own_observable(kind, fake, environment, capsys):
    target, path, says = CASES[kind]
    fake.inject(kind, count=10, path_prefix=path)

    code, peak = run_cli("enrich", GOOD, target, "-o", "bundle.json")
    err = capsys.readouterr().err

    # Bounded: the bomb (1 GiB) and the endless body stop at the 4 MiB cap, far below this.
    assert peak < 128 << 20, f"memory grew by {peak >> 20} MiB"
    assert "Traceback" not in err and "\x1b" not in err and "\x07" not in err
    bundle = json.loads((environment / "bundle.json").read_text())
    assert_valid_bundle(bundle)
    assert any(o.get("hashes", {}).get("SHA-256") == GOOD for o in bundle["objects"] if o["type"] == "file")
    rows = {line.split()[0]: line for line in err.splitlines() if line and not line.startswith(("failed", "warning"))}
    assert rows[GOOD].split()[-1] == "ok"
    if says is None:  # the answer is still usable: a success with the bad parts left out
        assert code == 0, err
        assert rows[target].split()[-1] in ("ok", "warning(s)"), err
    else:
        assert code == 1, err
        failures = [line for line in err.splitlines() if line.startswith("failed: ")]
        assert len(failures) == 1 and target in failures[0] and says in failures[0], err
        assert rows[target].split()[-1] == "FAILED"
    assert KEY not in err and KEY not in json.dumps(bundle)


def test_a_forged_summary_row_stays_inside_its_failure_line(fake, environment, capsys):
    fake.inject("ansi_400", count=10, path_prefix=f"/ip_addresses/{IP}")
    run_cli("enrich", GOOD, IP, "-o", "bundle.json")
    err = capsys.readouterr().err
    # The 400 message tried to clear the screen and print '8.8.8.8 IPv4-Addr ok' as a row of its own.
    assert not any(line.startswith("8.8.8.8") for line in err.splitlines())
    (failure,) = [line for line in err.splitlines() if line.startswith("failed: ")]
    assert "Invalid value VALUE TYPE RESULT 8.8.8.8 IPv4-Addr ok" in failure


def test_untrusted_numbers_are_missing_data_not_zeros(fake, environment, capsys):
    fake.inject("bad_numbers", count=10, path_prefix=f"/ip_addresses/{IP}")
    code, _ = run_cli("enrich", IP, "-o", "bundle.json")
    err = capsys.readouterr().err
    assert code == 0, err
    row = next(line for line in err.splitlines() if line.startswith(IP)).split()
    # VALUE TYPE MALICIOUS SCORE...: NaN malicious is no count (not '0/83'), a GTI score of 600 is no score.
    assert row[2:4] == ["-", "-"], row
    objects = json.loads((environment / "bundle.json").read_text())["objects"]
    (address,) = [o for o in objects if o["type"] == "ipv4-addr"]
    assert "score" not in json.dumps(address.get("extensions", {}))
    assert not [o for o in objects if o["type"] == "autonomous-system"]  # ASN 10**30 is not one


def test_fifty_thousand_dns_records_are_capped(fake, environment, capsys, monkeypatch):
    monkeypatch.setenv("VIRUSTOTAL_MAX_RELATED_OBJECTS", "100")
    fake.inject("many_records", count=10, path_prefix=f"/domains/{DOMAIN}")
    code, _ = run_cli("enrich", DOMAIN, "-o", "bundle.json")
    err = capsys.readouterr().err
    assert code == 0, err
    objects = json.loads((environment / "bundle.json").read_text())["objects"]
    assert len([o for o in objects if o["type"] == "ipv4-addr"]) <= 100
    assert "only the first 100 of 50000 DNS records used (VIRUSTOTAL_MAX_RELATED_OBJECTS=100)" in err
    assert_valid_bundle({"type": "bundle", "id": "bundle--6a6a6a6a-0000-4000-8000-000000000000", "objects": objects})
