"""The notifications connector end to end: real ``vtframework run`` processes on pycti's helper and scheduler,
the fake OpenCTI, the real RabbitMQ, the fake VirusTotal.

The loop a SOC cares about: an OpenCTI YARA indicator goes to Livehunt through
the livehunt stream connector, VirusTotal reports a match, and the
notifications connector brings it back as a Sighting of that very indicator.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from conftest import KERRDOWN, SAMPLES, WORD_DOC
from vtframework import AUTHOR_ID, STIX_EXT_OCTI, TLP_MARKINGS
from vtframework.testing import FakeVirusTotal, assert_valid_bundle
from vtframework.testing.connector import Connector, marking
from vtframework.testing.opencti_worker import ingest

pytestmark = pytest.mark.services

HUNTED = 'rule emotet_loader {\n  strings:\n    $a = "EmotetLoader"\n  condition:\n    $a\n}'
FOREIGN = 'rule word_macro {\n  strings:\n    $a = "AutoOpen"\n  condition:\n    $a\n}'
GREEN = TLP_MARKINGS["TLP:GREEN"]["id"]
NOTIFICATIONS_ENV = {
    "VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_API_KEY": "test-key",
    "VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_MAX_AGE_DAYS": "0",
    "VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_TLP_LEVEL": "green",
    "CONNECTOR_RUN_AND_TERMINATE": "true",
}


@pytest.fixture
def vt():
    # Long hangs: a hung request stays hung until the test kills the connector.
    with FakeVirusTotal(str(SAMPLES), hang_seconds=60) as fake:
        yield fake


def yara_indicator(name: str, pattern: str) -> dict:
    """A YARA indicator with detection on, as OpenCTI's live stream sends it."""
    return {
        "id": f"indicator--{uuid.uuid4()}", "spec_version": "2.1", "type": "indicator",
        "created": "2026-05-02T08:00:00.000Z", "modified": "2026-05-02T08:00:00.000Z",
        "name": name, "pattern": pattern, "pattern_type": "yara", "valid_from": "2026-05-02T08:00:00.000Z",
        "object_marking_refs": [GREEN],
        "extensions": {STIX_EXT_OCTI: {"extension_type": "property-extension", "id": str(uuid.uuid4()),
                                       "type": "Indicator", "detection": True, "score": 50,
                                       "main_observable_type": "StixFile"}},
    }


def notifications(opencti, vt, state_dir: Path, connector_id: str | None = None, **env) -> Connector:
    state_dir.mkdir(parents=True, exist_ok=True)
    return Connector("notifications", opencti, vt.base_url, state_dir, connector_id=connector_id,
                     **{**NOTIFICATIONS_ENV, **env})


def run_once(connector: Connector) -> None:
    connector.start()
    try:
        code = connector.wait()
    finally:
        connector.stop()
    assert code == 0, connector.output()


def pushed(opencti, connector: Connector, expect: int = 1) -> list[tuple[str | None, dict]]:
    return opencti.pushed_messages(connector.id, timeout=5, expect=expect)


def as_sent(objects) -> dict:
    """The objects as the connector built them: pycti's splitter adds a dependency count (``nb_deps``) to each
    and a STIX 2.0 ``spec_version`` to the bundles it makes."""
    return {"type": "bundle", "id": f"bundle--{uuid.uuid4()}",
            "objects": [{k: v for k, v in obj.items() if k != "nb_deps"} for obj in objects]}


def object_ids(messages) -> list[str]:
    return [obj["id"] for _work, bundle in messages for obj in bundle["objects"]
            if obj["type"] not in ("identity", "marking-definition")]


def test_a_match_of_a_hunted_indicator_comes_back_as_a_sighting_of_it(opencti, vt, tmp_path):
    stream = f"live-{uuid.uuid4().hex[:8]}"
    indicator = yara_indicator("Emotet loader", HUNTED)
    # 1. The livehunt stream connector turns the OpenCTI indicator into a Livehunt ruleset.
    livehunt = Connector("livehunt", opencti, vt.base_url, tmp_path / "livehunt",
                         CONNECTOR_LIVE_STREAM_ID=stream, VTF_STATE_DIR=str(tmp_path / "livehunt" / "state"))
    (tmp_path / "livehunt").mkdir()
    livehunt.start()
    try:
        opencti.stream_event(stream, "create", indicator)
        livehunt.wait_for(lambda: vt.hunting_rulesets, "the Livehunt ruleset")
    finally:
        livehunt.stop()
    (ruleset_id, ruleset), = vt.hunting_rulesets.items()
    assert ruleset["attributes"]["enabled"] is True
    opencti.add_entity({"standard_id": indicator["id"], "entity_type": "Indicator", "name": "Emotet loader",
                        "pattern": HUNTED, "pattern_type": "yara", "objectMarking": [marking("TLP:GREEN")]})

    # 2. VirusTotal reports a match of its rule.
    match = vt.add_hunting_notification(vt.recorded("files", KERRDOWN), ruleset_id=ruleset_id,
                                        rule_name="emotet_loader", date=int(time.time()) - 60)

    # 3. The notifications connector (its own state: it finds the indicator from the ruleset's marker) imports it.
    connector = notifications(opencti, vt, tmp_path / "notifications")
    run_once(connector)

    messages = pushed(opencti, connector, expect=6)
    # The indicator was looked up in OpenCTI before being sighted (a deleted one gets no Sighting).
    assert any(c.operation == "Indicator" and c.variables.get("id") == indicator["id"] for c in opencti.calls)
    (work,) = opencti.works_of(connector.id)
    assert {work_id for work_id, _bundle in messages} == {work.id}
    assert (work.status, work.in_error) == ("complete", False), work.message
    assert "1 Livehunt notification(s) imported" in work.message and "1 Sighting(s)" in work.message
    held = ingest(bundle for _work, bundle in messages)
    (sighting,) = [o for o in held.values() if o["type"] == "sighting"]
    assert sighting["sighting_of_ref"] == indicator["id"]
    assert sighting["where_sighted_refs"] == [AUTHOR_ID] and sighting["count"] == 1
    (alert,) = [o for o in held.values() if o["type"] == "incident"]
    (file,) = [o for o in held.values() if o["type"] == "file"]
    assert file["hashes"]["SHA-256"] == KERRDOWN
    relationships = {(o["relationship_type"], o["source_ref"], o["target_ref"]) for o in held.values()
                     if o["type"] == "relationship"}
    assert {("indicates", indicator["id"], alert["id"]), ("related-to", file["id"], indicator["id"]),
            ("related-to", alert["id"], file["id"])} <= relationships
    assert all(o["object_marking_refs"] == [GREEN] for o in held.values()
               if o["type"] not in ("identity", "marking-definition"))
    assert_valid_bundle(as_sent(held.values()))
    # Its progress is in OpenCTI's connector state, where the next run (or a reset) finds it.
    state = opencti.state_of(connector.id)
    assert state["notifications"]["floor"] == {"date": match.date, "ids": [match.stream_id]}
    assert state["notifications"]["sweep"] is None


def test_a_crash_between_two_notifications_loses_nothing_and_repeats_nothing(opencti, vt, tmp_path):
    hunted_indicator = f"indicator--{uuid.uuid4()}"
    from vtframework import ruleset_marker

    hunted = vt.add_hunting_ruleset("Emotet loader [1]", ruleset_marker(hunted_indicator) + "\n" + HUNTED, enabled=True)
    foreign = vt.add_hunting_ruleset("macros", FOREIGN, enabled=True)
    opencti.add_entity({"standard_id": hunted_indicator, "entity_type": "Indicator", "name": "Emotet loader"})
    now = int(time.time())
    older = vt.add_hunting_notification(vt.recorded("files", WORD_DOC), ruleset_id=foreign,
                                        rule_name="word_macro", date=now - 120)
    newer = vt.add_hunting_notification(vt.recorded("files", KERRDOWN), ruleset_id=hunted,
                                        rule_name="emotet_loader", date=now - 60)
    # The older notification's ruleset read hangs: the process is killed while it waits, between the two.
    vt.inject("hang", count=1, path_prefix=f"/intelligence/hunting_rulesets/{foreign}")

    first = notifications(opencti, vt, tmp_path / "crash", VIRUSTOTAL_READ_TIMEOUT="50")
    first.start()
    try:
        first.wait_for(lambda: any(r.path.endswith(f"/hunting_rulesets/{foreign}") for r in vt.requests),
                       "the older notification's ruleset read")
        first.process.kill()
        first.process.wait(timeout=10)
    finally:
        first.stop()
    before = pushed(opencti, first, expect=4)
    assert before, first.output()
    state = opencti.state_of(first.id)["notifications"]
    assert state["sweep"]["resume"] == {"date": newer.date, "ids": [newer.stream_id]}

    # The same connector again (same id, same state directory): it resumes below the newer notification.
    again = notifications(opencti, vt, tmp_path / "crash", connector_id=first.id)
    run_once(again)
    after = pushed(opencti, again, expect=4)

    # A connector that never crashed imports the same notifications: the same objects, once each.
    clean = notifications(opencti, vt, tmp_path / "clean")
    run_once(clean)
    reference = pushed(opencti, clean, expect=8)

    crashed_ids = object_ids(before) + object_ids(after)
    assert sorted(crashed_ids) == sorted(object_ids(reference))
    assert len(crashed_ids) == len(set(crashed_ids)), "an object was sent twice"
    alerts_before = [o["name"] for _w, b in before for o in b["objects"] if o["type"] == "incident"]
    alerts_after = [o["name"] for _w, b in after for o in b["objects"] if o["type"] == "incident"]
    assert alerts_before == [f"VT emotet_loader file={KERRDOWN}"]
    assert alerts_after == [f"VT word_macro file={WORD_DOC}"] and older.date < newer.date
    (sighting,) = [b["objects"] for _w, b in after if b["objects"][-1]["type"] == "sighting"][0][-1:]
    assert (sighting["sighting_of_ref"], sighting["count"]) == (hunted_indicator, 1)
    # The interrupted run's work never closed; the resumed run's did, without error.
    works = {w.id: w for w in opencti.works_of(first.id)}
    assert {w for w, _b in before} | {w for w, _b in after} <= set(works)
    assert [w.status for w in works.values()].count("complete") == 1
    assert json.dumps(opencti.state_of(first.id)["notifications"]["floor"]) == json.dumps(
        {"date": newer.date, "ids": [newer.stream_id]})


def test_scheduled_runs_take_what_is_new_and_a_reset_from_the_ui_starts_over(opencti, vt, tmp_path):
    ruleset = vt.add_hunting_ruleset("macros", FOREIGN, enabled=True)
    first = vt.add_hunting_notification(vt.recorded("files", WORD_DOC), ruleset_id=ruleset,
                                        rule_name="word_macro", date=int(time.time()) - 60)
    connector = notifications(opencti, vt, tmp_path / "scheduled", CONNECTOR_RUN_AND_TERMINATE="false",
                              CONNECTOR_DURATION_PERIOD="PT1S")

    def works():
        return [w for w in opencti.works_of(connector.id) if w.status == "complete"]

    connector.start()
    try:
        connector.wait_for(lambda: len(works()) == 1, "the first run's work")
        later = vt.add_hunting_notification(vt.recorded("files", KERRDOWN), ruleset_id=ruleset,
                                            rule_name="word_macro", date=int(time.time()) - 30)
        connector.wait_for(lambda: len(works()) == 2, "a later run taking the new notification")
        assert all("1 Livehunt notification(s) imported" in w.message for w in works())
        assert opencti.state_of(connector.id)["notifications"]["floor"]["date"] == later.date

        opencti.reset_state(connector.id)
        connector.wait_for(lambda: len(works()) == 3, "the run after the reset")
        assert "2 Livehunt notification(s) imported" in works()[-1].message, works()[-1].message
        # pycti checked the connector's queue before each scheduled run.
        assert opencti.wait_for("GetConnector")
    finally:
        connector.process.terminate()
        code = connector.wait(timeout=15)
        connector.stop()
    assert code == 0, connector.output()
    incidents = [o["id"] for _w, b in pushed(opencti, connector, expect=4) for o in b["objects"]
                 if o["type"] == "incident"]
    # The same two alerts again after the reset, under the same ids.
    assert len(incidents) == 4 and len(set(incidents)) == 2
    assert first.date < later.date
