"""What lands in OpenCTI as shared entities: the platform's own countries, unmarked; notes per observable."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import stix2
from pycti import Location

from vtframework.context import STIX_EXT_OCTI_SCO, EnrichmentContext
from vtframework.pipeline import blocks
from vtframework.policy.markings import TLP_MARKINGS
from vtframework.stix.countries import country_by_code
from vtframework.stix.factory import AUTHOR_ID, StixFactory, to_dict
from vtframework.stix.observables import from_value

RED = TLP_MARKINGS["TLP:RED"]["id"]
REFERENCE = json.loads((Path(__file__).parent.parent / "vtframework" / "stix" / "countries.json").read_text())


@pytest.mark.parametrize("code,name,aliases", [
    ("GB", "United Kingdom of Great Britain and Northern Ireland", ["GBR", "GB"]),
    ("US", "United States of America", ["USA", "US"]),
    ("KR", "Republic of Korea", ["KOR", "KR"]),
])
def test_country_is_the_platform_country(code, name, aliases):
    country = to_dict(StixFactory(markings=[RED]).country_for_code(code.lower()))
    assert country["id"] == Location.generate_id(name, "Country")
    assert (country["name"], country["country"], country["x_opencti_aliases"]) == (name, code, aliases)
    # A TLP:RED enrichment must not raise the platform-wide country to RED.
    assert "object_marking_refs" not in country and "created_by_ref" not in country


def test_a_name_from_elsewhere_does_not_make_a_second_country():
    """A plugin that passes pycountry's name still gets OpenCTI's country."""
    country = StixFactory().country("United Kingdom", "gb")
    assert country.id == Location.generate_id("United Kingdom of Great Britain and Northern Ireland", "Country")


def test_unknown_codes_give_no_country():
    factory = StixFactory()
    for code in ("ZZ", "", "G", "GBRX", None, 44, "E1"):
        assert factory.country_for_code(code) is None


def test_every_dataset_country_is_found_by_its_codes():
    countries = REFERENCE["countries"]
    assert len(countries) == 250 and REFERENCE["source"]["commit"]
    for row in countries:
        assert country_by_code(row["alpha2"]).name == row["name"]
        assert country_by_code(row["aliases"][0]).name == row["name"]  # the alpha-3 code


def test_autonomous_system_carries_no_marking_but_its_relationship_does():
    factory = StixFactory(markings=[RED])
    system = to_dict(factory.shared_observable(stix2.AutonomousSystem, number=13886, name="CLOUD-SOUTH"))
    link = to_dict(factory.relationship("belongs-to", "ipv4-addr--5a2c0a2e-bb5b-5d6e-a8f4-0d6f7b6c5f01", system["id"]))
    assert "object_marking_refs" not in system and system["x_opencti_created_by_ref"] == AUTHOR_ID
    assert system["id"] == stix2.AutonomousSystem(number=13886).id
    assert link["object_marking_refs"] == [RED]


def _context(value: str, score: int, settings: dict) -> EnrichmentContext:
    observable = from_value(value)
    target = dict(observable.stix)
    blocks.put_extension(target, STIX_EXT_OCTI_SCO, "score", score)
    return EnrichmentContext(observable=observable, target=target, factory=StixFactory(markings=observable.markings),
                             client=None, settings=settings, log=logging.getLogger("test"))


def test_two_observables_with_one_score_get_two_score_notes():
    """A lower VirusTotal score goes into a "VirusTotal Score" note; one per observable, never shared."""
    settings = {"virustotal.replace_with_lower_score": False}
    first = blocks.apply_score(_context("1.2.3.4", 90, settings), 40)
    second = blocks.apply_score(_context("5.6.7.8", 90, settings), 40)
    (note_a,), (note_b,) = [to_dict(n) for n in first], [to_dict(n) for n in second]
    assert note_a["abstract"] == note_b["abstract"] == "VirusTotal Score"
    assert note_a["content"] == note_b["content"]
    assert note_a["id"] != note_b["id"]
    assert note_a["object_refs"] != note_b["object_refs"]
    # ... and the same note for the same observable and score: enriching again duplicates nothing.
    (again,) = [to_dict(n) for n in blocks.apply_score(_context("1.2.3.4", 90, settings), 40)]
    assert again["id"] == note_a["id"]
