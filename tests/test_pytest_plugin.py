"""The pytest plugin shipped with vtframework, as a third party's test suite meets it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

MALICIOUS = "4bc00f7d638e042da764e8648c03c0db46700599dd4f08d117e3e9e8b538519b"

STRANGERS_TESTS = f'''
import socket
import types

import pytest

from vtframework import hookimpl


def _note(observable, context):
    return [context.factory.note("stranger", observable.value, [context.target_id])]


PLUGIN = types.SimpleNamespace(vtf_stix_objects=hookimpl(_note))


@pytest.fixture
def vtf_plugin():
    return PLUGIN


@pytest.fixture
def vtf_env():
    return {{"VIRUSTOTAL_FILE_INDICATOR_CREATE_POSITIVES": "0"}}


def test_fixtures_enrich_offline_with_the_plugin_under_test(vtf_enrich, vtf_fake_vt, vtf_app):
    result = vtf_enrich("{MALICIOUS}")
    assert result.ok and not result.plugin_errors, result.message
    assert [o["content"] for o in result.objects if o.get("abstract") == "stranger"] == ["{MALICIOUS}"]
    # vtf_env reached the app: no indicator from detections (the YARA ones stay)
    assert not [o for o in result.objects if o["type"] == "indicator" and o["pattern_type"] == "stix"]
    assert vtf_fake_vt.count("/api/v3/files/") == 1
    assert vtf_enrich("{MALICIOUS}").requests == 0  # one state for the test: the repeat is cached
    assert sorted(vtf_app.host.loaded) == [
        "classification", "community", "crowdsourced_context", "domain", "explain", "file", "gti", "ids", "ip",
        "malware_config", "sigma", "test-plugin", "url",
    ]


def test_a_plugin_and_routes_given_per_call(vtf_enrich):
    result = vtf_enrich("1.1.1.1", plugin=PLUGIN, routes={{"/ip_addresses/1.1.1.1/comments": {{"data": []}}}})
    assert result.ok, result.message


def test_the_world_stays_blocked():
    with pytest.raises(RuntimeError, match="Network is disabled"):
        socket.create_connection(("192.0.2.1", 80), timeout=1)
'''


def test_a_third_partys_tests_run_offline_under_block_network(tmp_path):
    (tmp_path / "test_stranger.py").write_text(textwrap.dedent(STRANGERS_TESTS))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--block-network", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout


def test_the_plugin_costs_a_test_run_that_does_not_use_it_nothing():
    code = (
        "import sys, vtframework.testing.pytest_plugin; "
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in ('pycti', 'requests', 'stix2'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []
