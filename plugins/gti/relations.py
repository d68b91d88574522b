"""The GTI relationships the plugin reads, what each one costs, and what the key's licence refused.

Every GTI relationship of a file, IP address, domain or URL is asked for in
the lookup itself (``relationships=`` with ``relationship_attributes[…]``),
so its first page comes in the same answer. A relationship the licence does
not grant is switched off for the life of the process, once, with one warning.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

#: What Google's documentation says each licence gives (malware families, threat actors and campaigns:
#: "special privileges required", GTI Enterprise or Enterprise Plus; reports and techniques: not stated).
ENTERPRISE = "Google Threat Intelligence Enterprise or Enterprise Plus"

#: The objects GTI relates collections to, by API collection.
OBJECTS = ("files", "ip_addresses", "domains", "urls")

#: Collection attributes asked for (the names GTI's collection objects carry; all optional when read).
COLLECTION_ATTRIBUTES = (
    "name", "collection_type", "description", "origin", "first_seen_details", "last_seen_details",
    "targeted_regions_hierarchy", "source_regions_hierarchy", "targeted_industries_tree",
)
REPORT_ATTRIBUTES = ("name", "collection_type", "description", "origin", "creation_date")
TECHNIQUE_ATTRIBUTES = ("name",)

#: VirusTotal's largest page.
PAGE_MAX = 40


@dataclass(frozen=True)
class Relation:
    """One GTI relationship: what its items become and where GTI has it."""

    name: str
    #: ``malware-family``, ``threat-actor``, ``campaign``, ``report`` or ``attack-technique``.
    kind: str
    #: The API collections whose objects have it.
    objects: tuple[str, ...]
    attributes: tuple[str, ...]
    #: The licence it needs, for the warning when the key lacks it.
    licence: str


RELATIONS: dict[str, Relation] = {
    relation.name: relation
    for relation in (
        Relation("malware_families", "malware-family", OBJECTS, COLLECTION_ATTRIBUTES, ENTERPRISE),
        # Named threat_actors on collections, related_threat_actors on files, IPs, domains and URLs.
        Relation("related_threat_actors", "threat-actor", OBJECTS, COLLECTION_ATTRIBUTES, ENTERPRISE),
        Relation("campaigns", "campaign", OBJECTS, COLLECTION_ATTRIBUTES, ENTERPRISE),
        Relation("reports", "report", OBJECTS, REPORT_ATTRIBUTES, "a Google Threat Intelligence licence with reports"),
        Relation(
            "attack_techniques", "attack-technique", ("files",), TECHNIQUE_ATTRIBUTES,
            "a Google Threat Intelligence licence with ATT&CK techniques",
        ),
    )
}
DEFAULT_RELATIONSHIPS = tuple(RELATIONS)
#: The techniques of a collection (``/collections/{id}/attack_techniques``), licensed apart from an object's.
COLLECTION_TECHNIQUES = Relation(
    "attack_techniques of collections", "attack-technique", ("collections",), TECHNIQUE_ATTRIBUTES,
    "a Google Threat Intelligence licence with ATT&CK techniques",
)


def object_of(path: str) -> tuple[str, str] | None:
    """``(collection, id)`` of an object lookup path (``/files/<sha256>``), else None."""
    parts = path.strip("/").split("/")
    if len(parts) == 2 and parts[0] in OBJECTS and parts[1]:
        return parts[0], parts[1]
    return None


def configured(collection: str, settings: Mapping[str, Any]) -> list[Relation]:
    """The relationships the settings ask for that objects of ``collection`` have."""
    return [RELATIONS[name] for name in settings["virustotal.gti_relationships"]
            if name in RELATIONS and collection in RELATIONS[name].objects]


def query_params(relations: Iterable[Relation]) -> dict[str, str]:
    """``relationships`` and one ``relationship_attributes[…]`` per relationship."""
    chosen = list(relations)
    if not chosen:
        return {}
    params = {"relationships": ",".join(r.name for r in chosen)}
    params.update({f"relationship_attributes[{r.name}]": ",".join(r.attributes) for r in chosen})
    return params


class Licence:
    """What the key's licence refused, for the life of the process (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._refused: dict[str, str] = {}
        self._inline = True

    @property
    def inline(self) -> bool:
        """False once VirusTotal refused lookups carrying the relationships it grants one by one."""
        with self._lock:
            return self._inline

    def refuse_inline(self) -> bool:
        """Stop asking for relationships in the lookup; True the first time (the one worth a warning)."""
        with self._lock:
            newly, self._inline = self._inline, False
        return newly

    def grants(self, relation: Relation) -> bool:
        with self._lock:
            return relation.name not in self._refused

    def refuse(self, relations: Iterable[Relation]) -> list[Relation]:
        """Switch ``relations`` off; returns those that were still on (only they are worth a warning)."""
        newly = []
        with self._lock:
            for relation in relations:
                if relation.name not in self._refused:
                    self._refused[relation.name] = relation.licence
                    newly.append(relation)
        return newly

    @property
    def refused(self) -> list[str]:
        with self._lock:
            return sorted(self._refused)


def licence(process_memo: dict[Any, Any]) -> Licence:
    """The process's :class:`Licence` (one per app)."""
    return process_memo.setdefault(("gti", "licence"), Licence())


def refusal_warning(relations: list[Relation]) -> str:
    """One line naming every relationship refused and the licence it needs."""
    by_licence: dict[str, list[str]] = {}
    for relation in relations:
        by_licence.setdefault(relation.licence, []).append(relation.name)
    needs = "; ".join(f"{', '.join(names)} need {needed}" for needed, names in by_licence.items())
    return (
        f"this API key's licence does not grant the GTI relationships {', '.join(r.name for r in relations)} "
        f"({needs}); they are not asked for again until the connector restarts, the rest of the enrichment is intact"
    )
