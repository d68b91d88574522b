"""The sigma plugin on real file answers (the rule bodies are CONSTRUCTED: none was ever published)."""

from __future__ import annotations

import json

import pytest
import yaml
from pycti import AttackPattern

from vtframework import TLP_MARKINGS, build_app
from vtframework.testing import assert_stamped, enrich_checked, notes_by_abstract, objects_of, relationship_triples

from vtframework_plugins.sigma.rule import SigmaRuleError, sigma_yaml

ORCUS = "6b60666d6ace3a450d54fe7b915c46632172ca0d4127d87873f0c111560e66cb"
POWERSHELL = "020876e69dac4b2cb5b75a616dbdac8b913f3cc06fbabd8f8dd3277691ba48b6"
CLEAN_NOISY = "29bd5781eb25da10c05b9e4074c08b5c0d5127abd4e278066973a725463884c3"
ADS_RULE = "5be9da0a90b142239a3ff2819edf2283938855da3b4c80d63d8e6db63c2c4fe7"
AMBER = TLP_MARKINGS["TLP:AMBER"]["id"]


def make_app(**env):
    return build_app(
        "virustotal",
        env={"VTF_PLUGINS": "file,sigma", "VIRUSTOTAL_FILE_IMPORT_YARA": "false",
             "VIRUSTOTAL_FILE_IMPORT_SIGMA": "true", **env},
        config_file=None,
    )


def sigma_indicators(result):
    return {i["name"]: i for i in objects_of(result, "indicator") if i["pattern_type"] == "sigma"}


@pytest.mark.vcr
def test_matched_rules_become_indicators_of_attack_patterns(client):
    app = make_app()
    result = enrich_checked(app, client, ORCUS)
    assert result.requests == 3  # the report and each rule once
    (file,) = objects_of(result, "file")
    indicators = sigma_indicators(result)
    assert set(indicators) == {"Hidden Executable In NTFS Alternate Data Stream", "Unsigned DLL Loaded by Windows Utility"}
    ads = indicators["Hidden Executable In NTFS Alternate Data Stream"]
    rule = yaml.safe_load(ads["pattern"])  # a Sigma rule a Sigma tool reads, rebuilt from VirusTotal's parts
    assert list(rule) == ["title", "status", "description", "author", "tags", "logsource", "detection",
                          "falsepositives", "level"]
    assert rule["logsource"] == {"product": "windows", "category": "create_stream_hash"}
    assert rule["detection"] == {  # each selection arrived as a JSON document in a string
        "selection": {"Hash|contains": "IMPHASH="},
        "filter_main_null": {"Hash|contains": "IMPHASH=00000000000000000000000000000000"},
        "condition": "selection and not 1 of filter_main_*",
    }
    assert ads["x_opencti_score"] == 50
    assert ads["description"].startswith(
        "Crowdsourced Sigma rule, level medium, from Sigma Integrated Rule Set (GitHub), "
        "by Florian Roth (Nextron Systems), @0xrawsec."
    )
    techniques = {a["x_mitre_id"]: a for a in objects_of(result, "attack-pattern")}
    assert set(techniques) == {"T1564.004", "T1218.011"}
    # Keyed by the MITRE id alone, as OpenCTI keys the techniques it imported from MITRE.
    assert techniques["T1564.004"]["id"] == AttackPattern.generate_id("Hide Artifacts: NTFS File Attributes", "T1564.004")
    triples = relationship_triples(result)
    assert ("indicates", ads["id"], techniques["T1564.004"]["id"]) in triples
    for indicator in indicators.values():
        assert ("related-to", file["id"], indicator["id"]) in triples  # as crowdsourced YARA rules are linked

    note = notes_by_abstract(result)["VirusTotal Sigma Rules"]
    assert note["object_refs"][0] == file["id"] and set(note["object_refs"][1:]) == {i["id"] for i in indicators.values()}
    assert "2 crowdsourced Sigma rule(s) matched events of the sandbox runs: critical 0, high 0, medium 2, low 0." in note["content"]
    assert "TargetFilename: C:\\\\Users\\\\george\\\\AppData\\\\Roaming\\\\universalwordpress\\\\flowerdb.exe" in note["content"]
    assert "… 2 more event(s)" in note["content"]  # 5 events matched the DLL rule; 3 are shown
    assert_stamped(result, [AMBER])

    again = enrich_checked(app, client, ORCUS)  # once per rule per cache TTL
    assert (again.requests, again.cache_hits) == (0, 3)
    assert sorted(o["id"] for o in again.objects) == sorted(o["id"] for o in result.objects)


@pytest.mark.vcr
def test_off_by_default_the_note_costs_no_request(client):
    app = build_app("virustotal", env={"VTF_PLUGINS": "file,sigma", "VIRUSTOTAL_FILE_IMPORT_YARA": "false"},
                    config_file=None)
    result = enrich_checked(app, client, ORCUS)
    assert result.requests == 1
    assert sigma_indicators(result) == {} and objects_of(result, "attack-pattern") == []
    assert "Unsigned DLL Loaded by Windows Utility" in notes_by_abstract(result)["VirusTotal Sigma Rules"]["content"]


@pytest.mark.vcr
def test_lowest_level_limits_the_requests(client):
    result = enrich_checked(make_app(VIRUSTOTAL_SIGMA_MIN_LEVEL="high"), client, POWERSHELL)
    assert result.requests == 4
    assert set(sigma_indicators(result)) == {
        "Powershell Token Obfuscation - Powershell",
        "Dot net compiler compiles file from suspicious location",
        "Malicious PowerShell Commandlets - ScriptBlock",
    }
    assert {i["x_opencti_score"] for i in sigma_indicators(result).values()} == {75}
    content = notes_by_abstract(result)["VirusTotal Sigma Rules"]["content"]
    # The list holds 3 high rules; VirusTotal's own per-ruleset summary adds up to 2 (a real inconsistency).
    assert "17 crowdsourced Sigma rule(s) matched events of the sandbox runs: critical 0, high 3, medium 11, low 3." in content
    assert ("VirusTotal's counts by ruleset: Sigma Integrated Rule Set (GitHub): critical 0, high 1, medium 11, low 3; "
            "Joe Security Rule Set (GitHub): critical 0, high 1, medium 0, low 0.") in content


@pytest.mark.vcr
def test_clean_file_keeps_its_rules(client):
    result = enrich_checked(make_app(), client, CLEAN_NOISY)
    assert result.summary["malicious"] == 0
    assert set(sigma_indicators(result)) == {
        "Process Creation Using Sysnative Folder",
        "Wow6432Node CurrentVersion Autorun Keys Modification",
        "Failed Code Integrity Checks",
    }
    assert {a["x_mitre_id"] for a in objects_of(result, "attack-pattern")} == {"T1055", "T1547.001", "T1027"}


def test_cap_on_rules_is_said(fake_client):
    result = enrich_checked(make_app(VIRUSTOTAL_SIGMA_MAX_RULES="5"), fake_client, POWERSHELL)
    assert len(sigma_indicators(result)) == 5 and result.requests == 6
    assert result.warnings == ["17 Sigma rules to import, only the first 5 kept (VIRUSTOTAL_SIGMA_MAX_RULES=5)"]
    # The highest levels first.
    assert {i["x_opencti_score"] for i in sigma_indicators(result).values()} == {75, 50}


def test_a_malformed_rule_costs_only_itself(fake_vt, fake_client, samples_dir):
    body = json.loads((samples_dir / "sigma_rule_5be9da0a90_CONSTRUCTED.json").read_text())
    body["data"]["attributes"]["detection"]["details"]["selection"] = "{not json"
    fake_vt.add_route("GET", f"/sigma_rules/{ADS_RULE}", body=body)
    result = enrich_checked(make_app(), fake_client, ORCUS)
    assert set(sigma_indicators(result)) == {"Unsigned DLL Loaded by Windows Utility"}
    assert result.warnings == [
        f"Sigma rule Hidden Executable In NTFS Alternate Data Stream skipped: VirusTotal's rule {ADS_RULE} "
        "selection 'selection' is not JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"
    ]


def test_when_virustotal_refuses_the_rest_is_skipped_at_once(fake_vt, fake_client):
    fake_vt.add_route("GET", f"/sigma_rules/{ADS_RULE}", status=403,
                      body={"error": {"code": "ForbiddenError", "message": "You are not allowed to perform this action"}})
    result = enrich_checked(make_app(), fake_client, ORCUS)
    assert sigma_indicators(result) == {}
    assert fake_vt.count("/api/v3/sigma_rules/") == 1  # no second request that would fail the same way
    (warning,) = result.warnings
    assert warning.startswith("2 Sigma rule(s) from Hidden Executable In NTFS Alternate Data Stream on skipped: ")
    assert "VirusTotal Sigma Rules" in notes_by_abstract(result)


def test_sigma_yaml_names_what_is_missing():
    for attributes, problem in (
        ({}, "title is missing"),
        ({"title": "t"}, "log_source is missing"),
        ({"title": "t", "log_source": {"product": "windows"}}, "detection is missing"),
        ({"title": "t", "log_source": {"product": "windows"}, "detection": {"details": {"s": "{}"}}},
         "detection has no condition"),
        ({"title": "t", "log_source": {"product": "windows"}, "detection": {"condition": "s", "details": {}}},
         "detection has no selections"),
        ({"title": "t", "log_source": {"product": "windows"}, "detection": {"condition": "s", "details": {"s": "5"}}},
         "selection 's' is neither a map nor a list"),
    ):
        with pytest.raises(SigmaRuleError, match=problem):
            sigma_yaml({"data": {"attributes": attributes}})
    text = sigma_yaml({"data": {"attributes": {
        "title": "quote ' and: colon", "log_source": {"product": "windows"},
        "detection": {"condition": "s", "details": {"s": json.dumps({"CommandLine|contains": "a: 'b'\n- c"})}},
    }}})
    assert yaml.safe_load(text)["detection"]["s"] == {"CommandLine|contains": "a: 'b'\n- c"}


def test_a_flood_of_rules_keeps_the_note_bounded(fake_vt, fake_client, samples_dir):
    report = json.loads((samples_dir / "file_powershell_ai_sigma_020876e6.json").read_text())
    rules = report["data"]["attributes"]["sigma_analysis_results"]
    report["data"]["attributes"]["sigma_analysis_results"] = [
        dict(rules[i % len(rules)], rule_title=f"rule {i}", match_context=[{"values": {"CommandLine": "x" * 10_000}}])
        for i in range(2000)
    ]
    fake_vt.add_route("GET", f"/files/{POWERSHELL}", body=report)
    app = build_app("virustotal", env={"VTF_PLUGINS": "file,sigma", "VIRUSTOTAL_FILE_IMPORT_YARA": "false"},
                    config_file=None)
    content = notes_by_abstract(enrich_checked(app, fake_client, POWERSHELL))["VirusTotal Sigma Rules"]["content"]
    assert "… and 1900 more rule(s)." in content
    assert len(content) < 60_000
