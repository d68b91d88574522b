"""A recognisable API key goes through errors, rejections and answers that echo it, at debug level.

Every output, log, bundle and state file is then searched for it: it must
appear nowhere. The command line and the enrichment connector are both run,
each in a process of its own, as users run them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from vtframework.testing import FakeVirusTotal
from vtframework.testing.connector import Connector, running

FILE = "4bc00f7d638e042da764e8648c03c0db46700599dd4f08d117e3e9e8b538519b"
IP = "138.128.150.133"
DOMAIN = "haiku-os.org"
CANARY = "VTCANARY" + uuid.uuid4().hex
QUOTAS = {"data": {"api_requests_daily": {"user": {"allowed": 1000, "used": 3}},
                   "api_requests_minute": {"user": {"allowed": 1000, "used": 0}}}}


def files_under(*roots: Path) -> list[Path]:
    return [path for root in roots for path in root.rglob("*") if path.is_file()]


def assert_no_canary(texts: dict[str, str | bytes], *roots: Path) -> None:
    leaks = [name for name, text in texts.items() if CANARY in (text if isinstance(text, str) else text.decode("latin-1"))]
    leaks += [str(path) for path in files_under(*roots) if CANARY.encode() in path.read_bytes()]
    assert leaks == [], f"the key leaked into {leaks}"


@pytest.fixture
def fake(samples_dir):
    with FakeVirusTotal(str(samples_dir), api_key=CANARY) as vt:
        vt.add_route("GET", f"/users/{CANARY}/overall_quotas", 200, QUOTAS)
        yield vt


def hostile(fake: FakeVirusTotal) -> None:
    """Errors the client logs and retries, and answers that echo the key back."""
    fake.inject("500", count=1, path_prefix=f"/files/{FILE}")
    fake.inject("reset", count=1, path_prefix=f"/files/{FILE}")
    fake.inject("echo_key", count=10, path_prefix=f"/ip_addresses/{IP}")
    fake.inject("echo_key_200", count=10, path_prefix=f"/domains/{DOMAIN}")
    fake.add_route("GET", "/files/" + "e" * 64, 200, f"<html>proxy page, your key is {CANARY}</html>",
                   headers={"Content-Type": "text/html"})


def cli(tmp_path: Path, fake: FakeVirusTotal, *args: str, key: str = CANARY) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "VTF_EXTERNAL_PLUGINS": "false",
           "VIRUSTOTAL_TOKEN": key, "VIRUSTOTAL_BASE_URL": fake.base_url,
           "VIRUSTOTAL_DOMAIN_ADD_RELATIONSHIPS": "true", "VTF_STATE_DIR": str(tmp_path / "state")}
    return subprocess.run([sys.executable, "-m", "vtframework", "-v", "-v", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_command_line_never_shows_the_key(fake, tmp_path):
    hostile(fake)
    done = cli(tmp_path, fake, "enrich", FILE, IP, DOMAIN, "e" * 64, "-o", "bundle.json")
    assert done.returncode == 1, done.stderr  # the echoing 400 and the proxy page fail; the rest works
    # What was exercised: the quota read that names the key in its path, the retries, the echoes.
    assert "/users/<redacted>/overall_quotas" in done.stderr
    assert "retry 1" in done.stderr and "<redacted>" in (tmp_path / "bundle.json").read_text()
    assert fake.count(f"/api/v3/users/{CANARY}") == 1
    assert_no_canary({"stdout": done.stdout, "stderr": done.stderr}, tmp_path)


def test_a_rejected_key_says_so_in_one_line_and_never_shows_itself(fake, tmp_path):
    wrong = CANARY[::-1]
    done = cli(tmp_path, fake, "enrich", FILE, IP, key=wrong)
    assert done.returncode == 2
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("vtframework:")]
    assert "VirusTotal rejected the API key (401 WrongCredentialsError" in line and "VIRUSTOTAL_TOKEN" in line
    assert "Traceback" not in done.stderr and wrong not in done.stderr
    assert fake.count("/api/v3/", status=401) == 1  # the first refusal stops everything
    assert not (tmp_path / "state").exists() or all(wrong.encode() not in p.read_bytes()
                                                   for p in files_under(tmp_path / "state"))


@pytest.mark.parametrize("key", [CANARY + "\n", f"  {CANARY}\r\n"])
def test_a_key_with_surrounding_whitespace_is_stripped(fake, tmp_path, key):
    done = cli(tmp_path, fake, "enrich", FILE, key=key)
    assert done.returncode == 0, done.stderr
    assert_no_canary({"stdout": done.stdout, "stderr": done.stderr}, tmp_path)


def test_a_key_with_whitespace_inside_is_refused_by_name(fake, tmp_path):
    done = cli(tmp_path, fake, "enrich", FILE, key=CANARY[:20] + "\n" + CANARY[20:])
    assert done.returncode == 2
    assert done.stderr.strip().endswith(
        "VIRUSTOTAL_TOKEN holds whitespace or control characters inside the key; set it to the key alone"
    )
    assert CANARY[:20] not in done.stderr and "Traceback" not in done.stderr
    assert fake.requests == []


@pytest.mark.services
def test_the_connector_never_logs_the_key(fake, opencti, tmp_path):
    from tests.test_opencti_enrichment import enrich, observable

    hostile(fake)
    # JSON logging, as in production: pycti then puts every logger at CONNECTOR_LOG_LEVEL.
    connector = Connector("enrichment", opencti, fake.base_url, tmp_path, VIRUSTOTAL_TOKEN=CANARY,
                          VIRUSTOTAL_DETECT_QUOTA="true", CONNECTOR_LOG_LEVEL="debug", OPENCTI_JSON_LOGGING="true",
                          VIRUSTOTAL_DOMAIN_ADD_RELATIONSHIPS="true")
    messages = []
    for _ in running(connector):
        for entity_type, stix_type, value, hashes in (
            ("StixFile", "file", FILE, {"SHA-256": FILE}),
            ("IPv4-Addr", "ipv4-addr", IP, None),
            ("Domain-Name", "domain-name", DOMAIN, None),
        ):
            entity, stix_entity = observable(opencti, entity_type, stix_type, value, hashes=hashes)
            done, _ = enrich(opencti, connector, entity, stix_entity)
            messages.append(done.variables["message"])
        bundles = opencti.pushed_bundles(connector.id, expect=2)
    assert '"level": "DEBUG"' in connector.output()
    assert "rejected the request as invalid" in messages[1]
    assert "<redacted>" in json.dumps(bundles)  # the echoed key was in the answer, and did not go further
    assert_no_canary({"log": connector.output(), "work messages": json.dumps(messages),
                      "bundles": json.dumps(bundles)}, tmp_path)


@pytest.mark.services
def test_a_connector_with_a_rejected_key_stops_in_one_line(fake, opencti, tmp_path):
    wrong = CANARY[::-1]
    connector = Connector("enrichment", opencti, fake.base_url, tmp_path, VIRUSTOTAL_TOKEN=wrong,
                          VIRUSTOTAL_DETECT_QUOTA="true", CONNECTOR_LOG_LEVEL="debug")
    done = subprocess.run([sys.executable, "-m", "vtframework", "run", "enrichment"], env=connector.env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "vtframework: quota of the API key: VirusTotal rejected the API key (401 WrongCredentialsError: "
        "Wrong API key); check VIRUSTOTAL_TOKEN"
    ]
    assert wrong not in done.stdout + done.stderr
    assert connector.id not in opencti.registrations  # it stopped before registering
