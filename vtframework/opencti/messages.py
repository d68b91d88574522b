"""Observables from OpenCTI enrichment messages (both message shapes, Indicators)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Callable

from vtframework.errors import InputError
from vtframework.policy.egress import most_restrictive_tlp
from vtframework.records import Observable
from vtframework.stix.observables import best_hash, observable_for, observables_in_pattern

log = logging.getLogger("vtframework.opencti")


def _marking_ids(entity: Mapping[str, Any], stix_entity: Mapping[str, Any]) -> list[str]:
    ids = [m for m in stix_entity.get("object_marking_refs") or [] if isinstance(m, str)]
    for marking in entity.get("objectMarking") or []:
        if isinstance(marking, Mapping) and marking.get("standard_id"):
            ids.append(marking["standard_id"])
    return list(dict.fromkeys(ids))


def _marking_details(entity: Mapping[str, Any]) -> tuple[Mapping[str, Any], ...]:
    """What OpenCTI says about each marking (definition type and value): the egress policy reads them."""
    return tuple(m for m in entity.get("objectMarking") or [] if isinstance(m, Mapping))


def entity_tlp(entity: Mapping[str, Any], stix_entity: Mapping[str, Any]) -> str:
    """The MOST restrictive TLP of an entity, from every marking we are told about."""
    return most_restrictive_tlp([*(entity.get("objectMarking") or []), *_marking_ids(entity, stix_entity)])


def _hashes(entity: Mapping[str, Any], stix_entity: Mapping[str, Any]) -> dict[str, str]:
    hashes = dict(stix_entity.get("hashes") or {})
    for item in entity.get("hashes") or []:
        if isinstance(item, Mapping) and item.get("algorithm") and item.get("hash"):
            hashes.setdefault(item["algorithm"], item["hash"])
    return hashes


def observable_from_message(
    entity: Mapping[str, Any],
    stix_entity: Mapping[str, Any],
    open_file: Callable[[Mapping[str, Any]], Any] | None = None,
) -> Observable:
    """The observable of an enrichment message (entity read by pycti + STIX entity)."""
    entity_type = str(entity.get("entity_type") or stix_entity.get("x_opencti_type") or "")
    hashes = _hashes(entity, stix_entity)
    value = str(entity.get("observable_value") or stix_entity.get("value") or "")
    if entity_type in ("StixFile", "Artifact"):
        best = best_hash(hashes)
        value = best[1] if best else value
    files = []
    for item in entity.get("importFiles") or []:
        if isinstance(item, Mapping) and open_file is not None:
            files.append({"name": item.get("name"), "size": item.get("size"), "id": item.get("id"),
                          "open": lambda item=item: open_file(item)})
    return Observable(
        entity_type=entity_type,
        value=value,
        stix=dict(stix_entity),
        hashes=hashes,
        markings=tuple(_marking_ids(entity, stix_entity)),
        tlp=entity_tlp(entity, stix_entity),
        files=tuple(files),
        marking_details=_marking_details(entity),
    )


def indicator_observables(entity: Mapping[str, Any], stix_entity: Mapping[str, Any]) -> list[Observable]:
    """The observables an Indicator's pattern names, with the Indicator's markings."""
    pattern = stix_entity.get("pattern") or entity.get("pattern") or ""
    if (stix_entity.get("pattern_type") or entity.get("pattern_type") or "stix") != "stix":
        return []
    markings = _marking_ids(entity, stix_entity)
    tlp = entity_tlp(entity, stix_entity)
    found = []
    for entity_type, value in observables_in_pattern(str(pattern)):
        try:
            found.append(observable_for(entity_type, value, markings, tlp, _marking_details(entity)))
        except InputError as exc:
            log.warning("indicator %s: %s", stix_entity.get("id"), exc)
    return found
