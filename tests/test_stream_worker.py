"""The livehunt stream connector's listener and worker, in one process, against the fake VirusTotal.

The listener's side (``StreamConnector.process``, what pycti's listener thread
calls) must never wait for quota or for VirusTotal: pycti's watchdog ends a
process whose listener is silent for 45 s. These tests count what the listener
thread did (requests sent, quota sleeps) instead of timing it.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from vtframework import ClientConfig, VTClient, build_app
from vtframework.opencti.metrics import Metrics
from vtframework.opencti.stream import LEGACY_PARKED, QUEUE, StreamConnector
from vtframework.testing import FakeVirusTotal
from vtframework.vt.quota import SystemClock

from vtframework_plugins.livehunt.ruleset import indicator_of

# The livehunt plugin's tests build OpenCTI's stream events, and its fixtures give the fake VirusTotal and
# the state on SQLite and on Redis (``store``); these tests use the same.
LIVEHUNT_TESTS = Path(__file__).parents[1] / "plugins" / "livehunt" / "tests"
sys.path.insert(0, str(LIVEHUNT_TESTS))
from test_livehunt import EMOTET, EMOTET_V2, QAKBOT, changed, event, yara_indicator  # noqa: E402

_spec = importlib.util.spec_from_file_location("livehunt_fixtures", LIVEHUNT_TESTS / "conftest.py")
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)
store, vt = _fixtures.store, _fixtures.vt

QUOTA = 3
WINDOW = 0.4


@dataclass
class Msg:
    """What pycti's listener hands the callback (``filigran_sseclient.Event``)."""

    event: str
    id: str
    data: str


def msg(stream_event):
    payload = {"data": stream_event.data, "context": stream_event.context, "message": stream_event.message}
    return Msg(stream_event.type, stream_event.id, json.dumps(payload))


class ConnectorLogger:
    """pycti's ``connector_logger``: a named logger taking an optional attributes dict."""

    def __init__(self, name="VirusTotal LiveHunts"):
        self.logger = logging.getLogger(name)

    def __getattr__(self, level):
        return lambda message, meta=None: getattr(self.logger, level)(message, extra={"attributes": meta})


class Helper:
    api = None

    def __init__(self):
        self.connector_logger = ConnectorLogger()


class RecordingClock(SystemClock):
    """Real time, but every sleep is recorded with the thread that slept."""

    def __init__(self):
        self.sleeps = []

    def sleep(self, seconds):
        self.sleeps.append(threading.get_ident())
        super().sleep(seconds)


class ThreadRecordingClient:
    """The connector's client, recording which thread made each request."""

    def __init__(self, inner):
        self.inner, self.threads = inner, []

    def _request(self, name):
        def call(*args, **kwargs):
            self.threads.append(threading.get_ident())
            return getattr(self.inner, name)(*args, **kwargs)
        return call

    def __getattr__(self, name):
        if name in ("get", "post", "patch", "delete"):
            return self._request(name)
        return getattr(self.inner, name)


class CountingMetrics(Metrics):
    """Metrics off, but the stream's counts kept for the test to read."""

    def __init__(self):
        super().__init__(False)
        self.counts = Counter()

    def stream_parked(self, reason):
        self.counts[f"parked:{reason}"] += 1

    def stream_quota_wait(self, seconds):
        self.counts["quota_waits"] += 1


def make_app(**env):
    return build_app("virustotal-livehunt", config_file=None, env={
        "CONNECTOR_LIVE_STREAM_ID": "live", "VIRUSTOTAL_LIVEHUNT_NOTIFICATION_EMAILS": "soc@example.com",
        "VIRUSTOTAL_MAX_QUOTA_WAIT": "0", **env})


def make_connector(vt, state, clock=None, per_minute=QUOTA):
    app = make_app()
    config = ClientConfig(api_key="test-key", base_url=vt.base_url, detect_quota=False, max_retries=1,
                          backoff_base=0.01, requests_per_minute=per_minute, requests_per_day=100_000,
                          quota_window=WINDOW, max_quota_wait=0, require_scope=True)
    client = ThreadRecordingClient(VTClient(config, state, clock=clock or RecordingClock()))
    connector = StreamConnector(app, Helper(), state=state, client=client, metrics=CountingMetrics())
    connector.RETRY_PAUSES = (0.05,)
    connector.IDLE = 0.2
    return connector


def wait_until(condition, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def hunted(vt):
    """indicator id -> rules of its ruleset(s), as VirusTotal holds them."""
    found = {}
    for ruleset in vt.hunting_rulesets.values():
        found.setdefault(indicator_of(ruleset["attributes"]["rules"]), []).append(ruleset["attributes"]["rules"])
    return found


@pytest.fixture
def quota_vt():
    with FakeVirusTotal(api_key="test-key", quota_per_minute=QUOTA, quota_window=WINDOW) as fake:
        yield fake


def test_listener_never_waits_for_quota_and_the_rulesets_match_the_indicators(quota_vt, store, caplog):
    indicators = [yara_indicator(f"Family {n}", EMOTET if n % 2 else QAKBOT) for n in range(8)]
    edited = changed(indicators[0], pattern=EMOTET_V2)
    retired = changed(indicators[1], detection=False)
    events = [event("create", data) for data in indicators] + [event("update", edited), event("update", retired)]
    connector = make_connector(quota_vt, store)
    listener = threading.get_ident()
    connector.start_worker()
    try:
        with caplog.at_level(logging.INFO):
            for stream_event in events:  # this thread is pycti's listener
                connector.process(msg(stream_event))
            expected = {data["id"] for data in indicators if data is not indicators[1]}
            wait_until(lambda: set(hunted(quota_vt)) == expected and not store.kv_items(QUEUE), "the rulesets")
    finally:
        connector.stop()

    # More work than the quota allows in one window: events were parked, never waited for in the listener.
    assert len(quota_vt.requests) > 2 * QUOTA
    assert listener not in connector.client.threads and connector.client.threads
    assert listener not in connector.client.inner.clock.sleeps
    assert quota_vt.count("/api/v3/", status=429) == 0, "the worker went over the quota"
    parked = [r for r in caplog.records if r.getMessage().startswith("parked: quota")]
    assert parked and "will retry in" in parked[0].getMessage()
    assert connector.metrics.counts["parked:quota"] == connector.metrics.counts["quota_waits"] >= len(parked)
    # The parked line is the one report of a quota failure: the host's warning about the plugin is not added.
    assert not [r for r in caplog.records if "failed in vtf_stream_event" in r.getMessage()]
    # The final rulesets match the indicators: one each, the newest rule, none for the retired one.
    rules = hunted(quota_vt)
    assert all(len(found) == 1 for found in rules.values())
    assert "$a and $b at 0" in rules[indicators[0]["id"]][0]
    # Each line once: the plugin's account of a ruleset it created is not logged again by the connector.
    for data in indicators:
        lines = [r for r in caplog.records if "created Livehunt ruleset" in r.getMessage() and data["id"] in
                 r.getMessage()]
        assert len(lines) == 1, [(r.name, r.getMessage()) for r in lines]


def test_a_parked_create_keeps_the_updates_of_its_indicator_behind_it(vt, store):
    """VirusTotal fails the create: the updates wait; the newest replaces the older one; order holds."""
    data = yara_indicator("Emotet loader", EMOTET)
    other = yara_indicator("Qakbot", QAKBOT)
    v2 = changed(data, name="Emotet loader v2")
    v3 = changed(v2, pattern=EMOTET_V2)
    vt.inject("503", count=2, path_prefix="/intelligence/hunting_rulesets")  # the create's GET and its retry
    connector = make_connector(vt, store, per_minute=10_000)
    for stream_event in (event("create", data), event("update", v2), event("create", other), event("update", v3)):
        connector.process(msg(stream_event))
    queued = store.kv_items(QUEUE)
    assert sorted(e["type"] for e in queued.values()) == ["create", "create", "update"], "v3 replaces v2"

    connector.RETRY_PAUSES = (0.3,)
    connector.drain()  # the create fails, its update waits behind it; the other indicator goes on
    assert set(hunted(vt)) == {other["id"]}
    waiting = sorted((e for e in store.kv_items(QUEUE).values() if e["object"] == data["id"]), key=lambda e: e["id"])
    assert [e["type"] for e in waiting] == ["create", "update"] and waiting[0]["attempts"] == 1
    wait_until(lambda: connector.drain() is not None and not store.kv_items(QUEUE), "the parked events")

    (ruleset,) = [r for r in vt.hunting_rulesets.values() if indicator_of(r["attributes"]["rules"]) == data["id"]]
    assert ruleset["attributes"]["name"].startswith("Emotet loader v2")
    assert "$a and $b at 0" in ruleset["attributes"]["rules"]
    posts = [r for r in vt.requests if r.method == "POST" and r.path.endswith("hunting_rulesets")]
    assert len(posts) == 2  # one create each, the update applied to the ruleset the create made


def test_a_restart_resumes_the_queued_events(vt, store):
    data, legacy = yara_indicator("Emotet loader", EMOTET), yara_indicator("Parked before", QAKBOT)
    first = make_connector(vt, store, per_minute=10_000)
    first.process(msg(event("create", data)))  # queued; the process ends before its worker got to it
    # An event an earlier version parked under its object's id.
    parked = event("create", legacy)
    store.kv_set(LEGACY_PARKED, legacy["id"], {"type": "create", "id": parked.id, "data": legacy, "context": {}})

    second = make_connector(vt, store, per_minute=10_000)
    second.start_worker()
    try:
        wait_until(lambda: set(hunted(vt)) == {data["id"], legacy["id"]}, "the queued events")
    finally:
        second.stop()
    assert store.kv_items(LEGACY_PARKED) == {}
    wait_until(lambda: not store.kv_items(QUEUE), "an empty queue")


def test_a_rejected_key_stops_the_connector_and_keeps_the_event(store, monkeypatch):
    stopped = []
    monkeypatch.setattr("sys.excepthook", lambda *exc: stopped.append(exc[1]))
    data = yara_indicator("Emotet loader", EMOTET)
    with FakeVirusTotal(api_key="another-key") as vt:
        connector = make_connector(vt, store, per_minute=10_000)
        connector.process(msg(event("create", data)))
        connector.drain()
    assert connector.fatal is not None and stopped == [connector.fatal]
    assert [e["object"] for e in store.kv_items(QUEUE).values()] == [data["id"]]


@pytest.mark.services
def test_two_replicas_on_one_shared_queue_make_each_ruleset_once(vt, redis_url, redis_state):
    """Both replicas' listeners receive every event; they share one Redis state, so one queue."""
    from vtframework.state import RedisState

    twin_state = RedisState(redis_url, prefix=redis_state.prefix)
    indicators = [yara_indicator(f"Family {n}", EMOTET if n % 2 else QAKBOT) for n in range(6)]
    edited = changed(indicators[0], name="Family 0 v2")
    events = [event("create", data) for data in indicators] + [event("update", edited),
                                                                event("delete", indicators[1])]
    replicas = [make_connector(vt, redis_state, per_minute=10_000), make_connector(vt, twin_state, per_minute=10_000)]
    for replica in replicas:
        replica.start_worker()
    try:
        for stream_event in events:
            for replica in replicas:
                replica.process(msg(stream_event))
        expected = {data["id"] for data in indicators if data is not indicators[1]}
        wait_until(lambda: set(hunted(vt)) == expected and not redis_state.kv_items(QUEUE), "both replicas")
    finally:
        for replica in replicas:
            replica.stop()
        twin_state.close()
    rules = hunted(vt)
    assert all(len(found) == 1 for found in rules.values()), "a duplicate ruleset"
    names = sorted(r["attributes"]["name"] for r in vt.hunting_rulesets.values())
    assert names[0].startswith("Family 0 v2")
