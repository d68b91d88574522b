"""The marking definitions vtframework recognises, as OpenCTI holds them."""

from __future__ import annotations

import json
from typing import Any

import stix2


def _as_dict(marking: Any) -> dict[str, Any]:
    return json.loads(marking.serialize())


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
    "TLP:GREEN": _as_dict(stix2.TLP_GREEN),
    "TLP:AMBER": _as_dict(stix2.TLP_AMBER),
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
    "TLP:RED": _as_dict(stix2.TLP_RED),
}
TLP_MARKING_BY_ID = {marking["id"]: marking for marking in TLP_MARKINGS.values()}
