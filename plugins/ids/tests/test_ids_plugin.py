"""The ids plugin on real file answers: one Indicator per Snort/Suricata rule, the traffic the alerts saw."""

from __future__ import annotations

import json

import pytest

from vtframework import TLP_MARKINGS, build_app
from vtframework.testing import assert_stamped, enrich_checked, notes_by_abstract, objects_of, relationship_triples

ORCUS = "6b60666d6ace3a450d54fe7b915c46632172ca0d4127d87873f0c111560e66cb"
CLEAN_NOISY = "29bd5781eb25da10c05b9e4074c08b5c0d5127abd4e278066973a725463884c3"
AMBER = TLP_MARKINGS["TLP:AMBER"]["id"]


def make_app(**env):
    return build_app(
        "virustotal", env={"VTF_PLUGINS": "file,ids", "VIRUSTOTAL_FILE_IMPORT_YARA": "false", **env}, config_file=None
    )


def rules_of(samples_dir, sample):
    return json.loads((samples_dir / sample).read_text())["data"]["attributes"]["crowdsourced_ids_results"]


@pytest.mark.vcr
def test_rules_and_the_traffic_they_saw(client, samples_dir):
    result = enrich_checked(make_app(), client, ORCUS)
    assert result.requests == 1
    (file,) = objects_of(result, "file")
    rules = {rule["rule_raw"]: rule for rule in rules_of(samples_dir, "file_malicious_sigma_ids_sandbox_6b60666d.json")}
    indicators = [i for i in objects_of(result, "indicator") if i["pattern_type"] != "stix"]
    # The exact rule text, typed after its ruleset: Snort's own rulesets are snort, ET Open and abuse.ch suricata.
    assert {(i["name"], i["pattern_type"]) for i in indicators} == {
        ("(http_inspect) invalid status line", "snort"),
        ("INDICATOR-COMPROMISE Suspicious .top dns query", "snort"),
        ("ET DNS Query to a *.top domain - Likely Hostile", "suricata"),
        ("SSLBL: Malicious SSL certificate detected (OrcusRAT C&C)", "suricata"),
    }
    triples = relationship_triples(result)
    for indicator in indicators:
        assert indicator["pattern"] in rules
        assert indicator["x_opencti_score"] == 25  # every one of them is a "low" alert
        assert ("related-to", file["id"], indicator["id"]) in triples
    sslbl = next(i for i in indicators if i["name"].startswith("SSLBL"))
    assert sslbl["external_references"] == [
        {"source_name": "Abuse.ch SSL Blocklist", "url": "https://sslbl.abuse.ch/blacklist/sslblacklist.rules"},
        {"source_name": "Abuse.ch SSL Blocklist",
         "url": "https://sslbl.abuse.ch/ssl-certificates/sha1/883bdbd533bd49b610c250cf4c8998a93c7f8ae2/"},
    ]

    # The remote side of each alert; the C2 the SSL blocklist caught is the source of its alert.
    addresses = {o["value"]: o for o in objects_of(result, "ipv4-addr")}
    assert set(addresses) == {"23.32.238.178", "8.8.8.8", "185.37.62.158"}
    for sco in addresses.values():
        assert ("communicates-with", file["id"], sco["id"]) in triples
    traffic = {(t.get("dst_ref") or t.get("src_ref"), t.get("dst_port") or t.get("src_port")): t
               for t in objects_of(result, "network-traffic")}
    assert set(traffic) == {
        (addresses["23.32.238.178"]["id"], 80), (addresses["8.8.8.8"]["id"], 53), (addresses["185.37.62.158"]["id"], 15288),
    }
    c2_traffic = traffic[(addresses["185.37.62.158"]["id"], 15288)]
    assert c2_traffic["src_ref"] == addresses["185.37.62.158"]["id"] and c2_traffic["protocols"] == ["ipv4", "tls"]
    assert traffic[(addresses["8.8.8.8"]["id"], 53)]["protocols"] == ["dns", "ipv4", "udp"]
    ja3 = {o["value"]: o for o in objects_of(result, "text")}
    assert set(ja3) == {"54328bd36c14bd82ddaa0c04b25ed9ad", "b74704234e6128f33bff9865696e31b3"}
    assert ja3["54328bd36c14bd82ddaa0c04b25ed9ad"]["extensions"][
        "extension-definition--f93e2c80-4231-4f9a-af8b-95c9bd566a82"]["labels"] == ["ja3"]
    dns = next(r for r in objects_of(result, "relationship") if r["target_ref"] == addresses["8.8.8.8"]["id"])
    assert "ET DNS Query to a *.top domain" in dns["description"] and "Suspicious .top dns query" in dns["description"]

    note = notes_by_abstract(result)["VirusTotal Crowdsourced IDS Rules"]
    assert "4 crowdsourced IDS rule(s) fired on the sandbox traffic (VirusTotal's counts: high 0, medium 0, low 4, info 0)" in note["content"]
    assert "from 185.37.62.158:15288 ja3 54328bd36c14bd82ddaa0c04b25ed9ad" in note["content"]
    assert_stamped(result, [AMBER])
    # The addresses and fingerprints are shared entities: unmarked; what was seen is on the marked relationships.
    assert all("object_marking_refs" not in o for o in result.objects if o["type"] in ("ipv4-addr", "text"))
    assert all(o["object_marking_refs"] == [AMBER] for o in result.objects if o["type"] == "network-traffic")
    again = enrich_checked(make_app(), client, ORCUS)  # a repeat creates nothing new
    assert again.requests == 0
    assert sorted(o["id"] for o in again.objects) == sorted(o["id"] for o in result.objects)


@pytest.mark.vcr
def test_alert_hostname_and_url(client):
    result = enrich_checked(make_app(), client, CLEAN_NOISY)
    (file,) = objects_of(result, "file")
    (domain,) = objects_of(result, "domain-name")
    (url,) = objects_of(result, "url")
    (address,) = objects_of(result, "ipv4-addr")
    assert domain["value"] == "watson.microsoft.com"
    assert url["value"].startswith("http://watson.microsoft.com/StageOne/rundll32_exe/")
    assert address["value"] == "13.89.179.12"
    assert {
        ("communicates-with", file["id"], domain["id"]),
        ("related-to", file["id"], url["id"]),
        ("communicates-with", file["id"], address["id"]),
    } <= relationship_triples(result)
    (indicator,) = [i for i in objects_of(result, "indicator") if i["pattern_type"] == "suricata"]
    assert indicator["name"] == "ET USER_AGENTS Microsoft Dr Watson User-Agent (MSDW)"


@pytest.mark.vcr
def test_cap_on_rules_is_said(client):
    result = enrich_checked(make_app(VIRUSTOTAL_IDS_MAX_RULES="2", VIRUSTOTAL_IDS_MAX_OBSERVABLES="1"), client, ORCUS)
    assert len([i for i in objects_of(result, "indicator") if i["pattern_type"] != "stix"]) == 2
    assert len(objects_of(result, "ipv4-addr")) == 1
    assert result.warnings == [
        "4 crowdsourced IDS rules fired, only the first 2 kept (VIRUSTOTAL_IDS_MAX_RULES=2)",
        "4 observables in the IDS alerts, only the first 1 kept (VIRUSTOTAL_IDS_MAX_OBSERVABLES=1)",
    ]


def test_a_damaged_rule_costs_only_itself(fake_vt, fake_client, samples_dir):
    report = json.loads((samples_dir / "file_malicious_sigma_ids_sandbox_6b60666d.json").read_text())
    rules = report["data"]["attributes"]["crowdsourced_ids_results"]
    del rules[0]["rule_raw"]  # rule_raw is optional in VirusTotal's answers
    rules[1]["alert_context"] = "not a list"
    rules[2]["alert_context"] = [None, {"dest_ip": "8.8.8.8", "dest_port": True, "hostname": "bad host!"}]
    rules.append("not a rule")
    fake_vt.add_route("GET", f"/files/{ORCUS}", body=report)
    result = enrich_checked(make_app(), fake_client, ORCUS)
    assert len([i for i in objects_of(result, "indicator") if i["pattern_type"] != "stix"]) == 3
    assert result.warnings == [
        "IDS rule #5 skipped: no rule_id or rule_msg",
        "IDS rule 119:279 ((http_inspect) invalid status line): no rule text, no Indicator",
        "IDS rule 1:2023883 (ET DNS Query to a *.top domain - Likely Hostile): alert_context is not a list, "
        "its traffic skipped",
        "IDS rule 1:43687 (INDICATOR-COMPROMISE Suspicious .top dns query): an alert that is not an object was skipped",
    ]
    # The traffic of the rule without text still counts; the bad port and host give nothing.
    assert {o["value"] for o in objects_of(result, "ipv4-addr")} == {"23.32.238.178", "8.8.8.8", "185.37.62.158"}
    assert objects_of(result, "domain-name") == []


def test_off_switch(fake_client):
    result = enrich_checked(make_app(VIRUSTOTAL_FILE_IMPORT_IDS="false"), fake_client, ORCUS)
    assert [i for i in objects_of(result, "indicator") if i["pattern_type"] != "stix"] == []
    assert objects_of(result, "network-traffic") == []
