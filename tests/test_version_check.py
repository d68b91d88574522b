"""The platform's version against the installed pycti's: `run --check`, the start-up warning, VTF_STRICT_VERSION."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid

import pytest

from vtframework.errors import ConfigError
from vtframework.opencti.version import VersionCheck, check, enforce, installed_pycti
from vtframework.testing.fakeopencti import FakeOpenCTI

PYCTI = installed_pycti()
#: A platform of the other supported line than the installed pycti's (the newest of it).
OTHER = "6.9.29" if PYCTI.startswith("7.") else "7.261026.0"
TOKEN = str(uuid.uuid4())


def vtframework(*args, opencti_url, **env):
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "VTF_EXTERNAL_PLUGINS": "false",
                   "OPENCTI_URL": opencti_url, "OPENCTI_TOKEN": TOKEN, "OPENCTI_JSON_LOGGING": "false",
                   "CONNECTOR_ID": str(uuid.uuid4()), "VIRUSTOTAL_TOKEN": "test-key", **env}
    return subprocess.run([sys.executable, "-m", "vtframework", *args], env=environment,
                          capture_output=True, text=True, timeout=120)


def test_check_prints_the_comparison_when_they_match():
    with FakeOpenCTI(token=TOKEN) as opencti:
        done = vtframework("run", "enrichment", "--check", opencti_url=opencti.url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1] == f"OpenCTI {PYCTI}, pycti {PYCTI}: they match"


def test_check_says_what_to_install_against_another_version():
    with FakeOpenCTI(version=OTHER, token=TOKEN) as opencti:
        done = vtframework("run", "enrichment", "--check", opencti_url=opencti.url)
        assert not [c for c in opencti.calls if c.operation == "RegisterConnector"]  # a check registers nothing
    assert done.returncode == 1
    line = done.stdout.splitlines()[1]
    assert line == (f"OpenCTI is {OTHER} but pycti {PYCTI} is installed; they must be equal: "
                    f"pip install 'pycti=={OTHER}', or build the image with --build-arg PYCTI_VERSION={OTHER} "
                    f"(a {PYCTI.split('.')[0]}.x pycti cannot register on a {OTHER.split('.')[0]}.x platform)")


def test_strict_version_refuses_to_start_before_registering():
    with FakeOpenCTI(version=OTHER, token=TOKEN) as opencti:
        done = vtframework("run", "enrichment", opencti_url=opencti.url, VTF_STRICT_VERSION="true")
        assert [c.operation for c in opencti.calls] == ["vtframeworkPlatformVersion"]
    assert done.returncode == 2
    assert f"OpenCTI is {OTHER} but pycti {PYCTI} is installed" in done.stderr
    assert "refused (VTF_STRICT_VERSION)" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def connector_log(tmp_path, version, wanted, **env):
    """What ``run enrichment`` writes (plain-text logs) against a platform of ``version``, until ``wanted`` shows."""
    from vtframework.testing.connector import RABBITMQ, require_service

    require_service(RABBITMQ, "RabbitMQ")
    with FakeOpenCTI(version=version, token=TOKEN) as opencti:
        log = tmp_path / "connector.log"
        environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "VTF_EXTERNAL_PLUGINS": "false",
                       "OPENCTI_URL": opencti.url, "OPENCTI_TOKEN": TOKEN, "OPENCTI_JSON_LOGGING": "false",
                       "CONNECTOR_ID": str(uuid.uuid4()), "VIRUSTOTAL_TOKEN": "test-key",
                       "VTF_STATE_DIR": str(tmp_path), **env}
        with open(log, "wb") as out:
            process = subprocess.Popen([sys.executable, "-m", "vtframework", "run", "enrichment"], env=environment,
                                       stdout=out, stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + 30
                while wanted not in log.read_text() and time.monotonic() < deadline:
                    time.sleep(0.1)
            finally:
                process.terminate()
                process.wait(timeout=15)
        return log.read_text()


@pytest.mark.services
def test_without_strict_the_connector_warns_in_one_line_then_goes_on(tmp_path):
    text = connector_log(tmp_path, OTHER, f"OpenCTI is {OTHER} but pycti {PYCTI}")
    assert f"WARNING vtframework.opencti: OpenCTI is {OTHER} but pycti {PYCTI} is installed" in text


@pytest.mark.services
def test_plain_text_logs_come_at_the_connector_log_level(tmp_path):
    """OPENCTI_JSON_LOGGING=false with CONNECTOR_LOG_LEVEL=info: the connector's INFO lines are written."""
    text = connector_log(tmp_path, PYCTI, "vtframework enrichment connector started",
                         CONNECTOR_LOG_LEVEL="info", VIRUSTOTAL_DETECT_QUOTA="false")
    assert "vtframework enrichment connector started" in text, text[-2000:]
    assert not text.lstrip().startswith("{"), "plain text was asked for, not JSON"


def test_an_unreachable_or_refusing_platform_is_named_not_guessed():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    unreachable = check(closed, TOKEN)
    assert unreachable.platform is None and "unreachable" in unreachable.line()
    with FakeOpenCTI(token="another-token") as opencti:
        refused = check(opencti.url, TOKEN)
    assert refused.platform is None and "You must be logged in" in refused.line()
    with pytest.raises(ConfigError, match="VTF_STRICT_VERSION"):
        enforce(refused, strict=True)
    enforce(refused, strict=False)


def test_lines_within_one_major_name_both_versions():
    check_ = VersionCheck("http://opencti", "7.261026.0", platform="7.261008.0")
    assert not check_.matches
    assert check_.line() == ("OpenCTI is 7.261008.0 but pycti 7.261026.0 is installed; they must be equal: "
                             "pip install 'pycti==7.261008.0', or build the image with "
                             "--build-arg PYCTI_VERSION=7.261008.0")
