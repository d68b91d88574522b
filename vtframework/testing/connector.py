"""A real ``vtframework run MODE`` process against the fake OpenCTI, a real RabbitMQ and the fake VirusTotal."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

from vtframework.policy.markings import TLP_MARKINGS
from vtframework.testing.fakeopencti import FakeOpenCTI

RABBITMQ = ("127.0.0.1", 5672)


def require_service(host_port: tuple[str, int], name: str) -> None:
    """In a test: skip without the service locally, fail without it in CI (CI=true)."""
    import pytest

    try:
        with socket.create_connection(host_port, timeout=2):
            return
    except OSError as exc:
        message = f"{name} is not reachable at {host_port[0]}:{host_port[1]} ({exc})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; CI must run this test")
        pytest.skip(f"{message}; set CI=true to make this a failure")


def marking(tlp: str) -> dict:
    """An objectMarking entry as OpenCTI's GraphQL returns it."""
    return {"id": str(uuid.uuid4()), "standard_id": TLP_MARKINGS[tlp]["id"], "entity_type": "Marking-Definition",
            "definition_type": "TLP", "definition": tlp, "x_opencti_order": 1, "x_opencti_color": "#fff",
            "created": "2022-01-01T00:00:00.000Z", "modified": "2022-01-01T00:00:00.000Z"}


class Connector:
    """A ``vtframework run MODE`` process and what it needs around it."""

    def __init__(self, mode: str, opencti: FakeOpenCTI, vt_base_url: str, state_dir: Path,
                 connector_id: str | None = None, **env: str) -> None:
        """:param connector_id: the id of a connector that ran before (a restart); a new one by default."""
        self.id = connector_id or str(uuid.uuid4())
        self.opencti = opencti
        self.log_path = state_dir / f"connector-{self.id}-{uuid.uuid4().hex[:6]}.log"
        environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "OPENCTI_URL": opencti.url,
            "OPENCTI_TOKEN": str(uuid.uuid4()),
            "OPENCTI_JSON_LOGGING": "false",
            "CONNECTOR_ID": self.id,
            "CONNECTOR_LOG_LEVEL": "info",
            "VIRUSTOTAL_BASE_URL": vt_base_url,
            "VIRUSTOTAL_TOKEN": "test-key",
            "VIRUSTOTAL_DOWNLOADER_API_KEY": "test-key",
            "VIRUSTOTAL_LIVEHUNT_TOKEN": "test-key",
            "VIRUSTOTAL_DETECT_QUOTA": "false",
            "VIRUSTOTAL_REQUESTS_PER_MINUTE": "1000",
            "VIRUSTOTAL_REQUESTS_PER_DAY": "100000",
            "VTF_STATE_DIR": str(state_dir / self.id),
            "VTF_EXTERNAL_PLUGINS": "false",
        }
        environment.update(env)
        self.env = environment
        self.mode = mode
        self.process: subprocess.Popen | None = None

    def start(self) -> "Connector":
        registered_before = self.opencti.registrations.count(self.id)
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vtframework", "run", self.mode],
            env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while self.opencti.registrations.count(self.id) <= registered_before:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"connector did not register:\n{self.output()}")
            time.sleep(0.05)
        return self

    def rss(self) -> tuple[int, int]:
        """Resident memory of the process now and at its peak, in bytes (Linux)."""
        fields = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0]) * 1024
        return fields["VmRSS"], fields["VmHWM"]

    def open_files(self) -> int:
        """How many file descriptors the process holds now (Linux)."""
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def wait(self, timeout: float = 60.0) -> int:
        """Wait for the process to end by itself (a run-and-terminate connector); its exit code."""
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the connector did not stop within {timeout} s:\n{self.output()}") from None

    def wait_for(self, condition: Callable[[], Any], what: str, timeout: float = 30.0) -> None:
        """Wait until ``condition()`` holds; fail with the connector's output if it stops or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"the connector stopped while waiting for {what}:\n{self.output()}")
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._log.close()


def enrichment_request(opencti: FakeOpenCTI, value: str, tlp: str = "TLP:GREEN") -> dict[str, Any]:
    """A manual enrichment request for a new observable of ``value`` (an IPv4, a SHA-256 or a domain)."""
    entity_type, stix_type = (
        ("IPv4-Addr", "ipv4-addr") if value[0].isdigit() and len(value) < 20
        else ("StixFile", "file") if len(value) == 64 else ("Domain-Name", "domain-name")
    )
    standard_id = f"{stix_type}--{uuid.uuid4()}"
    hashes = {"SHA-256": value} if stix_type == "file" else None
    entity = opencti.add_entity({
        "standard_id": standard_id, "entity_type": entity_type, "observable_value": value,
        "objectMarking": [marking(tlp)],
        "hashes": [{"algorithm": "SHA-256", "hash": value}] if hashes else [],
    })
    stix_entity = {"type": stix_type, "spec_version": "2.1", "id": standard_id,
                   "object_marking_refs": [TLP_MARKINGS[tlp]["id"]],
                   **({"hashes": hashes} if hashes else {"value": value})}
    return opencti.enrichment_message(entity, stix_entity)


def publish_requests(opencti: FakeOpenCTI, connector_id: str, values: list[str], count: int) -> list[str]:
    """Publish ``count`` enrichment requests (cycling through ``values``); their work ids."""
    work_ids = []
    for index in range(count):
        message = enrichment_request(opencti, values[index % len(values)])
        opencti.publish(connector_id, message)
        work_ids.append(message["internal"]["work_id"])
    return work_ids


def running(connector: Connector) -> Iterator[Connector]:
    connector.start()
    try:
        yield connector
    finally:
        connector.stop()
