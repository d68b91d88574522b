"""Drop-in: the environment of each original connector's service runs on our image unchanged."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT.parent / "shared" / "seeds"

#: The docker-compose environments the original connectors' READMEs document.
ORIGINAL_SERVICES = {
    "connector-virustotal": ("enrichment", ["OPENCTI_URL=http://localhost", "OPENCTI_TOKEN=ChangeMe",
                                            "VIRUSTOTAL_TOKEN=ChangeMe"]),
    "connector-virustotal-downloader": ("downloader", ["OPENCTI_URL=http://localhost", "OPENCTI_TOKEN=ChangeMe",
                                                       "VIRUSTOTAL_DOWNLOADER_API_KEY=ChangeMe"]),
    "connector-virustotal-livehunt": ("livehunt", [
        "OPENCTI_URL=http://localhost", "OPENCTI_TOKEN=ChangeMe", "CONNECTOR_ID=ChangeMe",
        "CONNECTOR_NAME=VirusTotal LiveHunts", "CONNECTOR_SCOPE=yara", "CONNECTOR_CONFIDENCE_LEVEL=80",
        "CONNECTOR_LOG_LEVEL=info", "CONNECTOR_LIVE_STREAM_ID=ChangeMe", "CONNECTOR_LIVE_STREAM_LISTEN_DELETE=true",
        "CONNECTOR_LIVE_STREAM_NO_DEPENDENCIES=true", "VIRUSTOTAL_LIVEHUNT_TOKEN=ChangeMe",
        "VIRUSTOTAL_LIVEHUNT_NOTIFICATION_EMAILS=user@example.com",
        'VIRUSTOTAL_LIVEHUNT_SHARED_OWNERS=["user1", "user2"]',
    ]),
    # The environment of the original notifications connector's README.
    "connector-virustotal-livehunt-notifications": ("notifications", [
        "OPENCTI_URL=http://localhost", "OPENCTI_TOKEN=ChangeMe", "CONNECTOR_ID=ChangeMe",
        "CONNECTOR_NAME=VirusTotal Livehunt Notifications", "CONNECTOR_SCOPE=StixFile,Indicator,Incident",
        "CONNECTOR_LOG_LEVEL=error", "VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_API_KEY=ChangeMe",
        "VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_INTERVAL_SEC=300", "VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_CREATE_ALERT=True",
        "VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_CREATE_FILE=True", "VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_CREATE_YARA_RULE=True",
        "VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_MAX_AGE_DAYS=3",
    ]),
}


@pytest.fixture(scope="module")
def platform():
    """The user's OpenCTI (``--check`` reads its version), of the version the installed pycti needs."""
    from vtframework.testing.fakeopencti import FakeOpenCTI

    with FakeOpenCTI() as fake:
        yield fake


def check(environment: list[str], tmp_path: Path, platform) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "VTF_EXTERNAL_PLUGINS": "false"}
    for item in environment:
        name, _, value = item.partition("=")
        # Placeholders stand for the user's real values, and localhost for the user's platform.
        env[name] = "5bd8e0ba-6a8a-4b8f-9b5c-0e6a2b1b1f9e" if value == "ChangeMe" else value
        if name == "OPENCTI_URL":
            env[name] = platform.url
    return subprocess.run([sys.executable, "-m", "vtframework", "run", "--check"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("service", sorted(ORIGINAL_SERVICES))
def test_original_service_environment_selects_its_connector(service, tmp_path, platform):
    mode, environment = ORIGINAL_SERVICES[service]
    done = check(environment, tmp_path, platform)
    assert done.returncode == 0, done.stderr + done.stdout
    assert done.stdout.startswith(f"{mode} connector")
    assert f"OpenCTI {platform.version}, pycti {platform.version}: they match" in done.stdout


@pytest.mark.skipif(not SEEDS.is_dir(), reason="the shared seed READMEs are not beside this checkout")
def test_seed_compose_files_are_the_ones_we_check():
    for seed in SEEDS.glob("*.txt"):
        for block in re.findall(r"```yaml\n(.*?)```", seed.read_text(encoding="utf-8"), re.S):
            services = (yaml.safe_load(block) or {}).get("services") or yaml.safe_load(block)
            for name, service in services.items():
                assert ORIGINAL_SERVICES[name][1] == service["environment"]


@pytest.mark.parametrize("service", sorted(ORIGINAL_SERVICES))
def test_our_compose_file_keeps_each_service_environment(service, tmp_path, platform):
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    ours = compose["services"][service]["environment"]
    assert set(ORIGINAL_SERVICES[service][1]) <= set(ours)
    done = check(ours, tmp_path, platform)
    assert done.returncode == 0, done.stderr + done.stdout
    assert done.stdout.startswith(f"{ORIGINAL_SERVICES[service][0]} connector")


def test_dockerfile_runs_the_detecting_entrypoint():
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert 'ENTRYPOINT ["vtframework"]' in dockerfile and 'CMD ["run"]' in dockerfile
    assert "CONNECTOR_TYPE" not in re.sub(r"#.*", "", dockerfile)  # the image must not pin one connector


def test_dockerfile_pins_pycti_exactly_and_ships_the_manifests():
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    pinned = re.search(r"^ARG PYCTI_VERSION=(\S+)$", dockerfile, re.M).group(1)
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned), pinned
    assert '"pycti==${PYCTI_VERSION}"' in dockerfile and "COPY __metadata__" in dockerfile
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"`{pinned}` (the image's default)" in readme and "--build-arg PYCTI_VERSION=" in readme
    from vtframework.opencti.version import installed_pycti

    if installed_pycti().startswith("7."):
        assert pinned == installed_pycti(), "the image pins another 7.x pycti than the one tested"
