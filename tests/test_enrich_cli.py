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
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "VTF_DISABLE_PLUGINS": "hello"}
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
    assert row.split()[1:8] == ["StixFile", "47/74", "72", row.split()[4], "2", "no", "ok"]
    assert "failed:" not in done.stderr
    types = {obj["type"] for obj in bundle["objects"]}
    assert {"identity", "marking-definition", "file", "note", "indicator", "relationship"} <= types


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
    for command in ([], ["enrich"], ["plugins"], ["config"]):
        done = vtframework(*command, "--help", cwd=tmp_path)
        assert done.returncode == 0 and "usage: vtframework" in done.stdout


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
