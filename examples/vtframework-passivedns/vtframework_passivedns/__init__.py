"""vtframework-passivedns: the passive DNS of domains and IP addresses, as a note.

A feature plugin: it owns no observable type, so after the owner of the type
(the built-in domain or ip plugin) has done its part, it makes one follow-up
request through the core's client, ``/domains/{name}/resolutions`` or
``/ip_addresses/{ip}/resolutions``, and turns VirusTotal's answer into a note
of when each name resolved to which address. The request shares the
enrichment's quota, cache, retries and TLP checks; a failed one costs only this
note, and the result says why.
"""

from __future__ import annotations

from typing import Any, Mapping

from vtframework import ConfigKey, EnrichmentContext, Observable, Settings, blocks, hookimpl
from vtframework.errors import VTError

#: The observable types it looks up, and the VirusTotal collection of each.
COLLECTIONS = {"Domain-Name": "domains", "Hostname": "domains", "IPv4-Addr": "ip_addresses", "IPv6-Addr": "ip_addresses"}
#: The most resolutions VirusTotal gives in one page.
PAGE_MAX = 40


@hookimpl
def vtf_config_keys() -> list[ConfigKey]:
    return [ConfigKey("passivedns.limit", "int", 10, f"Resolutions listed in the note (1 to {PAGE_MAX}).", minimum=1)]


@hookimpl
def vtf_stix_objects(observable: Observable, context: EnrichmentContext, settings: Settings) -> list[Any]:
    collection = COLLECTIONS.get(observable.entity_type)
    if collection is None:
        return []
    limit = min(settings["passivedns.limit"], PAGE_MAX)
    try:
        answer = context.client.get(
            f"/{collection}/{observable.value}/resolutions", {"limit": str(limit)},
            subject=f"passive DNS of {observable.value}",
        )
    except VTError as exc:
        context.warn(f"passive DNS not added: {exc}")
        return []
    items = answer.get("data") if isinstance(answer.get("data"), list) else []
    rows = [_row(item) for item in items[:limit] if isinstance(item, Mapping)]
    if not rows:
        return []
    content = blocks.table(("Resolved", "Host name", "IP address", "Resolver"), rows)
    abstract = f"VirusTotal passive DNS ({observable.entity_type}: {observable.value})"
    return [context.factory.note(abstract, content, [context.target_id])]


def _row(item: Mapping[str, Any]) -> tuple[Any, ...]:
    attributes = item.get("attributes") if isinstance(item.get("attributes"), Mapping) else {}
    return (blocks.date_text(attributes.get("date")), attributes.get("host_name"),
            attributes.get("ip_address"), attributes.get("resolver"))
