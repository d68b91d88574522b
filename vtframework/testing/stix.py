"""Checking that a bundle is valid STIX 2.1, as OpenCTI will read it."""

from __future__ import annotations

import json
from typing import Any, Mapping

import stix2


def assert_valid_bundle(bundle: Mapping[str, Any]) -> None:
    """Fail unless ``bundle`` parses with stix2 and passes the OASIS validator.

    OpenCTI's custom properties (``x_opencti_*``, ``note_types``) and
    deterministic (UUIDv5) ids are allowed: the validator reports them as
    warnings, which are not failures. Needs the ``stix2-validator`` package
    (the ``test`` extra).
    """
    from stix2validator import ValidationOptions, validate_instance

    text = json.dumps(bundle)
    stix2.parse(text, allow_custom=True)
    result = validate_instance(json.loads(text), ValidationOptions(version="2.1"))
    if not result.is_valid:
        errors = "\n".join(str(error) for error in result.errors)
        raise AssertionError(f"bundle is not valid STIX 2.1:\n{errors}")
