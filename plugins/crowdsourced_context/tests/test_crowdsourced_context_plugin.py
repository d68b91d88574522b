"""The crowdsourced_context plugin on the real 8.8.8.8 answer (2026 shape)."""

from __future__ import annotations

import json

import pytest

from vtframework import build_app
from vtframework.testing import enrich_checked, notes_by_abstract

GOOGLE_DNS = "8.8.8.8"


def make_app(**env):
    return build_app("virustotal", env={"VTF_PLUGINS": "ip,crowdsourced_context,explain", **env}, config_file=None)


@pytest.mark.vcr
def test_ip_context_in_a_note_and_a_reason(client):
    result = enrich_checked(make_app(), client, GOOGLE_DNS)
    assert result.requests == 1
    notes = notes_by_abstract(result)
    content = notes["VirusTotal Crowdsourced Context"]["content"]
    assert ("| 2023-09-10 22:06:05 UTC | medium | ArcSight Threat Intelligence | ThreatFox IOCs for 2023-09-10 "
            "| AsyncRAT botnet C2 server (confidence level: 100%) |") in content
    # A feed calling Google's resolver a C2 is worth a line against the score of 0, for the analyst to judge.
    assert ("| malicious | Crowdsourced context | ArcSight Threat Intelligence (medium, 2023-09-10 22:06:05 UTC): "
            "AsyncRAT botnet C2 server (confidence level: 100%) |") in notes["VirusTotal Score Explained"]["content"]


def test_newest_first_capped_and_malformed_entries_named(fake_vt, fake_client, samples_dir):
    report = json.loads((samples_dir / "ip_address_8.8.8.8_2026.json").read_text())
    entries = report["data"]["attributes"]["crowdsourced_context"]
    entries += [
        {"title": "newer", "details": "<b>x</b> | y", "source": "feed", "severity": "high", "timestamp": 1800000000},
        {"severity": "high"},
        {"title": "undated", "details": "z"},
    ]
    fake_vt.add_route("GET", f"/ip_addresses/{GOOGLE_DNS}", body=report)
    result = enrich_checked(make_app(VIRUSTOTAL_CROWDSOURCED_CONTEXT_MAX_ENTRIES="2"), fake_client, GOOGLE_DNS)
    content = notes_by_abstract(result)["VirusTotal Crowdsourced Context"]["content"]
    rows = [line for line in content.splitlines() if line.startswith("| 20")]
    assert [row.split(" | ")[3] for row in rows] == ["newer", "ThreatFox IOCs for 2023-09-10"]
    assert "<b>x</b> \\| y" in content  # a pipe cannot break the table
    assert result.warnings == [
        "crowdsourced context entry #3 skipped: no title or details",
        "3 crowdsourced context entries, only the first 2 kept (VIRUSTOTAL_CROWDSOURCED_CONTEXT_MAX_ENTRIES=2)",
    ]


def test_zero_turns_it_off(fake_client):
    result = enrich_checked(make_app(VIRUSTOTAL_CROWDSOURCED_CONTEXT_MAX_ENTRIES="0"), fake_client, GOOGLE_DNS)
    assert "VirusTotal Crowdsourced Context" not in notes_by_abstract(result)
