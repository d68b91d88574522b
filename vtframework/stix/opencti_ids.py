"""OpenCTI's deterministic ids and custom observables, without pycti.

OpenCTI derives the id of most entities from a few of their properties: a
UUIDv5 in OpenCTI's namespace over the canonical JSON of those properties
(names lower-cased and stripped). pycti's ``generate_id`` helpers implement
the rules, but importing pycti costs most of a second (its API client pulls
in fastapi, pydantic, boto3…), so every command would pay it. The rules are
implemented here, the same way; ``tests/test_opencti_ids.py`` compares them
with pycti's for many inputs so they never drift. pycti is imported only
where OpenCTI is talked to (``vtframework.opencti``).

``Hostname`` and ``Text`` are OpenCTI's custom observables with pycti's
type and properties. They are not put in stix2's registry, so pycti (which
registers its own under the same types) can still be imported after them.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections import OrderedDict
from typing import Any, Iterable

from stix2.canonicalization.Canonicalize import canonicalize
from stix2.properties import (
    BooleanProperty,
    ExtensionsProperty,
    IDProperty,
    ListProperty,
    ReferenceProperty,
    StringProperty,
    TypeProperty,
)
from stix2.v21.base import _Observable
from stix2.v21.common import GranularMarking

#: The namespace of OpenCTI's deterministic ids.
OPENCTI_ID_NAMESPACE = uuid.UUID("00abedb4-aa42-466c-9c01-fed23315a9b7")


def opencti_id(stix_type: str, data: dict[str, Any]) -> str:
    """``<stix_type>--<uuid5 of the canonical JSON of data>``, as OpenCTI computes ids."""
    return f"{stix_type}--{uuid.uuid5(OPENCTI_ID_NAMESPACE, canonicalize(data, utf8=False))}"


def _name(name: str) -> dict[str, Any]:
    return {"name": name.lower().strip()}


def _time(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime) else value


def identity_id(name: str, identity_class: str) -> str:
    return opencti_id("identity", {**_name(name), "identity_class": identity_class.lower()})


def indicator_id(pattern: str) -> str:
    return opencti_id("indicator", {"pattern": pattern.strip()})


def malware_id(name: str) -> str:
    return opencti_id("malware", _name(name))


def intrusion_set_id(name: str) -> str:
    return opencti_id("intrusion-set", _name(name))


def campaign_id(name: str) -> str:
    return opencti_id("campaign", _name(name))


def report_id(name: str, published: Any) -> str:
    return opencti_id("report", {**_name(name), "published": _time(published)})


def incident_id(name: str, created: Any) -> str:
    return opencti_id("incident", {**_name(name), "created": _time(created)})


def attack_pattern_id(name: str, x_mitre_id: str | None = None) -> str:
    """Keyed by the MITRE id when there is one, else by the name.

    The two platform lines differ, and the installed pycti says which one is
    talked to: 7.x lower-cases the MITRE id and treats an empty one as none;
    6.x keeps its case and keys by any MITRE id given, empty included.
    """
    if _pycti_major() < 7:
        return opencti_id("attack-pattern", {"x_mitre_id": x_mitre_id.strip()} if x_mitre_id is not None
                          else _name(name))
    mitre = x_mitre_id.lower().strip() if x_mitre_id is not None else ""
    return opencti_id("attack-pattern", {"x_mitre_id": mitre} if mitre else _name(name))


@functools.lru_cache(maxsize=1)
def _pycti_major() -> int:
    """The installed pycti's major version, read from its metadata (pycti itself is not imported); 7 without it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return int(version("pycti").split(".", 1)[0])
    except (PackageNotFoundError, ValueError):
        return 7


def country_id(name: str) -> str:
    """A Location of type Country (pycti's ``Location.generate_id(name, "Country")``)."""
    return opencti_id("location", {**_name(name), "x_opencti_location_type": "Country"})


def _timed(data: dict[str, Any], first: tuple[str, Any], second: tuple[str, Any]) -> dict[str, Any]:
    """``data`` with the first time when given, and the second only with the first (pycti's rule)."""
    (first_name, first_value), (second_name, second_value) = first, second
    first_value, second_value = _time(first_value), _time(second_value)
    if first_value is not None:
        data[first_name] = first_value
        if second_value is not None:
            data[second_name] = second_value
    return data


def relationship_id(
    relationship_type: str, source_ref: str, target_ref: str, start_time: Any = None, stop_time: Any = None
) -> str:
    data = {"relationship_type": relationship_type, "source_ref": source_ref, "target_ref": target_ref}
    return opencti_id("relationship", _timed(data, ("start_time", start_time), ("stop_time", stop_time)))


def sighting_id(sighting_of_ref: str, where_sighted_refs: Iterable[str], first_seen: Any = None,
                last_seen: Any = None) -> str:
    data = {"type": "sighting", "sighting_of_ref": sighting_of_ref, "where_sighted_refs": list(where_sighted_refs)}
    return opencti_id("sighting", _timed(data, ("first_seen", first_seen), ("last_seen", last_seen)))


def _value_observable_properties(stix_type: str) -> "OrderedDict[str, Any]":
    """The properties of OpenCTI's value-only custom observables, in pycti's order."""
    markings = ListProperty(ReferenceProperty(valid_types="marking-definition", spec_version="2.1"))
    return OrderedDict([
        ("type", TypeProperty(stix_type, spec_version="2.1")),
        ("spec_version", StringProperty(fixed="2.1")),
        ("id", IDProperty(stix_type, spec_version="2.1")),
        ("value", StringProperty(required=True)),
        ("object_marking_refs", markings),
        ("granular_markings", ListProperty(GranularMarking)),
        ("defanged", BooleanProperty(default=lambda: False)),
        ("extensions", ExtensionsProperty(spec_version="2.1")),
    ])


class Hostname(_Observable):
    """OpenCTI's ``hostname`` observable (pycti's ``CustomObservableHostname``)."""

    _type = "hostname"
    _properties = _value_observable_properties("hostname")
    _id_contributing_properties = ["value"]


class Text(_Observable):
    """OpenCTI's ``text`` observable (pycti's ``CustomObservableText``)."""

    _type = "text"
    _properties = _value_observable_properties("text")
    _id_contributing_properties = ["value"]
