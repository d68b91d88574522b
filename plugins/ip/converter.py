"""A VirusTotal ip_address object as STIX: score, notes, indicator, AS and country."""

from __future__ import annotations

from typing import Any, Mapping

import stix2

from vtframework import blocks


def attribute_fields(attrs: Mapping[str, Any]) -> list[tuple[str, Any]]:
    return [
        ("Country", attrs.get("country")),
        ("Autonomous System Label", attrs.get("as_owner")),
        ("ASN", attrs.get("asn")),
        ("Network", attrs.get("network")),
        ("RIR", attrs.get("regional_internet_registry")),
    ]


def autonomous_system(context: Any, attrs: Mapping[str, Any]) -> list[Any]:
    """The AS the address belongs to (``belongs-to``), when VirusTotal names its number."""
    asn = blocks.count(attrs.get("asn"), maximum=2**32 - 1)
    if asn is None:
        context.log.debug("%s: no ASN in the VirusTotal report, no Autonomous System", context.observable.value)
        return []
    owner, rir = attrs.get("as_owner"), attrs.get("regional_internet_registry")
    # Shared by every address of the AS: no marking of this one (the belongs-to keeps it).
    system = context.factory.shared_observable(
        stix2.AutonomousSystem,
        number=asn,
        name=owner if isinstance(owner, str) and owner else None,
        rir=rir if isinstance(rir, str) and rir else None,
    )
    return [system, context.factory.relationship("belongs-to", context.observable.id, system.id)]


def country(context: Any, attrs: Mapping[str, Any]) -> list[Any]:
    """The country the address is located in (``located-at``): OpenCTI's own country entity."""
    code = attrs.get("country")
    location = context.factory.country_for_code(code) if isinstance(code, str) and len(code) == 2 else None
    if location is None:
        context.log.debug("%s: no known country code in the VirusTotal report (%r)", context.observable.value, code)
        return []
    return [location, context.factory.relationship("located-at", context.observable.id, location.id)]


def related_objects(context: Any, attrs: Mapping[str, Any]) -> list[Any]:
    return autonomous_system(context, attrs) + country(context, attrs)


def ip_objects(context: Any, report: Mapping[str, Any]) -> list[Any]:
    fields = attribute_fields(blocks.attributes(report))
    return blocks.reputation_objects(context, report, kind="ip", fields=fields, related=related_objects)
