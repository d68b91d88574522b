"""A VirusTotal domain object as STIX: score, notes, indicator and resolved addresses."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

import stix2

from vtframework import blocks

#: DNS record type -> (address version, STIX class of the address).
ADDRESS_RECORDS = {"A": (4, stix2.IPv4Address), "AAAA": (6, stix2.IPv6Address)}


def attribute_fields(attrs: Mapping[str, Any]) -> list[tuple[str, Any]]:
    return [
        ("Creation Date", blocks.date_text(attrs.get("creation_date"))),
        ("Last Update", blocks.date_text(attrs.get("last_update_date"))),
        ("Registrar", attrs.get("registrar")),
        ("Last Analysis Date", blocks.date_text(attrs.get("last_analysis_date"))),
    ]


def resolved_addresses(context: Any, attrs: Mapping[str, Any]) -> list[Any]:
    """An address with ``resolves-to`` for each valid A and AAAA record.

    VirusTotal passes on whatever the zone says, so a record that is not an
    address of its type is skipped with a warning in the log.
    """
    records = blocks.bounded(context, attrs.get("last_dns_records"), "DNS records")
    objects: list[Any] = []
    seen: set[str] = set()
    for record in records:
        if not isinstance(record, Mapping) or record.get("type") not in ADDRESS_RECORDS:
            continue
        version, cls = ADDRESS_RECORDS[record["type"]]
        try:
            address = ipaddress.ip_address(str(record.get("value")))
        except ValueError:
            address = None
        if address is None or address.version != version:
            context.log.warning(
                "%s: %s record %r is not an IPv%d address, skipped",
                context.observable.value, record["type"], record.get("value"), version,
            )
            continue
        if str(address) in seen:
            continue
        seen.add(str(address))
        # An address is shared by every name resolving to it: no marking of this domain on it.
        sco = context.factory.shared_observable(cls, value=str(address))
        objects += [sco, context.factory.relationship("resolves-to", context.observable.id, sco.id)]
    return objects


def domain_objects(context: Any, report: Mapping[str, Any]) -> list[Any]:
    fields = attribute_fields(blocks.attributes(report))
    return blocks.reputation_objects(context, report, kind="domain", fields=fields, related=resolved_addresses)
