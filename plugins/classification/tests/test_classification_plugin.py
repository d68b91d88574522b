"""The classification plugin on real file answers: the family, the sandboxes, their disagreement."""

from __future__ import annotations

import json

import pytest
from pycti import Malware

from vtframework import STIX_EXT_OCTI_SCO, TLP_MARKINGS, build_app
from vtframework.testing import assert_stamped, enrich_checked, notes_by_abstract, objects_of, relationship_triples

ORCUS = "6b60666d6ace3a450d54fe7b915c46632172ca0d4127d87873f0c111560e66cb"
POWERSHELL = "020876e69dac4b2cb5b75a616dbdac8b913f3cc06fbabd8f8dd3277691ba48b6"
CLEAN_NOISY = "29bd5781eb25da10c05b9e4074c08b5c0d5127abd4e278066973a725463884c3"
DISAGREEING = "52d3df0ed60c46f336c131bf2ca454f73bafdc4b04dfa2aea80746f5ba9e6d1c"
AMBER = TLP_MARKINGS["TLP:AMBER"]["id"]
NOTE = "VirusTotal Threat Classification"


def make_app(**env):
    return build_app(
        "virustotal", env={"VTF_PLUGINS": "file,classification", "VIRUSTOTAL_FILE_IMPORT_YARA": "false", **env},
        config_file=None,
    )


def labels(result):
    (file,) = objects_of(result, "file")
    return file["extensions"][STIX_EXT_OCTI_SCO].get("labels", [])


@pytest.mark.vcr
def test_family_sandboxes_and_labels(client):
    result = enrich_checked(make_app(), client, ORCUS)
    assert result.requests == 1
    (file,) = objects_of(result, "file")
    (malware,) = objects_of(result, "malware")
    assert (malware["name"], malware["is_family"], malware["id"]) == ("orcusrat", True, Malware.generate_id("OrcusRAT"))
    assert ("related-to", file["id"], malware["id"]) in relationship_triples(result)
    # The sandboxes that call it malicious label it with what they found; "MALWARE" and its kind.
    assert labels(result)[-5:] == ["rat", "malware", "stealer", "trojan", "evader"]
    content = notes_by_abstract(result)[NOTE]["content"]
    assert "12 of the 54 engines that flag it name it orcusrat (22%): related to the malware family orcusrat." in content
    assert "| CAPE Sandbox | malicious | RAT, MALWARE | OrcusRAT, HiddenVNC | N/A |" in content
    assert "| Zenbox | malicious | MALWARE, STEALER, TROJAN, EVADER, RAT | Discord Token Stealer, Orcus, SugarDump | 100% |" in content
    assert "**medium**: Severity MEDIUM because it was considered trojan." in content
    assert "disagree" not in content
    assert_stamped(result, [AMBER])


@pytest.mark.vcr
def test_engines_and_the_sandbox_disagree(client):
    result = enrich_checked(make_app(), client, DISAGREEING)
    content = notes_by_abstract(result)[NOTE]["content"]
    # Not hidden: the first thing the note says.
    assert content.startswith(
        "**Engines and sandboxes disagree.** 59 of 77 engines flag it malicious, but SecneurX says harmless (CLEAN)."
    )
    # hosts2 is named by 6 of 59 engines: too few for a family.
    assert objects_of(result, "malware") == []
    assert "6 of the 59 engines that flag it name it hosts2 (10%): below the 20% and 3 engines needed" in content
    assert labels(result) == ["peexe", "checks-user-input", "hosts-modifier", "direct-cpu-clock-access"]


@pytest.mark.vcr
def test_two_votes_make_no_family(client):
    result = enrich_checked(make_app(), client, POWERSHELL)
    assert objects_of(result, "malware") == []  # "powershell", named by 2 of the 6 engines
    assert labels(result)[-2:] == ["malware", "evader"]
    assert "| C2AE | malicious | MALWARE | Powershell_Downloader, Powershell_Agent, XLS_Downloader | 50% |" in (
        notes_by_abstract(result)[NOTE]["content"]
    )


@pytest.mark.vcr
def test_clean_file_with_harmless_sandboxes(client):
    result = enrich_checked(make_app(), client, CLEAN_NOISY)
    content = notes_by_abstract(result)[NOTE]["content"]
    assert "disagree" not in content
    assert "| SecondWrite | harmless | CLEAN | N/A | N/A |" in content and "| Zenbox | harmless | CLEAN | N/A | 4% |" in content
    assert "**none**: No severity score data" in content
    assert "clean" not in labels(result)


def test_share_and_votes_are_configurable(fake_client):
    result = enrich_checked(make_app(VIRUSTOTAL_FILE_FAMILY_MIN_SHARE="0.1"), fake_client, DISAGREEING)
    assert [m["name"] for m in objects_of(result, "malware")] == ["hosts2"]
    result = enrich_checked(make_app(VIRUSTOTAL_FILE_FAMILY_MIN_VOTES="13"), fake_client, ORCUS)
    assert objects_of(result, "malware") == []
    result = enrich_checked(make_app(VIRUSTOTAL_FILE_SANDBOX_LABELS="false"), fake_client, ORCUS)
    assert "rat" not in labels(result)


def test_a_damaged_verdict_costs_only_itself(fake_vt, fake_client, samples_dir):
    report = json.loads((samples_dir / "file_malicious_sigma_ids_sandbox_6b60666d.json").read_text())
    attrs = report["data"]["attributes"]
    attrs["sandbox_verdicts"]["Broken"] = {"malware_classification": "RAT"}
    attrs["popular_threat_classification"]["popular_threat_name"].insert(0, {"value": None, "count": 99})
    fake_vt.add_route("GET", f"/files/{ORCUS}", body=report)
    result = enrich_checked(make_app(), fake_client, ORCUS)
    assert result.warnings == ["sandbox verdicts: the verdict of 'Broken' has no category, skipped"]
    assert [m["name"] for m in objects_of(result, "malware")] == ["orcusrat"]


def test_a_flood_of_sandboxes_is_bounded(fake_vt, fake_client, samples_dir):
    report = json.loads((samples_dir / "file_malicious_sigma_ids_sandbox_6b60666d.json").read_text())
    report["data"]["attributes"]["sandbox_verdicts"] = {
        f"box{i:03}": {"category": "malicious", "malware_classification": ["RAT"]} for i in range(80)
    }
    fake_vt.add_route("GET", f"/files/{ORCUS}", body=report)
    result = enrich_checked(make_app(), fake_client, ORCUS)
    assert result.warnings == ["sandbox verdicts: 80 sandbox verdicts, only the first 50 read"]
    assert notes_by_abstract(result)[NOTE]["content"].count("| box0") == 50
