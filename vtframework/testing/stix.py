"""Checking that a bundle is valid STIX 2.1, as OpenCTI will read it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any, Iterable

import stix2

from vtframework.context import EnrichmentResult
from vtframework.policy.markings import TLP_MARKINGS
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
    warnings, which are not failures. OpenCTI's TLP 2.0 markings (TLP:CLEAR,
    TLP:AMBER+STRICT, in the shapes OpenCTI and pycti export them) are not in
    the STIX 2.1 specification, which stix2 and the validator hold TLP
    markings to; they are accepted when their static id matches the TLP they
    name. Needs the ``stix2-validator`` package (the ``test`` extra).
    """
    from stix2validator import ValidationOptions, validate_instance

    if isinstance(what, EnrichmentResult) and not what.ok:
        raise AssertionError(f"the enrichment failed, there is no bundle to check: {what.message}")
    bundle = as_bundle(what)
    objects = [obj for obj in bundle.get("objects") or [] if not _opencti_tlp_marking(obj)]
    text = json.dumps({**bundle, "objects": objects})
    try:
        stix2.parse(text, allow_custom=True)
    except stix2.exceptions.STIXError as exc:
        raise AssertionError(f"bundle is not valid STIX 2.1: stix2 cannot parse it: {exc}") from None
    result = validate_instance(json.loads(text), ValidationOptions(version="2.1"))
    if not result.is_valid:
        errors = "\n".join(str(error) for error in result.errors)
        raise AssertionError(f"bundle is not valid STIX 2.1:\n{errors}")


#: OpenCTI's static marking id of each TLP level.
_TLP_IDS = {name: marking["id"] for name, marking in TLP_MARKINGS.items()}


def _opencti_tlp_marking(obj: Any) -> bool:
    """True for an OpenCTI TLP marking definition; ``AssertionError`` for one whose id is not its TLP's."""
    if not isinstance(obj, Mapping) or obj.get("type") != "marking-definition":
        return False
    if obj.get("id") not in _TLP_IDS.values() or str(obj.get("definition_type", "")).lower() not in ("tlp", "statement"):
        return False
    named = _tlp_name(obj)
    if named is None or _TLP_IDS.get(named) != obj["id"]:
        raise AssertionError(f"{obj['id']} is OpenCTI's marking of another TLP than the one it names ({named})")
    return True


def _tlp_name(obj: Mapping[str, Any]) -> str | None:
    """The TLP a marking names, whichever of OpenCTI's export shapes it has."""
    definition = obj.get("definition")
    candidates = [obj.get("x_opencti_definition"), obj.get("name")]
    if isinstance(definition, Mapping):
        level = definition.get("tlp") or definition.get("statement")
        if isinstance(level, str):
            candidates.append(level if level.upper().startswith("TLP:") else f"TLP:{level}")
    names = {str(c).upper().replace("TLP:WHITE", "TLP:CLEAR") for c in candidates if c}
    return names.pop() if len(names) == 1 else None
