"""The explain plugin: a "why this score" note on every enrichment, and the reasons other plugins give."""

from __future__ import annotations

import json
import types

import pytest

from vtframework import Pipeline, ScoreReason, build_app, from_value, hookimpl
from vtframework.testing import enrich_checked, notes_by_abstract

MALICIOUS = "4bc00f7d638e042da764e8648c03c0db46700599dd4f08d117e3e9e8b538519b"
DISAGREEING = "52d3df0ed60c46f336c131bf2ca454f73bafdc4b04dfa2aea80746f5ba9e6d1c"
NOTE = "VirusTotal Score Explained"


def make_app(plugins="file,explain", extra=(), **env):
    return build_app("virustotal", env={"VTF_PLUGINS": plugins, **env}, config_file=None, extra_plugins=extra)


def explained(result):
    return notes_by_abstract(result)[NOTE]["content"]


@pytest.mark.vcr
def test_file_score_explained(client):
    result = enrich_checked(make_app(), client, MALICIOUS)
    content = explained(result)
    assert content.startswith("**Score 72**: 47 malicious / (47 malicious + 0 harmless + 18 undetected) = 72.")
    assert ("Indicator rule: an Indicator is made when at least 10 engines flag it "
            "(VIRUSTOTAL_FILE_INDICATOR_CREATE_POSITIVES=10); 47 do, so one was made.") in content
    assert "| malicious | Engines | 47 malicious: " in content and " and 39 more |" in content
    assert "| benign | Engines | 18 undetected, 0 harmless |" in content
    assert "| neutral | Crowdsourced YARA | 1 rule(s) matched: win_kerrdown_auto |" in content
    assert result.requests == 2  # the note costs nothing of its own


@pytest.mark.vcr
def test_disagreement_is_a_reason(client):
    content = explained(enrich_checked(make_app(), client, DISAGREEING))
    assert "| benign | Sandbox SecneurX | harmless (CLEAN) |" in content
    assert "| neutral | Disagreement | 59 of 77 engines flag it malicious, but SecneurX says harmless (CLEAN). |" in content


@pytest.mark.vcr
def test_reasons_of_other_plugins(client):
    app = make_app("ip,explain,crowdsourced_context")
    content = explained(enrich_checked(app, client, "8.8.8.8"))
    assert content.startswith("**Score 0**: 0 malicious / (0 malicious + 53 harmless + 38 undetected) = 0.")
    assert "| malicious | Crowdsourced context | ArcSight Threat Intelligence (medium, " in content


def test_gti_assessment_is_read_when_the_key_has_it(fake_vt, fake_client, samples_dir):
    report = json.loads((samples_dir / "file_malicious_52d3df0e.json").read_text())
    # CONSTRUCTED from the documented shape (each value wrapped in {"value": …}): no real GTI answer is public.
    report["data"]["attributes"]["gti_assessment"] = {
        "verdict": {"value": "VERDICT_MALICIOUS"},
        "severity": {"value": "SEVERITY_HIGH"},
        "threat_score": {"value": 91},
        "contributing_factors": {"gavs_detections": 3, "normalised_categories": ["trojan", "trojan"],
                                 "malicious_sandbox_verdict": False},
        "description": "This indicator is malicious (high severity) with high impact.",
    }
    fake_vt.add_route("GET", f"/files/{DISAGREEING}", body=report)
    result = enrich_checked(make_app(), fake_client, DISAGREEING)
    assert result.summary["score"] == 91
    content = explained(result)
    assert content.startswith(
        "**Score 91**: Google Threat Intelligence's threat score. The engines alone would give "
        "59 malicious / (59 malicious + 0 harmless + 13 undetected) = 82."
    )
    assert ("| malicious | GTI assessment | verdict VERDICT_MALICIOUS, severity SEVERITY_HIGH, threat score 91: "
            "This indicator is malicious (high severity) with high impact. |") in content
    assert ("| neutral | GTI contributing factors | gavs_detections 3; malicious_sandbox_verdict no; "
            "normalised_categories trojan |") in content


def test_a_plugin_gives_its_reason_and_a_broken_one_costs_only_its_own(fake_client):
    @hookimpl
    def vtf_score_reasons(report):
        return [ScoreReason("SOC blocklist", f"{report['data']['id'][:8]} listed since 2024-05-01", "malicious")]

    @hookimpl(specname="vtf_score_reasons")
    def database_down():
        raise RuntimeError("database down")

    extra = [("blocklist", types.SimpleNamespace(vtf_score_reasons=vtf_score_reasons)),
             ("broken", types.SimpleNamespace(vtf_score_reasons=database_down))]
    result = enrich_checked(make_app("file,explain,blocklist,broken", extra=extra), fake_client, MALICIOUS)
    assert "| malicious | SOC blocklist | 4bc00f7d listed since 2024-05-01 |" in explained(result)
    assert result.warnings == [
        "plugin 'broken' failed in vtf_score_reasons: RuntimeError: database down"
    ]


def test_a_score_that_was_not_applied_says_why(fake_client):
    app = make_app(VIRUSTOTAL_REPLACE_WITH_LOWER_SCORE="false")
    observable = from_value(MALICIOUS, tlp="TLP:AMBER")
    stix = dict(observable.stix, x_opencti_score=95)
    result = Pipeline(app, fake_client).enrich(type(observable)(**{**observable.__dict__, "stix": stix}))
    assert result.ok, result.message
    assert explained(result).startswith(
        "**Score 72**: 47 malicious / (47 malicious + 0 harmless + 18 undetected) = 72. Not applied: the observable "
        "already scores 95 and VIRUSTOTAL_REPLACE_WITH_LOWER_SCORE=false keeps the higher score."
    )


def test_no_statistics_no_score(fake_client):
    content = explained(enrich_checked(make_app("domain,explain"), fake_client, "github.com"))
    assert content.startswith("**No score**: VirusTotal's answer has no detection statistics")
    assert "no detection statistics, no Indicator." in content


def test_off_switch(fake_client):
    result = enrich_checked(make_app(VIRUSTOTAL_EXPLAIN_SCORE="false"), fake_client, MALICIOUS)
    assert NOTE not in notes_by_abstract(result)


def test_reasons_from_a_chatty_plugin_are_bounded(fake_client):
    @hookimpl
    def vtf_score_reasons():
        return [ScoreReason("chatty", "y" * 5000) for _ in range(100)]

    extra = [("chatty", types.SimpleNamespace(vtf_score_reasons=vtf_score_reasons))]
    content = explained(enrich_checked(make_app("file,explain,chatty", extra=extra), fake_client, MALICIOUS))
    assert content.count("| neutral | chatty | ") == 60 - 3  # the report's own three reasons come first
    assert "… and 43 more reason(s)." in content
    assert "y" * 601 not in content
