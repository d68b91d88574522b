"""Checking that a bundle is valid STIX 2.1, as OpenCTI will read it."""

from __future__ import annotations

import json
import uuid
from typing import Any, Iterable, Mapping

import stix2

from vtframework.context import EnrichmentResult
from vtframework.stix.factory import to_dict


def as_bundle(what: EnrichmentResult | Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """A STIX bundle of an enrichment result's objects, of STIX objects (stix2 or dicts), or the bundle itself."""
    if isinstance(what, EnrichmentResult):
        objects: list[Any] = list(what.objects)
    elif isinstance(what, Mapping):
        if what.get("type") == "bundle":
            return to_dict(what)
        objects = [what]
    else:
        objects = list(what)
    return {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": [to_dict(obj) for obj in objects]}


def assert_valid_bundle(what: EnrichmentResult | Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> None:
    """Fail unless ``what`` parses with stix2 and passes the OASIS validator.

    ``what`` is an enrichment result, a list of STIX objects, or a bundle.
    OpenCTI's custom properties (``x_opencti_*``, ``note_types``) and
    deterministic (UUIDv5) ids are allowed: the validator reports them as
    warnings, which are not failures. Needs the ``stix2-validator`` package
    (the ``test`` extra).
    """
    from stix2validator import ValidationOptions, validate_instance

    if isinstance(what, EnrichmentResult) and not what.ok:
        raise AssertionError(f"the enrichment failed, there is no bundle to check: {what.message}")
    text = json.dumps(as_bundle(what))
    try:
        stix2.parse(text, allow_custom=True)
    except stix2.exceptions.STIXError as exc:
        raise AssertionError(f"bundle is not valid STIX 2.1: stix2 cannot parse it: {exc}") from None
    result = validate_instance(json.loads(text), ValidationOptions(version="2.1"))
    if not result.is_valid:
        errors = "\n".join(str(error) for error in result.errors)
        raise AssertionError(f"bundle is not valid STIX 2.1:\n{errors}")
