"""The livehunt stream connector end to end: pycti's real stream listener on the fake OpenCTI's SSE.

The connector process reads the live stream exactly as in production (pycti's
ListenStream: SSE, Last-Event-ID, heartbeats, stream position in its state)
and keeps the fake VirusTotal's Livehunt rulesets in step.
"""

from __future__ import annotations

import time
import uuid

import pytest
from test_livehunt import EMOTET, EMOTET_V2, QAKBOT, UNBALANCED, changed, yara_indicator

from vtframework.testing import FakeVirusTotal
from vtframework.testing.connector import Connector

pytestmark = pytest.mark.services

WRITES = ("POST", "PATCH", "DELETE")


@pytest.fixture
def vt():
    with FakeVirusTotal() as fake:
        yield fake


@pytest.fixture
def stream():
    """A live stream of this test's own (the fake platform outlives the test)."""
    return f"live-{uuid.uuid4().hex[:8]}"


def connector(opencti, vt, state_dir, stream, **env):
    state_dir.mkdir(parents=True, exist_ok=True)
    return Connector(
        "livehunt", opencti, vt.base_url, state_dir,
        CONNECTOR_LIVE_STREAM_ID=stream, VIRUSTOTAL_LIVEHUNT_NOTIFICATION_EMAILS="soc@example.com",
        VTF_STATE_DIR=str(state_dir / "state"), **env,
    )


def wait_until(condition, what, process, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if process.process.poll() is not None:
            raise AssertionError(f"the connector stopped while waiting for {what}:\n{process.output()}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}:\n{process.output()}")


def names(vt):
    return sorted(r["attributes"]["name"] for r in vt.hunting_rulesets.values())


def rules_of(vt, name_prefix):
    return [r for r in vt.hunting_rulesets.values() if r["attributes"]["name"].startswith(name_prefix)]


def writes(vt):
    return [(r.method, r.path) for r in vt.requests if r.method in WRITES]


def test_stream_events_drive_rulesets_and_replays_change_nothing(opencti, vt, tmp_path, stream):
    emotet = yara_indicator("Emotet loader", EMOTET)
    qakbot = yara_indicator("Qakbot", QAKBOT, detection=False)
    broken = yara_indicator("Broken rule", UNBALANCED)
    sentinel = yara_indicator("Sentinel", 'rule sentinel { condition: true }')
    first = connector(opencti, vt, tmp_path, stream)
    first.start()
    try:
        # create, detection=true -> a ruleset; detection=false -> nothing
        opencti.stream_event(stream, "create", emotet)
        opencti.stream_event(stream, "create", qakbot)
        wait_until(lambda: rules_of(vt, "Emotet loader"), "the Emotet ruleset", first)
        (created,) = rules_of(vt, "Emotet loader")
        ruleset_id = created["id"]
        assert "EmotetLoader" in created["attributes"]["rules"]
        assert created["attributes"]["enabled"] is True
        assert created["attributes"]["notification_emails"] == ["soc@example.com"]

        # a rule VirusTotal rejects does not stop the stream
        opencti.stream_event(stream, "create", broken)
        # rule content changed, detection=true -> PATCH in place, same id
        emotet_v2 = changed(emotet, pattern=EMOTET_V2)
        opencti.stream_event(stream, "update", emotet_v2)
        # detection changed to true -> created
        qakbot_on = changed(qakbot, detection=True)
        opencti.stream_event(stream, "update", qakbot_on)
        opencti.stream_event(stream, "create", sentinel)
        wait_until(lambda: rules_of(vt, "Sentinel"), "the events after the rejected rule", first)
        (patched,) = rules_of(vt, "Emotet loader")
        assert patched["id"] == ruleset_id
        assert "$a and $b at 0" in patched["attributes"]["rules"]
        assert rules_of(vt, "Qakbot") and not rules_of(vt, "Broken rule")
        assert ("DELETE", f"/api/v3/intelligence/hunting_rulesets/{ruleset_id}") not in writes(vt)
        assert [m for m, p in writes(vt) if p.endswith(f"/{ruleset_id}")] == ["PATCH"]

        # detection changed to false -> deleted; indicator deleted -> deleted
        opencti.stream_event(stream, "update", changed(qakbot_on, detection=False))
        opencti.stream_event(stream, "delete", emotet_v2)
        wait_until(lambda: names(vt) == [n for n in names(vt) if n.startswith("Sentinel")], "the deletions", first)
        assert first.process.poll() is None, "the connector must survive every event"
    finally:
        first.stop()
    settled = {k: dict(v["attributes"]) for k, v in vt.hunting_rulesets.items()}
    before = len(writes(vt))

    # The whole stream again, from the start, on the same state: VirusTotal does not change.
    replay = connector(opencti, vt, tmp_path, stream)
    replay.start()
    try:
        marker = yara_indicator("Marker", 'rule marker { condition: true }')
        opencti.stream_event(stream, "create", marker)
        wait_until(lambda: rules_of(vt, "Marker"), "the replay to reach the end", replay)
    finally:
        replay.stop()
    replayed = [(r.method, r.status, r.path, r.body[60:110]) for r in vt.requests if r.method in WRITES][before:]
    assert [w for w in replayed if b"Marker" not in w[3]] == [], "the replay changed VirusTotal"
    assert {k: v for k, v in vt.hunting_rulesets.items() if not v["attributes"]["name"].startswith("Marker")} \
        .keys() == settled.keys()


def test_state_lost_after_create_adopts_instead_of_duplicating(opencti, vt, tmp_path, stream):
    """A crash between the VirusTotal create and the state save looks like a lost state."""
    emotet = yara_indicator("Emotet loader", EMOTET, ident=f"indicator--{uuid.uuid4()}")
    first = connector(opencti, vt, tmp_path / "a", stream)
    first.start()
    try:
        opencti.stream_event(stream, "create", emotet)
        wait_until(lambda: rules_of(vt, "Emotet loader"), "the ruleset", first)
    finally:
        first.stop()
    # A new process with an empty state replays the stream from the start.
    second = connector(opencti, vt, tmp_path / "b", stream)
    second.start()
    try:
        opencti.stream_event(stream, "update", changed(emotet, name="Emotet loader v2"))
        wait_until(lambda: rules_of(vt, "Emotet loader v2"), "the rename", second)
    finally:
        second.stop()
    assert len(rules_of(vt, "Emotet loader")) == 1
    assert [m for m, _p in writes(vt)].count("POST") == 1
