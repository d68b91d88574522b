"""The marking definitions vtframework recognises, as OpenCTI holds them."""

from __future__ import annotations

from typing import Any


def _tlp(colour: str, ident: str) -> dict[str, Any]:
    """A TLP marking definition as the STIX 2.1 specification fixes it (stix2's ``TLP_*``; a test compares them)."""
    return {
        "type": "marking-definition", "spec_version": "2.1", "id": f"marking-definition--{ident}",
        "created": "2017-01-20T00:00:00.000Z", "definition_type": "tlp", "name": f"TLP:{colour.upper()}",
        "definition": {"tlp": colour},
    }


#: TLP marking definitions by canonical name (OpenCTI's ids; AMBER+STRICT is OpenCTI's own).
TLP_MARKINGS: dict[str, dict[str, Any]] = {
    # OpenCTI's static TLP:CLEAR (the id STIX gave TLP:WHITE), as pycti exports it from the platform.
    "TLP:CLEAR": {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
        "created": "2017-01-20T00:00:00.000Z",
        "definition_type": "tlp",
        "name": "TLP:CLEAR",
        "definition": {"tlp": "clear"},
    },
    "TLP:GREEN": _tlp("green", "34098fce-860f-48ae-8e50-ebd3cc5e41da"),
    "TLP:AMBER": _tlp("amber", "f88d31f6-486f-44da-b317-01333bde0b82"),
    "TLP:AMBER+STRICT": {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": "marking-definition--826578e1-40ad-459f-bc73-ede076f81f37",
        "created": "2022-10-01T00:00:00.000Z",
        "name": "TLP:AMBER+STRICT",
        "definition_type": "statement",
        "definition": {"statement": "TLP:AMBER+STRICT"},
        "x_opencti_definition_type": "TLP",
        "x_opencti_definition": "TLP:AMBER+STRICT",
    },
    "TLP:RED": _tlp("red", "5e57c739-391a-4eb3-b6be-7d15ca92d5ed"),
}
TLP_MARKING_BY_ID = {marking["id"]: marking for marking in TLP_MARKINGS.values()}


def _pap(name: str, ident: str) -> dict[str, Any]:
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": ident,
        "created": "2022-10-01T00:00:00.000Z",
        "name": name,
        "definition_type": "statement",
        "definition": {"statement": name},
        "x_opencti_definition_type": "PAP",
        "x_opencti_definition": name,
    }


#: FIRST PAP 2.0 marking definitions as OpenCTI ships them, least to most restrictive. Their ids
#: are OpenCTI's: uuid5 of the canonical {definition, definition_type} (pycti's MarkingDefinition.generate_id).
PAP_MARKINGS: dict[str, dict[str, Any]] = {
    "PAP:CLEAR": _pap("PAP:CLEAR", "marking-definition--4cdff7eb-acb8-543f-8573-829eb9fe8b34"),
    "PAP:GREEN": _pap("PAP:GREEN", "marking-definition--89484dde-e3d2-547f-a6c6-d14824429eb1"),
    "PAP:AMBER": _pap("PAP:AMBER", "marking-definition--a6f20d4d-0360-59b6-ba22-3b48707828b1"),
    "PAP:RED": _pap("PAP:RED", "marking-definition--4e4e3b84-de45-53df-9d9b-b21207699fd8"),
}
#: PAP 1.0's WHITE, as older platforms still hold it.
PAP_WHITE_ID = "marking-definition--acec93c6-8507-5244-80f9-adf8e4157040"
PAP_MARKING_BY_ID = {marking["id"]: marking for marking in PAP_MARKINGS.values()}
