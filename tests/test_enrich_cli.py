"""`vtframework enrich`: the main job, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from vtframework.testing import assert_valid_bundle

MALICIOUS = "4bc00f7d638e042da764e8648c03c0db46700599dd4f08d117e3e9e8b538519b"


def vtframework(*args, cwd, env=None):
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "VTF_EXTERNAL_PLUGINS": "false"}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "vtframework", *args], cwd=cwd, env=environment,
        capture_output=True, text=True, timeout=120,
    )


def test_replay_without_values_enriches_every_recording(tmp_path):
    done = vtframework("enrich", "--replay", "-o", "bundle.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    bundle = json.loads((tmp_path / "bundle.json").read_text())
    assert_valid_bundle(bundle)
    table = done.stderr.splitlines()
    assert table[0].split()[:3] == ["VALUE", "TYPE", "MALICIOUS"]
    row = next(line for line in table if line.startswith(MALICIOUS))
    # The report, its YARA ruleset, and (replay turns on what costs quota) its comments and votes.
    assert row.split()[1:8] == ["StixFile", "47/74", "72", row.split()[4], "4", "no", "ok"]
    assert "failed:" not in done.stderr
    types = {obj["type"] for obj in bundle["objects"]}
    assert {"identity", "marking-definition", "file", "note", "indicator", "relationship"} <= types


def test_replay_shows_the_threat_context_features_that_cost_quota(tmp_path):
    orcus = "6b60666d6ace3a450d54fe7b915c46632172ca0d4127d87873f0c111560e66cb"
    done = vtframework("enrich", "--replay", orcus, "http://example.com/", "-o", "bundle.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    bundle = json.loads((tmp_path / "bundle.json").read_text())
    assert_valid_bundle(bundle)
    objects = bundle["objects"]
    # Off by default because they cost requests, on in replay because it costs none.
    assert {o["name"] for o in objects if o.get("pattern_type") == "sigma"} == {
        "Hidden Executable In NTFS Alternate Data Stream", "Unsigned DLL Loaded by Windows Utility",
    }
    assert {o["x_mitre_id"] for o in objects if o["type"] == "attack-pattern"} == {"T1564.004", "T1218.011"}
    community = next(o for o in objects if o["type"] == "note" and o["abstract"] == "VirusTotal Community")
    assert "the newest 10 weigh +17" in community["content"]
    # Free features, on by default.
    assert [o["name"] for o in objects if o["type"] == "malware"] == ["orcusrat"]
    assert {o["pattern_type"] for o in objects if o["type"] == "indicator"} >= {"snort", "suricata", "sigma", "stix"}
    assert sum(1 for o in objects if o["type"] == "note" and o["abstract"] == "VirusTotal Score Explained") == 2
    row = next(line for line in done.stderr.splitlines() if line.startswith(orcus))
    # The report, 6 YARA rulesets (not in the recordings: 6 warnings), 2 Sigma rules, comments, votes.
    assert row.split()[5:7] == ["11", "no"] and "6 warning(s)" in row


def test_values_from_a_file_and_stdout(tmp_path):
    (tmp_path / "iocs.txt").write_text(f"# today's hashes\n{MALICIOUS}\n\n{MALICIOUS}\n")
    done = vtframework("enrich", "--replay", "--input", "iocs.txt", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    bundle = json.loads(done.stdout)
    assert sum(1 for obj in bundle["objects"] if obj["type"] == "file") == 1
    assert done.stderr.count(MALICIOUS) == 1  # duplicates are looked up once


def test_some_failures_exit_1_with_each_reason(tmp_path):
    unknown = "0" * 64
    done = vtframework("enrich", "--replay", MALICIOUS, unknown, "not a value", "abcd" * 32, cwd=tmp_path)
    assert done.returncode == 1
    assert f"failed: StixFile {unknown}: " in done.stderr
    assert "not found" in done.stderr.lower()
    assert "cannot tell what 'not a value' is" in done.stderr
    assert "is a SHA-512: VirusTotal looks files up by MD5, SHA-1 or SHA-256" in done.stderr
    bundle = json.loads(done.stdout)  # what succeeded is still written
    assert any(obj.get("hashes", {}).get("SHA-256") == MALICIOUS for obj in bundle["objects"])


@pytest.mark.parametrize(
    "args,message",
    [
        (["enrich"], "give at least one VALUE or --input FILE"),
        (["enrich", "--workers", "0", "1.1.1.1"], "--workers must be at least 1"),
        (["enrich", "--tlp", "PURPLE", "1.1.1.1"], "is not a TLP"),
        (["enrich", "--bogus"], "unrecognized arguments: --bogus"),
        (["enrich", "--input", "missing.txt"], "cannot read --input missing.txt"),
    ],
)
def test_usage_errors_exit_2_in_one_line(tmp_path, args, message):
    done = vtframework(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_without_key_and_without_replay_says_what_to_set(tmp_path):
    done = vtframework("enrich", "1.1.1.1", cwd=tmp_path)
    assert done.returncode == 2
    assert "VIRUSTOTAL_TOKEN (virustotal.token) is required to query VirusTotal (or use --replay)" in done.stderr


def test_tlp_red_values_are_not_sent(tmp_path):
    done = vtframework("enrich", "--replay", "--tlp", "TLP:RED", MALICIOUS, cwd=tmp_path)
    assert done.returncode == 1
    assert "TLP:RED, above VIRUSTOTAL_MAX_TLP=TLP:AMBER: nothing was sent to VirusTotal" in done.stderr


def test_help_on_every_command(tmp_path):
    for command in ([], ["enrich"], ["plugins"], ["config"], ["plugin"], ["plugin", "new"]):
        done = vtframework(*command, "--help", cwd=tmp_path)
        assert done.returncode == 0 and "usage: vtframework" in done.stdout


def test_a_file_s_id_follows_the_stix_rule_for_the_hashes_it_ends_up_with(tmp_path):
    """Given by SHA-256 or by MD5, the same file gets the same id: the one STIX derives from its final hashes."""
    import stix2

    ids = set()
    for value in (MALICIOUS, "546bb6ef89bebfb053999777f6930d7e"):
        done = vtframework("enrich", "--replay", value, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        bundle = json.loads(done.stdout)
        assert_valid_bundle(bundle)
        (file,) = [obj for obj in bundle["objects"] if obj["type"] == "file"]
        assert {"MD5", "SHA-1", "SHA-256"} <= set(file["hashes"])
        assert file["id"] == stix2.File(hashes=file["hashes"], name=file["name"]).id
        ids.add(file["id"])
        text = json.dumps(bundle)
        assert stix2.File(hashes={"SHA-256": MALICIOUS}).id not in text  # no reference left to the first id
        pointing = [o for o in bundle["objects"] if file["id"] in (o.get("source_ref"), o.get("target_ref"))
                    or file["id"] in o.get("object_refs", [])]
        assert {o["type"] for o in pointing} == {"relationship", "note"}
    assert len(ids) == 1


def test_a_fully_cached_rerun_makes_no_request_at_all(tmp_path, samples_dir):
    from vtframework.testing import FakeVirusTotal

    with FakeVirusTotal(str(samples_dir), api_key="test-key") as fake:
        fake.add_route("GET", "/users/test-key/overall_quotas", 200,
                       {"data": {"api_requests_daily": {"user": {"allowed": 1000, "used": 1}}}})
        env = {"VIRUSTOTAL_TOKEN": "test-key", "VIRUSTOTAL_BASE_URL": fake.base_url, "VTF_STATE_DIR": "state"}
        first = vtframework("enrich", MALICIOUS, "138.128.150.133", cwd=tmp_path, env=env)
        assert first.returncode == 0, first.stderr
        assert fake.count("/api/v3/users/") == 1  # the key's quota, read once before the first lookup
        fake.clear_log()
        again = vtframework("enrich", MALICIOUS, "138.128.150.133", cwd=tmp_path, env=env)
        assert again.returncode == 0, again.stderr
        assert fake.requests == []  # not even the quota: nothing needed VirusTotal
        assert {o["id"] for o in json.loads(again.stdout)["objects"]} == {o["id"] for o in json.loads(first.stdout)["objects"]}
