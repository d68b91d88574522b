"""Reading an enrichment's result in a test: objects by type, notes, relationships, stamps."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from vtframework.context import EnrichmentResult
from vtframework.host.app import App
from vtframework.pipeline.enrich import Pipeline, bundle
from vtframework.stix.factory import AUTHOR_ID
from vtframework.stix.observables import from_value
from vtframework.testing.stix import assert_valid_bundle

#: Object types the factory stamps with ``created_by_ref`` (SCOs carry ``x_opencti_created_by_ref``).
STAMPED_SDO_TYPES = ("note", "indicator", "relationship", "sighting", "incident")
#: Shared reference entities: never marked with the enriched observable's markings.
SHARED_TYPES = (
    "location", "autonomous-system", "malware", "attack-pattern", "intrusion-set", "campaign", "report", "identity",
)


def _objects(result: EnrichmentResult | Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return list(result.objects if isinstance(result, EnrichmentResult) else result)


def enrich_checked(
    app: App, client: Any, value: str, *, tlp: str = "TLP:AMBER", entity_type: str | None = None
) -> EnrichmentResult:
    """Enrich one value with ``client``; fail unless it succeeded and its bundle is valid STIX 2.1."""
    result = Pipeline(app, client).enrich(from_value(value, entity_type, tlp=tlp))
    assert result.ok, result.message
    assert_valid_bundle(bundle(result.objects))
    return result


def objects_of(result: EnrichmentResult | Iterable[Mapping[str, Any]], stix_type: str) -> list[Mapping[str, Any]]:
    """The objects of one STIX type (``"note"``, ``"ipv4-addr"``…), in bundle order."""
    return [obj for obj in _objects(result) if obj.get("type") == stix_type]


def notes_by_abstract(result: EnrichmentResult | Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The notes, keyed by their abstract."""
    return {note["abstract"]: note for note in objects_of(result, "note")}


def relationship_triples(result: EnrichmentResult | Iterable[Mapping[str, Any]]) -> set[tuple[str, str, str]]:
    """``(relationship_type, source_ref, target_ref)`` of every relationship."""
    return {(r["relationship_type"], r["source_ref"], r["target_ref"]) for r in objects_of(result, "relationship")}


def assert_stamped(result: EnrichmentResult | Iterable[Mapping[str, Any]], markings: list[str]) -> None:
    """Every finding the factory made carries the VirusTotal author and exactly ``markings``;
    shared reference entities (countries, autonomous systems, malware families, ATT&CK
    techniques) carry no marking at all."""
    for obj in _objects(result):
        if obj.get("type") in STAMPED_SDO_TYPES:
            assert obj.get("created_by_ref") == AUTHOR_ID, obj["id"]
            assert obj.get("object_marking_refs") == markings, obj["id"]
        elif obj.get("type") in SHARED_TYPES:
            assert not obj.get("object_marking_refs"), obj["id"]


def assert_repeat_is_free(app: App, client: Any, value: str, *, tlp: str = "TLP:AMBER") -> None:
    """A second enrichment within the cache TTL makes no request and gives the very same objects."""
    first = enrich_checked(app, client, value, tlp=tlp)
    again = enrich_checked(app, client, value, tlp=tlp)
    assert (first.requests, again.requests, again.cache_hits) == (1, 0, 1), (first.requests, again.requests)
    assert sorted(o["id"] for o in first.objects) == sorted(o["id"] for o in again.objects)
