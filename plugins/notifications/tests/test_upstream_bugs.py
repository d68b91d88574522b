"""Each bug of the original notifications connector, and what vtframework does instead.

The original is OpenCTI's ``external-import/virustotal-livehunt-notifications``;
its bugs were found by reading its code (numbers follow that list).
"""

from __future__ import annotations

import copy
import time

import pytest
import stix2
from pycti import Incident

from conftest import CLEAN_EXE, CYBERGATE, KERRDOWN, WORD_DOC
from vtframework import TLP_MARKINGS, hookimpl
from vtframework.testing import MemoryOpenCTI
from vtframework.testing.opencti_worker import ingest

STREAM = "/api/v3/ioc_stream"
FOREIGN_RULES = 'rule CyberGate {\n  meta:\n    date = "2021-03-01"\n  strings:\n    $a = "####@####"\n  condition:\n    $a\n}\n'


def foreign(vt, name="rats", rules=FOREIGN_RULES):
    return vt.add_hunting_ruleset(name, rules, enabled=True)


def constructed_file(sha256, *, size=5000, malicious=5, extension="exe", **attributes):
    """A file object of the documented shape (CONSTRUCTED: no recorded answer has these values)."""
    return {"type": "file", "id": sha256, "attributes": {
        "sha256": sha256, "size": size, "type_extension": extension, "meaningful_name": f"{sha256[:8]}.{extension}",
        "last_analysis_stats": {"malicious": malicious, "suspicious": 0, "undetected": 60, "harmless": 0},
        **attributes}}


def alerts(harness):
    return harness.objects("incident")


# 1. Setting `limit` made every run fail (vt-py refuses `limit` among the query parameters).
def test_1_a_per_run_limit_caps_each_run_and_later_runs_take_the_rest(harness, vt):
    ruleset_id = foreign(vt)
    for ago in (500, 400, 300, 200, 100):
        harness.notify(CYBERGATE, ruleset_id, "CyberGate", ago=ago)

    imported, messages = [], []
    for _run in range(3):
        outcome = harness.run(VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_LIMIT="2")
        assert not outcome.failed, outcome.message
        imported.append(len(alerts(harness)))
        messages.append(outcome.message)
    assert imported == [2, 4, 5]
    assert "more are left for the next run" in messages[0]
    assert harness.run(VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_LIMIT="2").message == "notifications: nothing new"
    sent = [i for i in harness.platform.sent_ids() if i.startswith("incident--")]
    assert len(sent) == len(set(sent)) == 5, "each alert is sent once"
    # Pages are as small as the limit: a small quota is not spent on items the run will not handle.
    assert all("limit=2" in r.query for r in vt.requests if r.path == STREAM)


# 2. Malware configurations never arrived: a wrong endpoint (behaviour_mitre_trees) and wrong keys.
class C2Extractor:
    """A feature plugin reading a file object's malware configuration (as the malware-configuration plugin does)."""

    def __init__(self):
        self.calls = 0

    @hookimpl
    def vtf_stix_objects(self, observable, report, context):
        self.calls += 1
        config = report["data"]["attributes"].get("malware_config") or {}
        made = []
        for value, cls in ((config.get("c2_domain"), stix2.DomainName), (config.get("c2_url"), stix2.URL)):
            if value:
                c2 = context.factory.observable(cls, value=value)
                made += [c2, context.factory.relationship("related-to", observable.id, c2.id)]
        return made


def test_2_c2_infrastructure_comes_from_the_file_object_itself(harness, vt):
    extractor = C2Extractor()
    harness.extra_plugins.append(("c2", extractor))
    entity = copy.deepcopy(vt.recorded("files", KERRDOWN))
    entity["attributes"]["malware_config"] = {"c2_domain": "c2.evil.example", "c2_url": "http://c2.evil.example/gate"}
    harness.notify(entity, foreign(vt), "CyberGate")

    outcome = harness.run(VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_GET_MALWARE_CONFIG="true",
                          VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_CREATE_DOMAIN_NAME_INDICATORS="true")

    assert not outcome.failed, outcome.message
    (domain,) = harness.objects("domain-name")
    (url,) = harness.objects("url")
    (alert,) = alerts(harness)
    links = {(r["relationship_type"], r["source_ref"], r["target_ref"]) for r in harness.objects("relationship")}
    assert {("related-to", alert["id"], domain["id"]), ("related-to", alert["id"], url["id"])} <= links
    (indicator,) = [i for i in harness.objects("indicator") if i["pattern_type"] == "stix"]
    assert indicator["pattern"] == "[domain-name:value = 'c2.evil.example']"
    assert ("based-on", indicator["id"], domain["id"]) in links
    # Read from the notification's own file object: no request for the file, none to behaviour endpoints.
    assert {r.path for r in vt.requests} <= {STREAM, f"/api/v3/intelligence/hunting_rulesets/{alert_ruleset(vt)}"}


def test_2_the_malware_configuration_plugin_reads_the_real_orcusrat_configuration(harness, vt):
    """The preset's own malware-configuration plugin, on a real file object whose configuration holds C2s."""
    orcus = "6b60666d6ace3a450d54fe7b915c46632172ca0d4127d87873f0c111560e66cb"
    harness.notify(vt.recorded("files", orcus), foreign(vt), "CyberGate")

    outcome = harness.run(VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_GET_MALWARE_CONFIG="true")

    assert not outcome.failed, outcome.message
    (malware,) = harness.objects("malware")
    assert (malware["name"], malware["is_family"]) == ("orcusrat", True)
    c2 = {(o["type"], o["value"]): o for o in [*harness.objects("domain-name"), *harness.objects("ipv4-addr")]}
    # The hosts and the address of its configuration; its version strings, paths and mutex are not addresses.
    assert set(c2) == {("domain-name", "15288.client.sudorat.top"), ("domain-name", "15288.client.sudorat.ru"),
                       ("ipv4-addr", "31.44.184.52")}
    links = {(r["relationship_type"], r["source_ref"], r["target_ref"]) for r in harness.objects("relationship")}
    for sco in c2.values():
        assert ("communicates-with", malware["id"], sco["id"]) in links
    indicates = [i for (kind, i, target) in links if kind == "indicates" and target == malware["id"]]
    assert len(indicates) == 3  # one Indicator per C2 address indicates the family
    # Read from the notification's own file object: no request for the file, none to behaviour endpoints.
    assert {r.path for r in vt.requests} <= {STREAM, f"/api/v3/intelligence/hunting_rulesets/{alert_ruleset(vt)}"}


def alert_ruleset(vt):
    (ruleset_id,) = vt.hunting_rulesets
    return ruleset_id


def test_2_without_the_switch_no_feature_plugin_runs(harness, vt):
    extractor = C2Extractor()
    harness.extra_plugins.append(("c2", extractor))
    harness.notify(KERRDOWN, foreign(vt), "CyberGate")
    assert not harness.run().failed
    assert extractor.calls == 0 and harness.objects("domain-name") == []


# 3. YARA indicators were almost never made: rule names were compared with the *ruleset* name.
# 10. The ruleset was fetched and parsed again for every notification.
def test_3_10_the_matched_rule_is_found_by_its_name_once_per_run(harness, vt):
    ruleset_id = foreign(vt, name="playground jumpstart")
    for ago in (300, 200, 100):
        harness.notify(CYBERGATE, ruleset_id, "CyberGate", ago=ago)

    assert not harness.run().failed
    (rule,) = harness.objects("indicator")
    assert rule["name"] == "CyberGate" and rule["pattern"].startswith("rule CyberGate {")
    assert vt.count(f"/api/v3/intelligence/hunting_rulesets/{ruleset_id}") == 1


# 4. A URL, domain or IP notification crashed every run, forever (no sha256, no size).
def test_4_network_notifications_are_imported_or_skipped_and_never_jam_the_run(harness, vt):
    ruleset_id = foreign(vt)
    url = vt.recorded("urls", "7d83e9f686ff0122ded311f27aababf6922800a45a23a4dacc860b56ccada4cb")
    harness.notify(KERRDOWN, ruleset_id, "CyberGate", ago=900)  # the oldest: after everything below
    harness.notify(url, ruleset_id, "phish_url", ago=800)
    harness.notify(vt.recorded("domains", "tawuhoju.com"), ruleset_id, "phish_domain", ago=700)
    harness.notify(vt.recorded("ip_addresses", "138.128.150.133"), ruleset_id, "c2_ip", ago=600)
    harness.notify({"type": "url", "id": "f" * 64, "attributes": {"last_analysis_stats": {"malicious": 3}}},
                   ruleset_id, "no_url", ago=500)
    harness.notify({"type": "collection", "id": "malware--x", "attributes": {}}, ruleset_id, "odd", ago=400)

    outcome = harness.run()

    assert not outcome.failed, outcome.message
    assert "4 Livehunt notification(s) imported" in outcome.message and "2 malformed" in outcome.message
    assert [u["value"] for u in harness.objects("url")] == ["http://soclosebutyetqq.com/69.exe"]
    assert [d["value"] for d in harness.objects("domain-name")] == ["tawuhoju.com"]
    assert [i["value"] for i in harness.objects("ipv4-addr")] == ["138.128.150.133"]
    names = sorted(a["name"] for a in alerts(harness))
    assert "VT phish_domain domain=tawuhoju.com" in names and "VT c2_ip ip=138.128.150.133" in names
    assert any("does not carry the URL" in w for w in outcome.warnings)
    assert any("'collection' entity" in w for w in outcome.warnings)
    # The stream moved past them: the next run has nothing to do.
    assert harness.run().message == "notifications: nothing new"


# 5. Any VirusTotal error (quota, 403, a deleted ruleset) or missing key aborted the run with no progress.
def test_5_a_ruleset_that_is_gone_costs_its_yara_indicator_only(harness, vt):
    harness.notify(KERRDOWN, "9999999999999999", "gone_rule")
    outcome = harness.run()
    assert not outcome.failed
    assert len(alerts(harness)) == 1 and harness.objects("indicator") == []
    assert any("9999999999999999 cannot be read" in w for w in outcome.warnings)


def test_5_a_virustotal_outage_stops_the_run_and_the_next_run_resumes_where_it_stopped(harness, vt):
    older_ruleset, newer_ruleset = foreign(vt, "older"), foreign(vt, "newer")
    harness.notify(WORD_DOC, older_ruleset, "CyberGate", ago=200)
    harness.notify(KERRDOWN, newer_ruleset, "CyberGate", ago=100)
    # The newer is imported; reading the older notification's ruleset then fails past every retry.
    vt.inject("503", count=3, path_prefix=f"/intelligence/hunting_rulesets/{older_ruleset}")

    failed = harness.run()

    assert failed.failed and "VirusTotal had a temporary failure" in failed.message
    assert [a["name"] for a in alerts(harness)] == [f"VT CyberGate file={KERRDOWN}"]
    resumed = harness.run()
    assert not resumed.failed and "1 Livehunt notification(s) imported" in resumed.message
    sent = [i for i in harness.platform.sent_ids() if i.startswith("incident--")]
    assert len(sent) == len(set(sent)) == 2


def test_5_a_file_object_without_the_usual_keys_is_imported(harness, vt):
    bare = {"type": "file", "id": "a" * 64, "attributes": {"sha256": "a" * 64}}
    harness.notify(bare, foreign(vt), "CyberGate")
    outcome = harness.run(VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_MIN_POSITIVES="0")
    assert not outcome.failed, outcome.message
    (file,) = harness.objects("file")
    assert file["hashes"] == {"SHA-256": "a" * 64} and "name" not in file


# 6. Deleting did nothing: the entity id instead of the notification id, the legacy endpoint, no check,
#    and it happened before the notification was even filtered or imported.
class WatchingOpenCTI(MemoryOpenCTI):
    """Notes how many deletions VirusTotal had seen when each bundle arrived."""

    def __init__(self, vt):
        super().__init__()
        self.vt = vt
        self.deletions_at_send: list[int] = []

    def send_bundle(self, bundle):
        self.deletions_at_send.append(sum(1 for r in self.vt.requests if r.method == "DELETE"))
        super().send_bundle(bundle)


@pytest.mark.parametrize("source", ["ioc_stream", "hunting_notification_files", "hunting_notifications"])
def test_6_imported_notifications_are_deleted_by_their_notification_id_after_the_import(harness, vt, source):
    harness.platform = WatchingOpenCTI(vt)
    ruleset_id = foreign(vt)
    kept = harness.notify(CLEAN_EXE, ruleset_id, "CyberGate", ago=300)  # filtered out: not imported, not deleted
    first = harness.notify(KERRDOWN, ruleset_id, "CyberGate", ago=200)
    second = harness.notify(WORD_DOC, ruleset_id, "CyberGate", ago=100)

    outcome = harness.run(VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_DELETE_NOTIFICATION="true",
                          VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_SOURCE=source)

    assert not outcome.failed, outcome.message
    assert "2 deleted from VirusTotal" in outcome.message
    if source == "ioc_stream":
        expected = [f"/api/v3/ioc_stream_notifications/{n.stream_id}" for n in (second, first)]
    else:
        expected = [f"/api/v3/intelligence/hunting_notifications/{n.legacy_id}" for n in (second, first)]
    assert [r.path for r in vt.requests if r.method == "DELETE"] == expected
    assert [m.seq for m in vt.hunting.matches] == [kept.seq]
    assert harness.platform.deletions_at_send == [0, 1]  # each deletion after its own notification was sent


def test_6_a_deletion_refused_by_virustotal_is_a_warning_not_a_lost_import(harness, vt):
    note = harness.notify(KERRDOWN, foreign(vt), "CyberGate")
    vt.add_route("DELETE", f"/ioc_stream_notifications/{note.stream_id}", 403,
                 {"error": {"code": "ForbiddenError", "message": "You are not allowed to perform this operation"}})
    outcome = harness.run(VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_DELETE_NOTIFICATION="true")
    assert not outcome.failed and len(alerts(harness)) == 1
    assert any("imported but not deleted" in w for w in outcome.warnings)


# 7. Samples were downloaded before the filters, without a size cap, whole in memory; the Artifact had no
#    marking and no link, and any observable with the hash (a File too) stopped the download.
def test_7_samples_go_the_downloaders_way_after_the_filters(harness, vt):
    small = vt.add_generated_download(3000, seed="small")
    liar = vt.add_generated_download(6000, seed="liar")
    huge = vt.add_generated_download(2000, seed="huge")
    ruleset_id = foreign(vt)
    harness.notify(constructed_file(small, size=3000), ruleset_id, "CyberGate", ago=300)
    harness.notify(constructed_file(liar, size=3000), ruleset_id, "CyberGate", ago=200)  # says 3000, sends 6000
    harness.notify(constructed_file(huge, size=90 << 20), ruleset_id, "CyberGate", ago=100)  # filtered out
    env = {"VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_UPLOAD_ARTIFACT": "true",
           "VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_MAX_FILE_SIZE": "4000",
           "VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_TLP_LEVEL": "amber"}

    outcome = harness.run(**env)

    assert not outcome.failed, outcome.message
    held = harness.platform.artifacts.held
    assert set(held) == {small}
    assert held[small]["markings"] == [TLP_MARKINGS["TLP:AMBER"]["id"]]
    assert held[small]["data"] == b"".join(vt.iter_payload(small))
    assert vt.count(f"/api/v3/files/{huge}/download") == 0
    assert any("not stored" in w and "limit 4000" in w for w in outcome.warnings)
    (file,) = [f for f in harness.objects("file") if f["hashes"]["SHA-256"] == small]
    (link,) = [r for r in harness.objects("relationship") if r["target_ref"] == held[small]["standard_id"]]
    assert (link["relationship_type"], link["source_ref"]) == ("related-to", file["id"])

    harness.notify(constructed_file(small, size=3000), ruleset_id, "CyberGate", ago=50)
    assert not harness.run(**env).failed
    assert vt.count(f"/api/v3/files/{small}/download") == 1  # already held: not downloaded again


# 8. The state was the end of the run: notifications dated before it but listed after it were never seen.
def test_8_a_notification_dated_before_the_last_run_ended_is_not_lost(harness, vt):
    ruleset_id = foreign(vt)
    first = harness.notify(KERRDOWN, ruleset_id, "CyberGate", ago=100)
    assert not harness.run().failed
    late = vt.add_hunting_notification(vt.recorded("files", WORD_DOC), ruleset_id=ruleset_id, rule_name="CyberGate",
                                       date=first.date + 1)  # listed only now, dated before that run ended
    assert late.date < int(time.time())
    assert "1 Livehunt notification(s) imported" in harness.run().message
    assert len(alerts(harness)) == 2


# 9. min_positives=0 and max_age_days=0 dropped everything; max_old_days was silently ignored;
#    quotes a compose file leaves around a list broke it.
def test_9_zero_means_no_limit(harness, vt):
    harness.notify(CLEAN_EXE, foreign(vt), "CyberGate")
    outcome = harness.run(VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_MIN_POSITIVES="0",
                          VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_MAX_AGE_DAYS="0")
    assert "1 Livehunt notification(s) imported" in outcome.message


def test_9_max_age_days_and_its_former_name_max_old_days(harness, vt):
    del harness.env["VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_MAX_AGE_DAYS"]
    harness.notify(KERRDOWN, foreign(vt), "CyberGate")  # first submitted in 2018
    skipped = harness.run()
    assert "skipped: 1 filtered" in skipped.message  # the default, 3 days
    harness.platform.reset_state()
    imported = harness.run(VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_MAX_OLD_DAYS="10000")
    assert "1 Livehunt notification(s) imported" in imported.message
    harness.platform.reset_state()
    both = harness.run(VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_MAX_OLD_DAYS="10000", VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_MAX_AGE_DAYS="3")
    assert "skipped: 1 filtered" in both.message  # the new name wins


def test_9_a_quoted_compose_list_still_filters_extensions(harness, vt):
    ruleset_id = foreign(vt)
    harness.notify(CYBERGATE, ruleset_id, "CyberGate", ago=300)  # exe
    harness.notify(KERRDOWN, ruleset_id, "CyberGate", ago=200)  # dll
    harness.notify(WORD_DOC, ruleset_id, "CyberGate", ago=100)  # doc
    outcome = harness.run(VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_EXTENSIONS="'exe, .DLL'")
    assert "2 Livehunt notification(s) imported" in outcome.message and "1 filtered" in outcome.message
    assert {f["hashes"]["SHA-256"] for f in harness.objects("file")} == {CYBERGATE, KERRDOWN}


# 11. The score ignored GTI and turned a file without engines into an uncaught error.
def test_11_score_from_gti_and_no_score_without_statistics(harness, vt):
    ruleset_id = foreign(vt)
    harness.notify(constructed_file("b" * 64, gti_assessment={"threat_score": {"value": 83}}), ruleset_id, "CyberGate",
                   ago=200)
    harness.notify({"type": "file", "id": "c" * 64, "attributes": {"sha256": "c" * 64, "size": 2000}}, ruleset_id,
                   "CyberGate", ago=100)
    assert not harness.run(VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_MIN_POSITIVES="0").failed
    scores = {f["hashes"]["SHA-256"][0]: f["extensions"][EXT].get("score") for f in harness.objects("file")}
    assert scores == {"b": 83, "c": None}


EXT = "extension-definition--f93e2c80-4231-4f9a-af8b-95c9bd566a82"


# 12. "VT  <rule>" with two spaces, local time in the description, files named "unknown", YARA descriptions
#     that were the rule's date.
def test_12_names_and_descriptions_say_what_they_should(harness, vt):
    note = harness.notify(KERRDOWN, foreign(vt), "CyberGate")  # KERRDOWN's only name is "."
    assert not harness.run().failed
    (alert,) = alerts(harness)
    assert alert["name"] == f"VT CyberGate file={KERRDOWN}"
    assert time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(note.date)) in alert["description"]
    (file,) = harness.objects("file")
    assert "name" not in file  # neither "unknown" nor "."
    (rule,) = harness.objects("indicator")
    assert rule["description"] != "2021-03-01" and "CyberGate" in rule["description"]


# 13. An alert already in OpenCTI meant the File and YARA Indicator were re-sent unlinked.
def test_13_every_import_of_a_notification_is_complete_and_linked(harness, vt):
    harness.notify(KERRDOWN, foreign(vt), "CyberGate")
    assert not harness.run().failed
    first = {o["id"] for b in harness.platform.bundles for o in b["objects"]}
    harness.platform.reset_state()  # "reset the state": the same notification comes again
    assert not harness.run().failed
    second = {o["id"] for o in harness.platform.bundles[-1]["objects"]}
    assert second == first  # same ids: OpenCTI upserts, every relationship included again


# 14. No x-tool header, no timeout under 300 s, no retry: one 5xx aborted the run.
def test_14_virustotal_hiccups_are_retried_and_requests_say_who_asks(harness, vt):
    harness.notify(KERRDOWN, foreign(vt), "CyberGate")
    vt.inject("503", count=1, path_prefix="/ioc_stream")
    outcome = harness.run()
    assert not outcome.failed and len(alerts(harness)) == 1
    listing = [r for r in vt.requests if r.path == STREAM]
    assert [r.status for r in listing] == [503, 200]
    assert listing[-1].headers["x-tool"].startswith("vtframework")


# The alert's id did not match OpenCTI's (pycti was given the notification's raw timestamp as `created`).
def test_the_alert_id_is_the_one_opencti_computes(harness, vt):
    note = harness.notify(KERRDOWN, foreign(vt), "CyberGate")
    assert not harness.run().failed
    (alert,) = alerts(harness)
    created = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(note.date))
    assert alert["created"] == created and alert["id"] == Incident.generate_id(alert["name"], created)


def test_sightings_across_runs_add_up_in_opencti(harness, vt):
    """Each sweep sends its own count; OpenCTI widens the Sighting and adds them up."""
    from test_notifications import hunted_ruleset

    ruleset_id, indicator_id = hunted_ruleset(vt)
    harness.notify(KERRDOWN, ruleset_id, "emotet_loader", ago=300)
    assert not harness.run().failed
    harness.notify(KERRDOWN, ruleset_id, "emotet_loader", ago=200)
    harness.notify(KERRDOWN, ruleset_id, "emotet_loader", ago=100)
    assert not harness.run().failed
    harness.platform.reset_state()  # everything again: re-sent Sightings must not count twice
    assert not harness.run().failed

    (sighting,) = [o for o in ingest(harness.platform.bundles).values() if o["type"] == "sighting"]
    assert sighting["count"] == 3 and sighting["sighting_of_ref"] == indicator_id
    sent = [o for b in harness.platform.bundles for o in b["objects"] if o["type"] == "sighting"]
    assert len({s["id"] for s in sent}) == 1 and [s["count"] for s in sent] == [1, 2, 3]



def test_2_the_switch_without_a_feature_plugin_says_so_once_and_costs_nothing(harness, vt):
    ruleset_id = foreign(vt)
    harness.notify(KERRDOWN, ruleset_id, "CyberGate", ago=200)
    harness.notify(WORD_DOC, ruleset_id, "CyberGate", ago=100)
    # The preset loads the malware-configuration plugin; without it the switch has nothing to run.
    outcome = harness.run(VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_GET_MALWARE_CONFIG="true", VTF_DISABLE_PLUGINS="malware_config")
    assert not outcome.failed and len(alerts(harness)) == 2
    assert [w for w in outcome.warnings if "no loaded feature plugin" in w] == [outcome.warnings[0]]
    assert not any("behaviour" in r.path or r.path.startswith("/api/v3/files") for r in vt.requests)
