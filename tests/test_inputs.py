"""Bad input costs nothing and is named: values, input files, types."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from vtframework.errors import InputError
from vtframework.records import Observable
from vtframework.stix.observables import ascii_domain, from_value, lookup_hash
from vtframework.testing import FakeVirusTotal

GOOD = "4bc00f7d638e042da764e8648c03c0db46700599dd4f08d117e3e9e8b538519b"


@pytest.mark.parametrize("value", ["256.1.1.1", "1.2.3", "01.02.03.004", "1.2.3.4.5", "999.999.999.999"])
def test_ip_like_values_are_refused_never_taken_for_hostnames(value):
    with pytest.raises(InputError, match="looks like an IPv4 address but is not one"):
        from_value(value)


def test_a_name_ending_in_a_number_is_no_domain():
    with pytest.raises(InputError, match="no domain ends in a number"):
        from_value("example.123")
    with pytest.raises(InputError, match="no domain ends in a number"):
        from_value("host.example.7", "Hostname")


@pytest.mark.parametrize("value", ["fe80::1%eth0", "fe80::1%25en0"])
def test_ipv6_zone_ids_are_refused(value):
    with pytest.raises(InputError, match="zone id"):
        from_value(value)
    with pytest.raises(InputError, match="zone id"):
        from_value(value, "IPv6-Addr")


def test_an_internationalised_domain_keeps_its_name_and_is_looked_up_by_its_punycode():
    observable = from_value("Bücher.Example")
    assert (observable.entity_type, observable.value, observable.stix["value"]) == (
        "Domain-Name", "bücher.example", "bücher.example")
    assert ascii_domain(observable.value) == "xn--bcher-kva.example"
    # IDNA 2008: ß is a letter of its own, not "ss" (the stdlib codec's IDNA 2003 would look up strasse.de).
    assert ascii_domain("straße.de") == "xn--strae-oqa.de"


def test_a_hash_that_is_not_a_digest_never_reaches_a_path():
    observable = Observable("StixFile", "x", {"type": "file", "id": "file--1"},
                            hashes={"SHA-256": "../../intelligence/hunting_rulesets", "MD5": "z" * 32})
    with pytest.raises(InputError, match=r"no SHA-256, SHA-1 or MD5 hash \(SHA-256, MD5 not a valid hexadecimal"):
        lookup_hash(observable)
    observable = Observable("StixFile", "x", {"type": "file", "id": "file--1"},
                            hashes={"SHA-256": "not a hash", "MD5": "D41D8CD98F00B204E9800998ECF8427E"})
    assert lookup_hash(observable) == ("MD5", "d41d8cd98f00b204e9800998ecf8427e")


# -- the command line -----------------------------------------------------------------------
@pytest.fixture
def fake(samples_dir):
    with FakeVirusTotal(str(samples_dir), api_key="test-key") as vt:
        yield vt


def cli(tmp_path, fake, *args, stdin=None):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "VTF_EXTERNAL_PLUGINS": "false",
           "VIRUSTOTAL_TOKEN": "test-key", "VIRUSTOTAL_BASE_URL": fake.base_url, "VIRUSTOTAL_DETECT_QUOTA": "false",
           "VIRUSTOTAL_REQUESTS_PER_MINUTE": "1000", "VTF_STATE_DIR": str(tmp_path / "state")}
    return subprocess.run([sys.executable, "-m", "vtframework", *args], cwd=tmp_path, env=env, input=stdin,
                          capture_output=True, timeout=120)


def test_ip_like_lines_of_a_big_file_cost_no_request(tmp_path, fake):
    lines = [f"{a}.{b}.1" for a in range(10) for b in range(100)] + ["256.1.1.1", "01.02.03.004"]
    (tmp_path / "iocs.txt").write_text("\n".join(lines) + "\n")
    done = cli(tmp_path, fake, "enrich", "--input", "iocs.txt", "-o", "bundle.json")
    assert done.returncode == 1
    assert fake.requests == []
    assert done.stderr.decode().count("looks like an IPv4 address but is not one") == len(lines)


def test_an_input_file_with_a_bom_latin1_and_invalid_utf8_is_read_line_by_line(tmp_path, fake):
    content = (b"\xef\xbb\xbf138.128.150.133\n"  # UTF-8 BOM on the first line
               b"caf\xe9.example\n"  # Latin-1
               b"\xff\xfe\x00garbage\n"  # not text at all
               + GOOD.encode() + b"\r\n")
    (tmp_path / "iocs.txt").write_bytes(content)
    done = cli(tmp_path, fake, "enrich", "--input", "iocs.txt", "-o", "bundle.json")
    err = done.stderr.decode()
    assert done.returncode == 1, err
    assert "Traceback" not in err
    assert "iocs.txt line 2 is not UTF-8 text (byte 0xe9 at column 4); save the file as UTF-8" in err
    assert "iocs.txt line 3 is not UTF-8 text (byte 0xff at column 1)" in err
    rows = {line.split()[0]: line.split() for line in err.splitlines() if line and not line.startswith("failed")}
    # The BOM did not turn 8.8.8.8-like values into hostname lookups: an IPv4 lookup, answered.
    assert rows["138.128.150.133"][1:2] == ["IPv4-Addr"] and rows["138.128.150.133"][-1] == "ok"
    assert rows[GOOD][-1] == "ok"
    assert sorted(r.path for r in fake.requests) == sorted(
        ["/api/v3/ip_addresses/138.128.150.133", f"/api/v3/files/{GOOD}", "/api/v3/yara_rulesets/00888403c4"])
    bundle = json.loads((tmp_path / "bundle.json").read_text())
    assert {o["type"] for o in bundle["objects"]} >= {"ipv4-addr", "file"}


def test_an_overlong_line_is_named_and_skipped(tmp_path, fake):
    (tmp_path / "iocs.txt").write_bytes(b"a" * 100_000 + b"\n" + GOOD.encode() + b"\n")
    done = cli(tmp_path, fake, "enrich", "--input", "iocs.txt", "-o", "bundle.json")
    assert done.returncode == 1
    assert "iocs.txt line 1 is longer than 4096 bytes: skipped" in done.stderr.decode()
    assert fake.count(f"/api/v3/files/{GOOD}") == 1


def test_values_from_stdin_are_decoded_the_same_way(tmp_path, fake):
    done = cli(tmp_path, fake, "enrich", "--input", "-", stdin=b"\xef\xbb\xbf" + GOOD.encode() + b"\n")
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout)["type"] == "bundle"


def test_a_utf16_file_is_a_usage_error(tmp_path, fake):
    (tmp_path / "iocs.txt").write_text(GOOD + "\n", encoding="utf-16")
    done = cli(tmp_path, fake, "enrich", "--input", "iocs.txt")
    assert done.returncode == 2
    assert done.stderr.decode().strip() == "vtframework: --input iocs.txt is UTF-16 text: save it as UTF-8 (one value per line)"
    assert fake.requests == []


def test_an_unknown_type_is_a_usage_error(tmp_path, fake):
    done = cli(tmp_path, fake, "enrich", "--type", "mutex", GOOD)
    assert done.returncode == 2
    assert done.stderr.decode().strip().startswith("vtframework: enrich: --type: unknown type 'mutex'")
    assert fake.requests == []


def test_an_unknown_type_with_replay_is_a_usage_error_too(tmp_path, fake):
    done = cli(tmp_path, fake, "enrich", "--replay", "-t", "ipv5")
    assert done.returncode == 2 and len(done.stderr.decode().strip().splitlines()) == 1
