"""At least once: no message is lost to an OpenCTI outage, a broker outage or a kill -9, and no work is reported twice.

Each test runs the real connector process (pycti's helper, our queue runtime)
against the fake OpenCTI and the real RabbitMQ, breaks something in the
middle of a batch, and counts the ``workToProcessed`` calls per work: exactly
one each.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from vtframework.testing import FakeVirusTotal
from vtframework.testing.connector import RABBITMQ, Connector, publish_requests, require_service
from vtframework.testing.fakeopencti import FakeOpenCTI

pytestmark = pytest.mark.services

SAMPLES = Path(__file__).parent / "samples"
VALUES = ["138.128.150.133", "1.1.1.1", "tawuhoju.com", "haiku-os.org", "github.com",
          "4bc00f7d638e042da764e8648c03c0db46700599dd4f08d117e3e9e8b538519b"]
#: Short pauses, a bound well above the outages below: the tests wait seconds, not minutes.
PATIENT = {"VTF_PLATFORM_RETRY_PAUSE": "0.2", "VTF_PLATFORM_MAX_WAIT": "30",
           "PYTHONUNBUFFERED": "1"}  # the log reads whole even after a kill -9


def publish_batch(opencti: FakeOpenCTI, connector_id: str, count: int) -> list[str]:
    return publish_requests(opencti, connector_id, VALUES, count)


def reported(opencti: FakeOpenCTI, work_ids: list[str]) -> int:
    return sum(1 for n in opencti.processed_counts(work_ids).values() if n)


def assert_each_reported_once(opencti: FakeOpenCTI, connector: Connector, work_ids: list[str]) -> None:
    connector.wait_for(lambda: reported(opencti, work_ids) == len(work_ids), "every work reported", timeout=60)
    time.sleep(0.5)  # a second report would come now, if it ever came
    counts = opencti.processed_counts(work_ids)
    assert [w for w, n in counts.items() if n != 1] == [], counts
    for work_id in work_ids:
        done = opencti.wait_processed(work_id)
        assert (done.variables.get("message") or "").strip(), f"work {work_id} was reported with no reason"


@pytest.fixture(scope="module")
def vt() -> Iterator[FakeVirusTotal]:
    with FakeVirusTotal(str(SAMPLES)) as fake:
        yield fake


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


@contextlib.contextmanager
def started(connector: Connector) -> Iterator[Connector]:
    connector.start()
    try:
        connector.opencti.wait_consumers(connector.id)
        yield connector
    finally:
        connector.stop()


@pytest.mark.parametrize("kind", ["graphql_error", "http_502"])
def test_an_opencti_outage_mid_batch_loses_nothing(opencti, vt, workdir, kind, outage_seconds=2.0):
    with started(Connector("enrichment", opencti, vt.base_url, workdir, **PATIENT)) as connector:
        work_ids = publish_batch(opencti, connector.id, 15)
        connector.wait_for(lambda: reported(opencti, work_ids) >= 3, "the first works")
        refused_before = len(opencti.outage_refused)
        opencti.outage(kind, outage_seconds)
        assert_each_reported_once(opencti, connector, work_ids)
        assert len(opencti.outage_refused) > refused_before, "the outage never met the connector"
        assert "OpenCTI is unavailable" in connector.output()
    failed = [opencti.wait_processed(w) for w in work_ids]
    assert not [d for d in failed if "unavailable" in (d.variables.get("message") or "")], \
        "an outage shorter than the wait must not fail a work"


class Proxy:
    """A TCP proxy in front of RabbitMQ that can be cut: every connection dropped, new ones refused a while."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if time.monotonic() < self._down_until:
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, server))
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            with self._lock:
                self._sockets.difference_update((source, target))

    def cut(self, seconds: float) -> None:
        self._down_until = time.monotonic() + seconds
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        self.cut(0)


def test_a_broker_outage_mid_batch_loses_nothing_and_reports_each_work_once(opencti, vt, workdir):
    require_service(RABBITMQ, "RabbitMQ")
    proxy = Proxy(RABBITMQ)
    try:
        env = {**PATIENT, "MQ_HOST": "127.0.0.1", "MQ_PORT": str(proxy.port)}
        with started(Connector("enrichment", opencti, vt.base_url, workdir, **env)) as connector:
            work_ids = publish_batch(opencti, connector.id, 15)
            connector.wait_for(lambda: reported(opencti, work_ids) >= 3, "the first works")
            proxy.cut(2.0)
            assert_each_reported_once(opencti, connector, work_ids)
            assert "RabbitMQ is unavailable" in connector.output()
            # Every work pushed its bundle: nothing was reported done with its objects lost.
            pushed = {work for work, _bundle in opencti.pushed_messages(connector.id, expect=len(work_ids))}
            assert set(work_ids) <= pushed
    finally:
        proxy.close()


def test_kill_9_mid_message_then_a_restart_does_every_work_once(opencti, workdir):
    with FakeVirusTotal(str(SAMPLES), latency=0.3) as slow_vt:  # each message spends a while in flight
        first = Connector("enrichment", opencti, slow_vt.base_url, workdir, **PATIENT,
                          VIRUSTOTAL_CACHE_TTL="0")
        with started(first):
            work_ids = publish_batch(opencti, first.id, 12)
            first.wait_for(lambda: reported(opencti, work_ids) >= 3, "the first works")

            def in_flight() -> list[str]:
                received = {c.variables.get("id") for c in list(opencti.calls) if c.operation == "workToReceived"}
                counts = opencti.processed_counts(work_ids)
                return [w for w in work_ids if w in received and not counts[w]]

            first.wait_for(in_flight, "a message in flight")
            killed = in_flight()
            os.kill(first.process.pid, signal.SIGKILL)
            first.process.wait(timeout=10)
        assert opencti.processed_counts(killed) == {w: 0 for w in killed}
        second = Connector("enrichment", opencti, slow_vt.base_url, workdir, connector_id=first.id, **PATIENT,
                           VIRUSTOTAL_CACHE_TTL="0")
        with started(second):
            assert_each_reported_once(opencti, second, work_ids)
            assert "delivered before and not reported: processing it again" in second.output()


def _soak_module():
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "soak.py"
    spec = importlib.util.spec_from_file_location("vtf_soak_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


def test_a_soak_keeps_open_files_and_memory_flat(workdir):
    """A few hundred messages: no descriptor kept per message, memory within a generous slack."""
    require_service(RABBITMQ, "RabbitMQ")
    result = _soak_module().soak(200, workdir, warmup=30, PYTHONUNBUFFERED="1")
    assert (result.lost, result.doubled) == (0, 0)
    assert result.files_end - result.files_start <= 3, result  # one per message would be 200
    assert result.rss_end - result.rss_start < 20 * 2**20, result  # 100 KB per message at most
