"""The one VirusTotal request that reports on a URL.

The URL object and its serving address come in a single answer: the
original connector spent a second request on ``/last_serving_ip_address``
(and two more whenever its standard-base64 id missed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vtframework import url_id

SERVING_IP = "last_serving_ip_address"


def url_query(url: str) -> tuple[str, dict[str, str]]:
    """Path and parameters of the URL report, with the serving address as a relationship."""
    return f"/urls/{url_id(url)}", {"relationships": SERVING_IP}


def serving_ip(report: Mapping[str, Any]) -> str | None:
    """The address that served the URL last, when VirusTotal knows it."""
    data = report.get("data") if isinstance(report, Mapping) else None
    relationships = data.get("relationships") if isinstance(data, Mapping) else None
    related = relationships.get(SERVING_IP) if isinstance(relationships, Mapping) else None
    descriptor = related.get("data") if isinstance(related, Mapping) else None
    address = descriptor.get("id") if isinstance(descriptor, Mapping) else None
    return str(address) if address else None
