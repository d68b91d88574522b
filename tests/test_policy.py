"""The egress policy as pure functions: markings in, a decision and its reason out."""

from __future__ import annotations

import pytest
from pycti import MarkingDefinition

from vtframework.policy.egress import EgressPolicy, Marked, parse_marking_map, read_markings
from vtframework.policy.markings import PAP_MARKINGS, TLP_MARKINGS

STATEMENT = {"type": "marking-definition", "id": "marking-definition--fa42a846-8d90-4e51-bc29-71d5b4802168",
             "definition_type": "statement", "definition": {"statement": "Copyright 2015-2024, The MITRE Corporation"}}


@pytest.mark.parametrize("name", list(PAP_MARKINGS))
def test_pap_markings_carry_the_ids_opencti_gives_them(name):
    assert PAP_MARKINGS[name]["id"] == MarkingDefinition.generate_id("PAP", name)


def test_every_form_a_marking_arrives_in_is_placed():
    reading = read_markings([
        TLP_MARKINGS["TLP:GREEN"]["id"],  # a bare id
        {"standard_id": "marking-definition--x", "definition_type": "TLP", "definition": "TLP:AMBER"},  # OpenCTI
        {"type": "marking-definition", "definition_type": "tlp", "definition": {"tlp": "red"}},  # STIX 2.1 TLP 1.0
        PAP_MARKINGS["PAP:AMBER"]["id"],
        {"standard_id": "marking-definition--y", "definition_type": "PAP", "definition": "PAP:RED"},
    ])
    assert (reading.tlp, reading.pap, reading.unknown) == ("TLP:RED", "PAP:RED", ())


def test_markings_it_cannot_place_are_listed_by_name():
    reading = read_markings([
        {"standard_id": "marking-definition--e", "definition_type": "TLP", "definition": "TLP:EXTERNAL"},
        STATEMENT,
        "marking-definition--00000000-0000-4000-8000-000000000000",
    ])
    assert reading.unknown == (
        "TLP:EXTERNAL", "Copyright 2015-2024, The MITRE Corporation",
        "marking-definition--00000000-0000-4000-8000-000000000000",
    )
    assert reading.tlp == "TLP:CLEAR"  # ... and none of them is read as TLP:CLEAR by the policy:
    refusal = EgressPolicy().refusal(Marked("Url x", (STATEMENT,)), "lookup")
    assert refusal and "cannot place" in refusal and "VIRUSTOTAL_MARKING_MAP" in refusal


def test_the_marking_map_places_them_by_name_or_id():
    mapping = parse_marking_map(["TLP:EXTERNAL=TLP:GREEN", f"{STATEMENT['id']}=TLP:CLEAR", "Internal = PAP:RED"])
    policy = EgressPolicy(marking_map=mapping)
    external = {"standard_id": "marking-definition--e", "definition_type": "TLP", "definition": "TLP:EXTERNAL"}
    assert policy.refusal(Marked("x", (external, STATEMENT)), "lookup") is None
    assert "VIRUSTOTAL_UPLOAD_MAX_TLP" not in (policy.refusal(Marked("x", (external,)), "upload") or "")
    internal = {"standard_id": "marking-definition--i", "definition_type": "statement", "definition": "internal"}
    assert "PAP:RED" in policy.refusal(Marked("x", (internal,)), "lookup")


@pytest.mark.parametrize("entry", ["TLP:EXTERNAL", "=TLP:RED", "TLP:EXTERNAL=PURPLE", "x=PAP:BLACK"])
def test_a_marking_map_entry_that_is_not_name_equals_level_is_refused(entry):
    with pytest.raises(ValueError, match="NAME=LEVEL|is not a TLP or PAP level"):
        parse_marking_map([entry])


def test_pap_red_forbids_every_path_and_pap_amber_leaves_it_to_tlp():
    red = Marked("StixFile h", (TLP_MARKINGS["TLP:CLEAR"]["id"], PAP_MARKINGS["PAP:RED"]["id"]))
    amber = Marked("StixFile h", (TLP_MARKINGS["TLP:CLEAR"]["id"], PAP_MARKINGS["PAP:AMBER"]["id"]))
    policy = EgressPolicy()
    for path in ("lookup", "download", "livehunt", "upload", "submission"):
        assert "PAP:RED" in policy.refusal(red, path)
        assert policy.refusal(amber, path) is None


def test_a_marking_described_and_listed_by_id_counts_once():
    ident = "marking-definition--c0ffee00-0000-4000-8000-000000000000"
    marked = Marked.of("x", [ident], [{"standard_id": ident, "definition_type": "PAP", "definition": "PAP:GREEN"}])
    assert EgressPolicy().refusal(marked, "lookup") is None


@pytest.mark.parametrize(("method", "path", "expected"), [
    ("GET", "/files/abc", "lookup"),
    ("GET", "/urls/aHR0cA", "lookup"),
    ("GET", "/analyses/u-1", "lookup"),
    ("GET", "/files/abc/download", "download"),
    ("GET", "/files/abc/download_url", "download"),
    ("POST", "/files", "upload"),
    ("POST", "/urls", "submission"),
    ("POST", "/urls/aHR0cA/analyse", "submission"),
    ("POST", "/files/abc/analyse", "upload"),  # a write it does not know counts as the strictest
    ("POST", "/intelligence/hunting_rulesets", "livehunt"),
    ("PATCH", "/intelligence/hunting_rulesets/12", "livehunt"),
    ("GET", "/intelligence/hunting_rulesets", None),
    ("DELETE", "/intelligence/hunting_rulesets/12", None),
    ("POST", "/intelligence/hunting_rulesets/12/relationships/editors", None),
    ("GET", "/intelligence/hunting_notification_files", None),
    ("DELETE", "/intelligence/hunting_notifications/9", None),
    ("GET", "/users/some-key/overall_quotas", None),
])
def test_the_egress_path_is_read_from_the_request_itself(method, path, expected):
    from vtframework.vt.egress import egress_path

    base = "https://www.virustotal.com/api/v3"
    assert egress_path(method, base + path, base) == expected


def test_requests_outside_the_api_count_as_download_or_upload():
    from vtframework.vt.egress import egress_path

    base = "https://www.virustotal.com/api/v3"
    assert egress_path("GET", "https://storage.googleapis.com/sample?sig=x", base) == "download"
    assert egress_path("POST", "https://www.virustotal.com/_ah/upload/AMmfu6", base) == "upload"
