"""A `.env` in the working directory, read as upstream connectors read theirs; the environment still wins."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

from vtframework.testing.fakeopencti import FakeOpenCTI

TOKEN = str(uuid.uuid4())


def vtframework(*args, cwd, **env):
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "VTF_EXTERNAL_PLUGINS": "false", **env}
    return subprocess.run([sys.executable, "-m", "vtframework", *args], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=60)


def row(listing: str, variable: str) -> list[str]:
    return next(line.split() for line in listing.splitlines() if line.startswith(variable + " "))


def test_dotenv_values_apply_and_the_environment_wins(tmp_path):
    (tmp_path / ".env").write_text(
        "# an upstream-style .env\n"
        "VIRUSTOTAL_MAX_TLP=TLP:GREEN\n"
        'export CONNECTOR_NAME="VirusTotal from .env"\n'
        "VIRUSTOTAL_TOKEN='secret-from-dotenv'\n"
    )
    done = vtframework("config", cwd=tmp_path, CONNECTOR_NAME="FromEnvironment")
    assert done.returncode == 0, done.stderr
    assert row(done.stdout, "VIRUSTOTAL_MAX_TLP")[-2:] == ["TLP:GREEN", "env"]
    assert row(done.stdout, "CONNECTOR_NAME")[-2:] == ["FromEnvironment", "env"]
    assert "secret-from-dotenv" not in done.stdout + done.stderr
    assert row(done.stdout, "VIRUSTOTAL_TOKEN")[-2:] == ["****", "env"]


def test_a_dotenv_alone_runs_an_original_service(tmp_path):
    """The downloader's .env (its key only) picks the downloader connector, as its environment would."""
    with FakeOpenCTI(token=TOKEN) as opencti:
        (tmp_path / ".env").write_text(f"OPENCTI_URL={opencti.url}\nOPENCTI_TOKEN={TOKEN}\n"
                                       "VIRUSTOTAL_DOWNLOADER_API_KEY=key\n")
        done = vtframework("run", "--check", cwd=tmp_path)
    assert done.returncode == 0, done.stderr + done.stdout
    assert done.stdout.startswith("downloader connector") and "they match" in done.stdout


def test_a_file_that_is_not_a_dotenv_is_refused_in_one_line(tmp_path):
    (tmp_path / ".env").write_bytes(b"A=" + b"x" * (2 << 20))
    done = vtframework("config", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("vtframework: ") and "not a .env file" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
