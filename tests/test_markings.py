"""OpenCTI's TLP markings: TLP:CLEAR as the platform holds it, and the bundle checker plugin authors use."""

from __future__ import annotations

import uuid

import pytest

from vtframework.policy.markings import TLP_MARKINGS
from vtframework.stix.factory import StixFactory, to_dict
from vtframework.testing import assert_valid_bundle

CLEAR_ID = "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"  # OpenCTI's static id
STRICT_ID = "marking-definition--826578e1-40ad-459f-bc73-ede076f81f37"


def bundle(*objects):
    return {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": list(objects)}


def pycti_export(marking_id, name):
    """A marking as pycti rebuilds it from the platform (the objects an enrichment message carries)."""
    return {"type": "marking-definition", "spec_version": "2.1", "id": marking_id, "created": "2017-01-20T00:00:00.000Z",
            "definition_type": "tlp", "name": name, "definition": {"tlp": name.lower().replace("tlp:", "")}}


def test_tlp_clear_is_opencti_s_own():
    clear = TLP_MARKINGS["TLP:CLEAR"]
    assert clear["id"] == CLEAR_ID
    assert (clear["name"], clear["definition"]) == ("TLP:CLEAR", {"tlp": "clear"})  # not TLP:WHITE's definition


def test_checker_accepts_opencti_tlp_2_markings_in_every_shape():
    note = to_dict(StixFactory(markings=[CLEAR_ID, STRICT_ID]).note("n", "text", ["ipv4-addr--5a2c0a2e-bb5b-5d6e-a8f4-0d6f7b6c5f01"]))
    platform_shape = {"type": "marking-definition", "spec_version": "2.1", "id": STRICT_ID, "name": "TLP:AMBER+STRICT",
                      "definition_type": "TLP", "created": "2022-10-01T00:00:00.000Z"}
    for markings in ([TLP_MARKINGS["TLP:CLEAR"], TLP_MARKINGS["TLP:AMBER+STRICT"]],
                     [pycti_export(CLEAR_ID, "TLP:CLEAR"), pycti_export(STRICT_ID, "TLP:AMBER+STRICT")],
                     [pycti_export(CLEAR_ID, "TLP:CLEAR"), platform_shape]):
        assert_valid_bundle(bundle(*markings, note))


def test_checker_refuses_a_tlp_marking_with_another_level_s_id():
    forged = pycti_export(CLEAR_ID, "TLP:RED")
    with pytest.raises(AssertionError, match="another TLP"):
        assert_valid_bundle(bundle(forged))


def test_checker_still_refuses_invalid_markings():
    home_made = pycti_export(f"marking-definition--{uuid.uuid4()}", "TLP:CLEAR")
    with pytest.raises(Exception):
        assert_valid_bundle(bundle(home_made))


@pytest.mark.parametrize("name", ["TLP:GREEN", "TLP:AMBER", "TLP:RED"])
def test_the_specification_s_tlp_markings_are_stix2_s_to_the_byte(name):
    import json

    import stix2

    assert TLP_MARKINGS[name] == json.loads(getattr(stix2, name.replace(":", "_")).serialize())
