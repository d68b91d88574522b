"""`vtframework plugin new`: from nothing to a green test in two commands, and installable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def run(*args, cwd, env=None):
    environment = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    ("args", "kind"),
    [(["mine"], "a feature plugin"), (["mine", "--type", "Domain-Name"], "a type plugin for Domain-Name")],
    ids=["feature", "type"],
)
def test_new_plugin_has_a_green_test_in_two_commands(tmp_path, args, kind):
    created = run("vtframework", "plugin", "new", *args, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith(f"created vtframework-mine ({kind})")
    tested = run("pytest", "-q", "-p", "no:cacheprovider", "--block-network", "vtframework-mine", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "1 passed" in tested.stdout
    skeleton = tmp_path / "vtframework-mine"
    plugin_lines = (skeleton / "vtframework_mine" / "__init__.py").read_text().count("\n")
    test_lines = (skeleton / "tests" / "test_mine.py").read_text().count("\n")
    assert plugin_lines <= 30 and test_lines <= 20, (plugin_lines, test_lines)


def test_the_skeleton_installs_and_is_discovered_by_its_entry_point(tmp_path):
    assert run("vtframework", "plugin", "new", "mine", cwd=tmp_path).returncode == 0
    installed = run("pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(tmp_path / "site"), str(tmp_path / "vtframework-mine"), cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    listed = run("vtframework", "plugins", cwd=tmp_path, env={"PYTHONPATH": str(tmp_path / "site")})
    row = next(line for line in listed.stdout.splitlines() if line.startswith("mine "))
    assert row.split() == ["mine", "vtframework-mine", "0.1.0", "loaded", "vtf_stix_objects"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Mine"], "plugin new: 'Mine' is not a plugin name: use lower case letters, digits, - or _"),
        (["file"], "plugin new: 'file' is the name of a built-in plugin; choose another"),
        (["mine", "--type", "Artifact"], "argument --type: invalid choice: 'Artifact'"),
    ],
)
def test_refusals_are_one_line_and_exit_2(tmp_path, args, message):
    done = run("vtframework", "plugin", "new", *args, cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr and done.stderr.strip().count("\n") == 0
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_never_overwritten(tmp_path):
    (tmp_path / "vtframework-mine").mkdir()
    (tmp_path / "vtframework-mine" / "notes.txt").write_text("mine")
    done = run("vtframework", "plugin", "new", "mine", cwd=tmp_path)
    assert done.returncode == 2 and "vtframework-mine already exists" in done.stderr
    assert [p.name for p in (tmp_path / "vtframework-mine").iterdir()] == ["notes.txt"]
