"""The example plugins, as a third party would copy them: public imports, short tests that pass alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from test_architecture import imports_of

import vtframework
from vtframework.host.plugins import build_host
from vtframework import Pipeline, from_value
from vtframework.testing import offline_client, plugin_app

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NAMES = sorted(path.name for path in EXAMPLES.iterdir() if (path / "pyproject.toml").is_file())
#: What an example may import from vtframework: the package root, the errors, and the testing kit in its tests.
PUBLIC = {"vtframework", "vtframework.errors", "vtframework.testing"}


def test_there_are_examples():
    assert {"vtframework-hello", "vtframework-passivedns"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_an_example_uses_only_the_public_api_and_its_tests_are_short(name):
    for path in sorted((EXAMPLES / name).rglob("*.py")):
        tests = "tests" in path.relative_to(EXAMPLES / name).parts
        used = {module for module in imports_of(path, path.stem) if module.split(".")[0] == "vtframework"}
        private = sorted(
            module for module in used
            if module not in PUBLIC and module.split(".", 1)[-1] not in vtframework.__all__
            and not module.startswith(("vtframework.errors.", "vtframework.testing."))
        )
        assert private == [], f"{path}: reaches past the public API: {private}"
        if tests:
            assert path.read_text(encoding="utf-8").count("\n") <= 20, f"{path}: a plugin's test fits in 20 lines"
        else:
            assert not any(module.startswith("vtframework.testing") for module in used), path


@pytest.mark.parametrize("name", NAMES)
def test_an_examples_tests_pass_as_its_author_runs_them(name):
    """Alone, from its own folder's settings, with --block-network: no conftest of ours helps."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--block-network", str(EXAMPLES / name)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" in done.stdout and "skipped" not in done.stdout


def test_installed_examples_are_discovered_through_their_entry_points():
    """make install-test installs the examples; the host finds them like any third party."""
    infos = build_host(env={}).infos
    assert "passivedns" in infos, "install examples/vtframework-passivedns (make install-test)"
    assert (infos["passivedns"].origin, infos["passivedns"].status) == ("vtframework-passivedns", "loaded")
    assert infos["passivedns"].hooks == ("vtf_config_keys", "vtf_stix_objects")


def test_passivedns_costs_only_its_note_when_the_follow_up_fails():
    import vtframework_passivedns

    refused = {"error": {"code": "ForbiddenError", "message": "You are not allowed to perform the requested operation"}}
    routes = {"/ip_addresses/1.1.1.1/resolutions": (403, refused)}
    with plugin_app(vtframework_passivedns, env={"PASSIVEDNS_LIMIT": "99"}) as app, \
            offline_client(app, routes=routes) as client:
        result = Pipeline(app, client).enrich(from_value("1.1.1.1"))
        asked = [r.query for r in client.fake.requests if r.path.endswith("/resolutions")]
    assert result.ok and not result.plugin_errors, result.message
    (warning,) = result.warnings
    assert warning.startswith("passive DNS not added: passive DNS of 1.1.1.1: VirusTotal refused the request")
    assert not [n for n in result.objects if n.get("abstract", "").startswith("VirusTotal passive DNS")]
    assert asked == ["limit=40"]  # a larger limit is capped at VirusTotal's page size
