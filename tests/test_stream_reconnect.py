"""The livehunt connector process survives a live stream that drops and a platform that answers 503.

pycti's own SSE client reconnects after a drop, but an error answer to the
reconnect (what a restarting platform or its proxy sends) ends pycti's
listener, and pycti then ends the process. The connector's client keeps trying.
"""

from __future__ import annotations

import json
import logging
import queue
import socket
import sys
import threading
import uuid
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

from vtframework.opencti.metrics import Metrics
from vtframework.opencti.stream import StreamConnector, StreamRefused, reconnecting_client
from vtframework.testing import FakeClock, FakeVirusTotal
from vtframework.testing.connector import RABBITMQ, Connector, require_service
from vtframework.testing.fakeopencti import FakeOpenCTI, _Handler

from vtframework_plugins.livehunt.ruleset import indicator_of

sys.path.insert(0, str(Path(__file__).parents[1] / "plugins" / "livehunt" / "tests"))
from test_livehunt import EMOTET, QAKBOT, yara_indicator  # noqa: E402

pytestmark = pytest.mark.services

DATA_EVENTS = ("create", "update", "delete", "merge")


class _FlakyStreamHandler(_Handler):
    """Serves each stream connection as the platform's next step says: a drop after N events, or a 503."""

    def _serve_stream(self, stream_id: str) -> None:
        with self.fake.plan_lock:
            step = self.fake.plan.pop(0) if self.fake.plan else None
        if step == 503:
            self.fake.refused.append(self.headers.get("Last-Event-ID"))
            self.close_connection = True
            self._send(503, b"<html><body>503 Service Temporarily Unavailable</body></html>", "text/html")
            return
        self._drop_after = step
        super()._serve_stream(stream_id)

    def _write_event(self, event: str, event_id: str | None, data: str) -> None:
        if event in DATA_EVENTS and getattr(self, "_drop_after", None) is not None:
            if self._drop_after == 0:
                self.connection.shutdown(socket.SHUT_RDWR)  # mid-stream, as a restarting platform does
                raise BrokenPipeError("stream dropped")
            self._drop_after -= 1
        super()._write_event(event, event_id, data)


class FlakyOpenCTI(FakeOpenCTI):
    def __init__(self, plan: list[int]) -> None:
        super().__init__()
        self.plan = list(plan)
        self.plan_lock = threading.Lock()
        #: Last-Event-ID of each connection answered 503.
        self.refused: list[str | None] = []

    def start(self) -> "FlakyOpenCTI":
        self._serve(ThreadingHTTPServer, _FlakyStreamHandler, name="fake-opencti-flaky")
        return self


def test_a_dropped_stream_and_a_503_on_reconnect_are_survived_and_each_event_is_done_once(tmp_path):
    require_service(RABBITMQ, "RabbitMQ")
    stream = f"live-{uuid.uuid4().hex[:8]}"
    indicators = [yara_indicator(f"Family {n}", EMOTET if n % 2 else QAKBOT) for n in range(6)]
    # First connection: three events, then the connection drops; the reconnect is answered 503; then all is well.
    with FlakyOpenCTI(plan=[3, 503]) as opencti, FakeVirusTotal() as vt:
        for data in indicators:
            opencti.stream_event(stream, "create", data)
        connector = Connector("livehunt", opencti, vt.base_url, tmp_path, CONNECTOR_LIVE_STREAM_ID=stream,
                              OPENCTI_JSON_LOGGING="true", VTF_STATE_DIR=str(tmp_path / "state"))
        connector.start()
        try:
            connector.wait_for(lambda: len(vt.hunting_rulesets) == len(indicators), "every ruleset", timeout=30)
            connector.wait_for(lambda: "reconnected to the live stream" in connector.output(), "the reconnect")
            assert connector.process.poll() is None, "the connector must survive the drop and the 503"
        finally:
            connector.stop()
        events = opencti.streams[stream]

    # Each reconnect resumed after the last event received: the three before the drop were not sent again.
    third = events.events[2][1]
    assert opencti.refused == [third]
    assert events.last_event_ids == ["0-0", third]
    posts = [r for r in vt.requests if r.method == "POST" and r.path.endswith("/hunting_rulesets")]
    assert len(posts) == len(indicators)
    assert sorted(indicator_of(r["attributes"]["rules"]) for r in vt.hunting_rulesets.values()) == \
        sorted(data["id"] for data in indicators)

    lines = [json.loads(line) for line in connector.output().splitlines() if line.startswith("{")]
    messages = [line["message"] for line in lines]
    assert "the live stream connection was lost; reconnecting" in messages
    assert any("answered 503; reconnecting in" in m for m in messages), messages
    # Each line once: the plugin's account of each ruleset is written one time, not echoed by the connector.
    for data in indicators:
        assert len([m for m in messages if m.startswith("created Livehunt ruleset") and data["id"] in m]) == 1


class _Answer:
    def __init__(self, status):
        self.status_code = status

    def close(self):
        pass


class _ScriptedSSE:
    """Stands for ``filigran_sseclient.SSEClient``: each connection attempt answers the next scripted status."""

    def __init__(self, url, last_id=None, **kwargs):
        self.kwargs = kwargs
        self._connect()

    def _connect(self):
        status = self.script.pop(0)
        self.resp = _Answer(status)
        if status != 200:
            raise requests.HTTPError(f"{status} error", response=self.resp)


class Watcher:
    def __init__(self):
        self.seen = []

    def stream_lost(self):
        self.seen.append("lost")

    def stream_retry(self, attempt, pause, why):
        self.seen.append((attempt, pause, why))

    def stream_connected(self, connections):
        self.seen.append(("connected", connections))


def scripted(*statuses):
    base = type("Scripted", (_ScriptedSSE,), {"script": list(statuses)})
    watcher = Watcher()
    return reconnecting_client(base, watcher, (1.0, 2.0), (10.0, 30.0)), watcher


def test_the_stream_client_retries_a_busy_platform_with_backoff_and_a_read_timeout():
    client_class, watcher = scripted(503, 502, 429, 200, 503, 200)
    client = client_class("http://127.0.0.1:1/stream/live", "0-0")
    assert client.kwargs["timeout"] == (10.0, 30.0)  # a silent connection is dropped, not waited on forever
    assert watcher.seen == [(1, 1.0, "the live stream answered 503"), (2, 2.0, "the live stream answered 502"),
                            (3, 2.0, "the live stream answered 429"), ("connected", 1)]
    client._connect()  # the next drop: one 503, then back
    assert watcher.seen[4:] == ["lost", (1, 1.0, "the live stream answered 503"), ("connected", 2)]


@pytest.mark.parametrize("status", [401, 403, 404])
def test_the_stream_client_does_not_retry_what_no_retry_fixes(status):
    client_class, watcher = scripted(status)
    with pytest.raises(StreamRefused, match=f"answered {status}.*OPENCTI_TOKEN"):
        client_class("http://127.0.0.1:1/stream/live", "0-0")
    assert watcher.seen == []


def test_reconnecting_keeps_the_watchdog_fed(monkeypatch):
    """pycti's watchdog ends a stream silent for 45 s: pauses between reconnects put beats on its queue."""
    connector = StreamConnector.__new__(StreamConnector)
    connector.helper = type("Helper", (), {"connector_logger": logging.getLogger("test.stream")})()
    connector.metrics = Metrics(False)
    beats = queue.Queue(maxsize=1)
    connector.set_heartbeat_queue(beats)
    clock = FakeClock()
    slept = []

    def sleep(seconds):  # the watchdog takes each beat as it ticks
        slept.append((seconds, beats.qsize()))
        beats.queue.clear()
        clock.sleep(seconds)

    monkeypatch.setattr("vtframework.opencti.stream.time", SimpleNamespace(monotonic=clock.time, sleep=sleep))
    connector.stream_retry(3, 12.0, "the live stream answered 503")
    assert [s for s, _ in slept] == [5.0, 5.0, 2.0]  # no stretch longer than a watchdog tick without a beat
    assert all(beat == 1 for _, beat in slept) and beats.qsize() == 1
