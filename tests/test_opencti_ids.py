"""Our OpenCTI ids and custom observables are pycti's, for many inputs."""

from __future__ import annotations

import datetime as dt
import json
import random
import string

import pycti
import pytest

from vtframework.stix import opencti_ids as ids

_RANDOM = random.Random(1407)
_ALPHABET = string.ascii_letters + string.digits + " -_.'\"\\/\t\u00e9\u4e2d\U0001f600"


def _text(low: int = 0, high: int = 24) -> str:
    return "".join(_RANDOM.choice(_ALPHABET) for _ in range(_RANDOM.randint(low, high)))


#: Names with the awkward parts: case, surrounding blanks, unicode, quotes, backslashes, empty.
NAMES = ["VirusTotal", "  APT 41 ", "ÉCOLE", "orcusrat", "", "a\"b\\c", *(_text() for _ in range(60))]
MOMENTS = [
    dt.datetime(2021, 3, 29, 13, 40, 54, tzinfo=dt.timezone.utc),
    dt.datetime(2024, 1, 2, 3, 4, 5, 678000),
    "2021-03-29T13:40:54.000Z",
    1616, None,
]
REFS = ["indicator--8e2e2d2b-17d4-4f0f-8a3c-5b1f8fa0bd3e", "ipv4-addr--" + "0" * 8 + "-0000-4000-8000-000000000000",
        "identity--e4bc1a7c-2d2c-5e1c-8f4a-3f0d1a1c1c1c"]


@pytest.mark.parametrize("name", NAMES)
def test_named_entities_match_pycti(name):
    assert ids.malware_id(name) == pycti.Malware.generate_id(name)
    assert ids.intrusion_set_id(name) == pycti.IntrusionSet.generate_id(name)
    assert ids.campaign_id(name) == pycti.Campaign.generate_id(name)
    assert ids.country_id(name) == pycti.Location.generate_id(name, "Country")
    assert ids.indicator_id(name) == pycti.Indicator.generate_id(name)
    for identity_class in ("organization", "class", "Individual"):
        assert ids.identity_id(name, identity_class) == pycti.Identity.generate_id(name, identity_class)
    for mitre in (None, "", "T1059.001", " t1564.004 "):
        assert ids.attack_pattern_id(name, mitre) == pycti.AttackPattern.generate_id(name, mitre)
    for moment in MOMENTS[:4]:
        assert ids.report_id(name, moment) == pycti.Report.generate_id(name, moment)
        assert ids.incident_id(name, moment) == pycti.Incident.generate_id(name, moment)


@pytest.mark.parametrize("start", MOMENTS)
@pytest.mark.parametrize("stop", MOMENTS)
def test_relationships_and_sightings_match_pycti(start, stop):
    for kind in ("related-to", "based-on", _text(1)):
        for source in REFS:
            for target in REFS:
                assert ids.relationship_id(kind, source, target, start, stop) == \
                    pycti.StixCoreRelationship.generate_id(kind, source, target, start, stop)
    for where in ([], REFS[2:], REFS):
        assert ids.sighting_id(REFS[0], where, start, stop) == \
            pycti.StixSightingRelationship.generate_id(REFS[0], list(where), start, stop)


@pytest.mark.parametrize("ours,theirs", [(ids.Hostname, pycti.CustomObservableHostname),
                                         (ids.Text, pycti.CustomObservableText)])
def test_custom_observables_match_pycti(ours, theirs):
    extension = {"extension-definition--ea279b3e-5c71-4632-ac08-831c66a786ba":
                 {"extension_type": "property-extension", "description": "d", "labels": ["x"]}}
    for value in ["mail.example.com", "ÉCOLE.example", *(_text(1) for _ in range(20))]:
        for extra in ({}, {"object_marking_refs": ["marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"]},
                      {"extensions": extension, "x_opencti_created_by_ref": REFS[2]}):
            kwargs = {"value": value, "allow_custom": True, **extra}
            assert json.loads(ours(**kwargs).serialize()) == json.loads(theirs(**kwargs).serialize())
            assert ours(**kwargs).serialize() == theirs(**kwargs).serialize()
