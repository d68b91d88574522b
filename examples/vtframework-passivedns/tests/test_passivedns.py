"""vtframework-passivedns on real recorded VirusTotal answers, offline."""

import json
from pathlib import Path

import vtframework_passivedns
from vtframework.testing import assert_valid_bundle, notes_by_abstract

RESOLUTIONS = "/domains/github.com/resolutions"
ANSWER = json.loads((Path(__file__).parent / "domain_resolutions_github.com_page1.json").read_text())


def test_a_domain_gets_a_note_of_its_resolutions(vtf_enrich, vtf_fake_vt):
    result = vtf_enrich("github.com", plugin=vtframework_passivedns, routes={RESOLUTIONS: ANSWER})
    assert result.ok and not result.plugin_errors and not result.warnings, result.message
    note = notes_by_abstract(result)["VirusTotal passive DNS (Domain-Name: github.com)"]
    assert "| 2019-10-19 03:51:34 UTC | github.com | 140.82.114.3 | VirusTotal |" in note["content"]
    assert [r.query for r in vtf_fake_vt.requests if r.path.endswith(RESOLUTIONS)] == ["limit=10"]
    assert_valid_bundle(result)
