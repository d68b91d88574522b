"""The Livehunt notifications import against the fake VirusTotal: what an analyst finds in OpenCTI afterwards."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from pycti import Incident

from conftest import CLEAN_EXE, CYBERGATE, KERRDOWN, WORD_DOC
from vtframework import AUTHOR_ID, TLP_MARKINGS, ruleset_marker
from vtframework.testing import assert_valid_bundle

CLEAR = TLP_MARKINGS["TLP:CLEAR"]["id"]
AMBER_STRICT = TLP_MARKINGS["TLP:AMBER+STRICT"]["id"]
STREAM = "/api/v3/ioc_stream"

#: A ruleset someone made on VirusTotal: an import, a private helper rule, two rules named unlike the ruleset.
FOREIGN_RULES = '''import "pe"

private rule is_pe { condition: uint16(0) == 0x5A4D }

rule CyberGate {
  meta:
    description = "CyberGate RAT configuration marker"
    date = "2021-03-01"
  strings:
    $a = "####@####" ascii
  condition:
    is_pe and $a and pe.number_of_sections > 2
}

rule Other { condition: false }
'''
HUNTED_RULES = 'rule emotet_loader {\n  strings:\n    $a = "EmotetLoader"\n  condition:\n    $a\n}'


def hunted_ruleset(vt, indicator_id=None):
    """A ruleset the livehunt plugin made for an OpenCTI YARA indicator (marker line first)."""
    indicator_id = indicator_id or f"indicator--{uuid.uuid4()}"
    ruleset_id = vt.add_hunting_ruleset("Emotet loader [8e2e2d2b]", ruleset_marker(indicator_id) + "\n" + HUNTED_RULES,
                                        enabled=True)
    return ruleset_id, indicator_id


def by_type(harness, stix_type):
    return harness.objects(stix_type)


def triples(harness):
    return {(r["relationship_type"], r["source_ref"], r["target_ref"]) for r in harness.objects("relationship")}


def test_a_match_of_someone_elses_ruleset_is_a_file_an_alert_and_the_yara_rule_that_matched(harness, vt):
    ruleset_id = vt.add_hunting_ruleset("rats", FOREIGN_RULES, enabled=True)
    note = harness.notify(CYBERGATE, ruleset_id, "CyberGate", snippet="23 23 *begin_highlight*40*end_highlight*",
                          source_country="DE")

    outcome = harness.run()

    assert not outcome.failed, outcome.message
    assert "1 Livehunt notification(s) imported" in outcome.message
    (file,) = by_type(harness, "file")
    assert file["hashes"] == {"SHA-256": CYBERGATE, "MD5": "be8e1ffca139bcd0513eb9a10e3bcab2",
                              "SHA-1": "671e3938fd88a17e7e16045411a678406b751003"}
    assert (file["name"], file["size"]) == ("Warface Repair Assistent.exe", 282112)
    extension = file["extensions"]["extension-definition--f93e2c80-4231-4f9a-af8b-95c9bd566a82"]
    assert extension["score"] == 91  # 64 / (64 + 0 + 6)
    assert extension["description"].startswith("VirusTotal: 64 of 75 engines flag this file as malicious")
    assert extension["labels"] == ["peexe"]

    (alert,) = by_type(harness, "incident")
    name = f"VT CyberGate file={CYBERGATE}"
    created = dt.datetime.fromtimestamp(note.date, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert (alert["name"], alert["incident_type"], alert["source"]) == (name, "alert", "hunting_notification")
    # The id OpenCTI computes for this Incident (name and created), so the platform finds it again.
    assert alert["id"] == Incident.generate_id(name, created) and alert["created"] == created
    assert alert["first_seen"] == alert["last_seen"] == created
    assert "«40»" in alert["description"] and "| DE |" in alert["description"]
    assert set(alert["labels"]) >= {"vt:yara:cybergate", "vt:lh:rats"}
    assert alert["external_references"][0]["external_id"] == note.stream_id

    (rule,) = by_type(harness, "indicator")
    assert rule["pattern_type"] == "yara" and rule["name"] == "CyberGate"
    # The matched rule, by its rule name, with the import and the private rule it needs: it compiles alone.
    assert rule["pattern"].startswith('import "pe"\n\nprivate rule is_pe') and "rule Other" not in rule["pattern"]
    assert rule["description"] == "CyberGate RAT configuration marker"
    assert "x_opencti_detection" not in rule  # it hunts on VirusTotal already: no second ruleset for it
    assert triples(harness) == {
        ("related-to", alert["id"], file["id"]),
        ("indicates", rule["id"], alert["id"]),
        ("related-to", file["id"], rule["id"]),
    }
    assert by_type(harness, "sighting") == []
    for bundle in harness.platform.bundles:
        assert_valid_bundle(bundle)
    for obj in harness.platform.objects:
        if obj["type"] not in ("marking-definition", "identity"):
            assert obj["object_marking_refs"] == [CLEAR], obj["id"]
            assert AUTHOR_ID in (obj.get("created_by_ref"), obj.get("x_opencti_created_by_ref")), obj["id"]


def test_a_match_of_a_ruleset_vtframework_made_is_a_sighting_of_its_indicator(harness, vt):
    ruleset_id, indicator_id = hunted_ruleset(vt)
    harness.notify(KERRDOWN, ruleset_id, "emotet_loader", ago=900)
    harness.notify(KERRDOWN, ruleset_id, "emotet_loader", ago=300)
    harness.notify(WORD_DOC, ruleset_id, "emotet_loader", ago=600)

    outcome = harness.run()

    assert not outcome.failed, outcome.message
    assert "3 Livehunt notification(s) imported" in outcome.message and "2 Sighting(s)" in outcome.message
    assert by_type(harness, "indicator") == []  # the indicator is OpenCTI's own
    sightings = {s["description"].split(" matched ")[1].split(" ")[1]: s for s in by_type(harness, "sighting")}
    kerrdown, word = sightings[KERRDOWN], sightings[WORD_DOC]
    for sighting in (kerrdown, word):
        assert sighting["sighting_of_ref"] == indicator_id
        assert sighting["where_sighted_refs"] == [AUTHOR_ID]
    assert kerrdown["count"] == 2 and kerrdown["first_seen"] < kerrdown["last_seen"]
    assert word["count"] == 1 and word["first_seen"] == word["last_seen"]
    alerts = by_type(harness, "incident")
    assert {("indicates", indicator_id, a["id"]) for a in alerts} <= triples(harness)
    # The marker in VirusTotal said whose ruleset it is: one read of the ruleset for three notifications.
    assert vt.count(f"/api/v3/intelligence/hunting_rulesets/{ruleset_id}") == 1


def test_the_livehunt_map_in_the_shared_state_saves_reading_the_ruleset(harness, vt):
    ruleset_id, indicator_id = hunted_ruleset(vt)
    harness.state.kv_set("livehunt", indicator_id, {"ruleset_id": ruleset_id, "version": ""})
    harness.notify(KERRDOWN, ruleset_id, "emotet_loader")

    assert not harness.run().failed
    (sighting,) = by_type(harness, "sighting")
    assert sighting["sighting_of_ref"] == indicator_id
    assert vt.count("/api/v3/intelligence/hunting_rulesets") == 0


def test_nothing_new_is_no_work_and_costs_one_listing(harness, vt):
    assert harness.run().message == "notifications: nothing new"
    assert harness.platform.bundles == [] and vt.count(STREAM) == 1
    harness.notify(CLEAN_EXE, "1", "x")  # 0 engines: filtered by min_positives=1
    outcome = harness.run()
    assert "0 Livehunt notification(s) imported; skipped: 1 filtered" in outcome.message
    assert harness.platform.bundles == []


def test_everything_carries_the_configured_tlp(harness, vt):
    ruleset_id, _indicator = hunted_ruleset(vt)
    harness.notify(KERRDOWN, ruleset_id, "emotet_loader")
    harness.notify(CYBERGATE, vt.add_hunting_ruleset("rats", FOREIGN_RULES), "CyberGate")
    outcome = harness.run(VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_TLP_LEVEL="amber+strict",
                          VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_CREATE_FILE_INDICATORS="true")
    assert not outcome.failed, outcome.message
    made = [o for o in harness.platform.objects if o["type"] not in ("identity", "marking-definition")]
    assert {o["type"] for o in made} == {"file", "incident", "indicator", "relationship", "sighting"}
    assert all(o["object_marking_refs"] == [AMBER_STRICT] for o in made)
    (definition,) = harness.objects("marking-definition")
    assert definition["id"] == AMBER_STRICT and definition["x_opencti_definition"] == "TLP:AMBER+STRICT"


def test_the_recorded_listings_parse_into_the_same_notification(samples_dir):
    import json

    from vtframework_plugins.notifications.source import IocStream, NotificationFiles

    recorded = json.loads((samples_dir / "hunting_notification_files_list_cybergate.json").read_text())["data"][0]
    legacy = NotificationFiles().parse(recorded)
    assert (legacy.id, legacy.date, legacy.ruleset_id, legacy.rule_name) == (
        recorded["context_attributes"]["notification_id"], 1617025254, "5883562783178752", "CyberGate")
    assert legacy.snippet.startswith("23 23 20 23") and legacy.attributes["size"] == 282112
    stream_item = {**{k: v for k, v in recorded.items() if k != "context_attributes"}, "context_attributes": {
        "notification_id": "23415549505", "notification_date": 1617025254, "origin": "hunting",
        "sources": [{"id": "5883562783178752", "type": "hunting_ruleset", "label": "rats"}],
        "tags": ["rats", "cybergate"], "hunting_info": {"rule_name": "CyberGate", "snippet": legacy.snippet,
                                                         "source_country": "US", "match_in_subfile": False}}}
    stream = IocStream().parse(stream_item)
    assert (stream.ruleset_id, stream.ruleset_name, stream.rule_name, stream.source_country) == (
        "5883562783178752", "rats", "CyberGate", "US")
    assert stream.attributes == legacy.attributes and stream.entity_id == CYBERGATE


def test_the_first_run_looks_back_three_days_or_from_where_the_original_connector_stopped(harness, vt):
    ruleset_id = vt.add_hunting_ruleset("rats", FOREIGN_RULES)
    harness.notify(KERRDOWN, ruleset_id, "CyberGate", ago=4 * 86400)
    recent = harness.notify(WORD_DOC, ruleset_id, "CyberGate", ago=2 * 86400)
    assert "1 Livehunt notification(s) imported" in harness.run().message
    assert [a["name"] for a in by_type(harness, "incident")] == [f"VT CyberGate file={WORD_DOC}"]

    upgraded = type(harness.platform)({"latest_run_timestamp": recent.date - 60})  # the original's state
    harness.platform = upgraded
    harness.notify(CYBERGATE, ruleset_id, "CyberGate", ago=60)
    outcome = harness.run()
    assert "2 Livehunt notification(s) imported" in outcome.message  # the two since the original's last run


def test_a_tag_filter_is_sent_to_virustotal_and_must_be_one_tag(harness, vt):
    harness.notify(KERRDOWN, vt.add_hunting_ruleset("rats", FOREIGN_RULES), "CyberGate", tags=["apt", "rats"])
    assert "1 Livehunt notification(s) imported" in harness.run(
        VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_FILTER_WITH_TAG="'apt'").message
    (listing,) = [r for r in vt.requests if r.path == STREAM]
    assert "notification_tag%3Aapt" in listing.query
    (alert,) = by_type(harness, "incident")
    assert "apt" not in alert["labels"]  # the filter's own tag says nothing
    outcome = harness.run(VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_FILTER_WITH_TAG="apt rats")
    assert outcome.failed and "VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_FILTER_WITH_TAG must be one tag" in outcome.message


def test_a_shutdown_stops_between_two_notifications_and_keeps_the_progress(harness, vt):
    ruleset_id = vt.add_hunting_ruleset("rats", FOREIGN_RULES)
    harness.notify(KERRDOWN, ruleset_id, "CyberGate", ago=200)
    harness.notify(WORD_DOC, ruleset_id, "CyberGate", ago=100)

    class StoppingOpenCTI(type(harness.platform)):
        def send_bundle(self, bundle):
            super().send_bundle(bundle)
            self.stop = True  # SIGTERM arrives while the first bundle goes out

    harness.platform.__class__ = StoppingOpenCTI
    outcome = harness.run()
    assert "1 Livehunt notification(s) imported" in outcome.message and "stopped at shutdown" in outcome.message
    harness.platform.stop = False
    harness.platform.__class__ = type(harness.platform).__mro__[1]
    assert "1 Livehunt notification(s) imported" in harness.run().message
    assert len(by_type(harness, "incident")) == 2


def test_the_file_plugin_can_enrich_the_matched_file_from_the_notification_alone(harness, vt):
    harness.notify(KERRDOWN, vt.add_hunting_ruleset("rats", FOREIGN_RULES), "CyberGate")
    outcome = harness.run(VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_ENRICH_FILE="true")
    assert not outcome.failed, outcome.message
    (file,) = by_type(harness, "file")
    notes = {n["abstract"]: n for n in by_type(harness, "note")}
    assert notes["VirusTotal Report"]["object_refs"] == [file["id"]]
    assert vt.count(f"/api/v3/files/{KERRDOWN}") == 0  # the notification's file object was the report
    assert vt.count("/api/v3/yara_rulesets/00888403c4") == 1  # the crowdsourced YARA rule it matched


def test_an_indicator_deleted_from_opencti_gets_no_sighting(harness, vt):
    import types

    ruleset_id, indicator_id = hunted_ruleset(vt)
    harness.platform.opencti = types.SimpleNamespace(indicator=types.SimpleNamespace(read=lambda id: None))
    harness.notify(KERRDOWN, ruleset_id, "emotet_loader")
    outcome = harness.run()
    assert not outcome.failed and by_type(harness, "sighting") == []
    assert any(f"indicator {indicator_id}" in w and "no longer in OpenCTI" in w for w in outcome.warnings)
    assert len(by_type(harness, "incident")) == 1


def test_the_bare_notifications_listing_reads_each_matched_file_once(harness, vt):
    ruleset_id = vt.add_hunting_ruleset("rats", FOREIGN_RULES)
    harness.notify(KERRDOWN, ruleset_id, "CyberGate", ago=200)
    harness.notify(KERRDOWN, ruleset_id, "CyberGate", ago=100)
    harness.notify(WORD_DOC, ruleset_id, "CyberGate", ago=50)
    outcome = harness.run(VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_SOURCE="hunting_notifications")
    assert "3 Livehunt notification(s) imported" in outcome.message, outcome.message
    assert vt.count("/api/v3/intelligence/hunting_notifications") == 1
    assert (vt.count(f"/api/v3/files/{KERRDOWN}"), vt.count(f"/api/v3/files/{WORD_DOC}")) == (1, 1)
    (alert, *_rest) = sorted(by_type(harness, "incident"), key=lambda a: a["name"])
    assert "vt:lh:rats" in alert["labels"]  # the ruleset's name, read from the ruleset itself


@pytest.mark.services
def test_a_sweep_kept_in_redis_counts_the_same_and_stays_the_connectors_own(vt, tmp_path, redis_state):
    from conftest import Harness

    ruleset_id, indicator_id = hunted_ruleset(vt)
    (tmp_path / "one").mkdir()
    (tmp_path / "other").mkdir()
    one, other = Harness(vt, tmp_path / "one"), Harness(vt, tmp_path / "other")
    for harness in (one, other):
        harness.state.close()
        harness.state = redis_state  # two connectors, one Redis
    one.env["CONNECTOR_ID"], other.env["CONNECTOR_ID"] = "connector-one", "connector-other"
    one.notify(KERRDOWN, ruleset_id, "emotet_loader", ago=300)
    one.notify(KERRDOWN, ruleset_id, "emotet_loader", ago=200)
    # One stops before its sweep ends; the other runs a whole sweep meanwhile, over the same Redis.
    assert not one.run(VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_LIMIT="1").failed
    assert not other.run().failed
    assert not one.run().failed
    for harness in (one, other):
        (sighting,) = harness.objects("sighting")
        assert (sighting["sighting_of_ref"], sighting["count"]) == (indicator_id, 2)


def test_without_files_or_alerts_the_sighting_and_the_rest_still_come(harness, vt):
    ruleset_id, indicator_id = hunted_ruleset(vt)
    harness.notify(KERRDOWN, ruleset_id, "emotet_loader")
    assert not harness.run(VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_CREATE_FILE="false").failed
    assert by_type(harness, "file") == [] and len(by_type(harness, "incident")) == 1
    refs = {ref for r in by_type(harness, "relationship") for ref in (r["source_ref"], r["target_ref"])}
    assert not any(ref.startswith("file--") for ref in refs)  # nothing points at a file that was not sent
    (sighting,) = by_type(harness, "sighting")
    assert sighting["sighting_of_ref"] == indicator_id

    harness.platform.reset_state()
    harness.platform.bundles.clear()
    assert not harness.run(VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_CREATE_ALERT="false").failed
    assert by_type(harness, "incident") == [] and len(by_type(harness, "file")) == 1
    assert len(by_type(harness, "sighting")) == 1
