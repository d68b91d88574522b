"""The STIX factory: every object vtframework creates comes from here.

It stamps the VirusTotal author, the enriched observable's markings and a
deterministic id on each object, so enriching the same observable twice with
the same VirusTotal analysis yields the same ids (OpenCTI upserts instead of
duplicating). Plugins never build their own identity, marking or id scheme.

What the markings go on: everything that says what we learned about the
enriched observable (notes, indicators, relationships) carries its markings.
Shared reference entities (a Country, an Autonomous System, an address a
domain resolves to, the VirusTotal identity) carry none: they exist once,
platform-wide, and OpenCTI adds every marking an upsert brings, so a TLP:RED
enrichment would hide them from everyone without RED clearance. Linking them
to the observable is a relationship, and that keeps the markings.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from typing import Any

import stix2
from stix2.base import _STIXBase
from stix2.utils import format_datetime

from vtframework.context import STIX_EXT_OCTI_SCO
from vtframework.stix import opencti_ids as ids
from vtframework.stix.countries import country_by_code
from vtframework.stix.opencti_ids import Hostname, Text, opencti_id

AUTHOR_ID = ids.identity_id("VirusTotal", "organization")


def stix_time(moment: dt.datetime) -> str:
    """A time as OpenCTI stores and hashes it: UTC, milliseconds, ``Z`` (``2021-03-29T13:40:54.000Z``)."""
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


#: STIX pattern object path for each OpenCTI observable type.
PATTERN_PATHS = {
    "IPv4-Addr": "ipv4-addr:value",
    "IPv6-Addr": "ipv6-addr:value",
    "Domain-Name": "domain-name:value",
    "Hostname": "hostname:value",
    "Url": "url:value",
}


#: OpenCTI observable types made of a single ``value``, and their STIX classes.
VALUE_OBSERVABLES: dict[str, type] = {
    "IPv4-Addr": stix2.IPv4Address,
    "IPv6-Addr": stix2.IPv6Address,
    "Domain-Name": stix2.DomainName,
    "Hostname": Hostname,
    "Url": stix2.URL,
    "Text": Text,
}


def escape_pattern_value(value: str) -> str:
    """Quote a value for a STIX pattern string literal (backslash and quote)."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


def pattern_for(entity_type: str, value: str, hash_name: str | None = None) -> str:
    """The STIX pattern matching one observable, with the value escaped."""
    if entity_type in ("StixFile", "Artifact"):
        path = f"file:hashes.'{hash_name or 'SHA-256'}'"
    else:
        path = PATTERN_PATHS[entity_type]
    return f"[{path} = '{escape_pattern_value(value)}']"


def note_id(content: str, abstract: str | None, refs: Iterable[str]) -> str:
    """The id of a note: its content, its abstract and the objects it is about.

    The refs are part of it so that two observables with the same finding
    (one score, one verdict) get two notes, not one note OpenCTI attaches to
    both; pycti's ``Note.generate_id`` has no such argument (and its 6.x
    line no abstract either), so the id is computed here, the same way
    whichever pycti is installed.
    """
    data: dict[str, Any] = {"content": content.strip(), "object_refs": sorted(set(refs))}
    if abstract and abstract.strip():
        data["attribute_abstract"] = abstract.strip()
    return opencti_id("note", data)


def author() -> stix2.Identity:
    """The VirusTotal identity every object we make is created by (built once: it never changes)."""
    return _AUTHOR


_AUTHOR = stix2.Identity(
    id=AUTHOR_ID,
    name="VirusTotal",
    identity_class="organization",
    description="VirusTotal",
    # Fixed dates keep the author byte-identical across runs.
    created="2020-01-01T00:00:00.000Z",
    modified="2020-01-01T00:00:00.000Z",
)


def author_dict() -> dict[str, Any]:
    """:func:`author` as a plain dict, a new one each time (its values are all strings)."""
    return dict(_AUTHOR_DICT)


def to_dict(obj: Any) -> dict[str, Any]:
    """A stix2 object (or a dict) as a plain JSON-able dict.

    The same dict as ``json.loads(obj.serialize())`` (a dict: as
    ``json.loads(json.dumps(obj, default=str))``), built by walking the
    object instead of writing and reading JSON: stix2's timestamps in its
    format, optional properties left at their default dropped, tuples as
    lists, new containers throughout.
    """
    if isinstance(obj, _STIXBase):
        return _stix_plain(obj)
    return _plain(obj)


def _stix_plain(obj: _STIXBase) -> dict[str, Any]:
    """A stix2 object as its serializer writes it (see ``stix2.serialization.STIXJSONEncoder``)."""
    defaulted = obj._defaulted_optional_properties
    return {key: _stix_value(value) for key, value in obj.items() if key not in defaulted}


def _stix_value(value: Any) -> Any:
    if isinstance(value, _STIXBase):
        return _stix_plain(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return format_datetime(value)
    if isinstance(value, dict):
        return {_json_key(key): _stix_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_stix_value(item) for item in value]
    return _scalar(value, None)


def _plain(value: Any) -> Any:
    """A value as ``json.loads(json.dumps(value, default=str))`` gives it back."""
    if isinstance(value, dict):
        return {_json_key(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return _scalar(value, str)


def _scalar(value: Any, default: Any) -> Any:
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if default is None:  # what stix2's serializer cannot write either
        raise TypeError(f"Object of type {kind.__name__} is not JSON serializable")
    return default(value)


def _json_key(key: Any) -> str:
    """A dict key as JSON writes it (``1`` -> ``"1"``, ``True`` -> ``"true"``, ``None`` -> ``"null"``)."""
    if type(key) is str:
        return key
    if isinstance(key, str):
        return str(key)
    if key is None or isinstance(key, (bool, int, float)):
        return json.dumps(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


_AUTHOR_DICT = json.loads(_AUTHOR.serialize())


class StixFactory:
    """Builds STIX objects stamped with author, markings and deterministic ids.

    :param markings: marking-definition ids of the enriched observable; every
        object built here carries them (an enriched TLP:AMBER observable never
        gets unmarked notes or indicators).
    :param confidence: optional confidence level put on SDOs and SROs.
    :param now: the enrichment time (injectable for tests).
    """

    def __init__(
        self,
        markings: Iterable[str] = (),
        confidence: int | None = None,
        now: dt.datetime | None = None,
    ) -> None:
        self.markings = list(dict.fromkeys(markings))
        self.confidence = confidence
        self.now = now or dt.datetime.now(dt.timezone.utc)
        self.author_id = AUTHOR_ID

    def _shared(self) -> dict[str, Any]:
        """The stamp of a shared reference entity (a family, an actor, a report): our author, no marking.

        See the module docstring: such an entity exists once for the whole
        platform, so the enriched observable's markings go on the relationship
        to it, never on the entity itself.
        """
        return {"created_by_ref": self.author_id, "allow_custom": True}

    def _common(self) -> dict[str, Any]:
        common: dict[str, Any] = {"created_by_ref": self.author_id, "allow_custom": True}
        if self.markings:
            common["object_marking_refs"] = self.markings
        if self.confidence is not None:
            common["confidence"] = self.confidence
        return common

    # -- SDOs -------------------------------------------------------------
    def note(
        self,
        abstract: str,
        content: str,
        refs: Iterable[str],
        note_types: Iterable[str] = ("external",),
        external_references: Iterable[Mapping[str, Any]] = (),
    ) -> stix2.Note:
        """A note whose id depends on its abstract, content and refs (:func:`note_id`).

        The content reflects one VirusTotal analysis, so the same analysis
        gives the same note (upserted), and a new analysis a new note.
        """
        refs = list(dict.fromkeys(refs))
        optional: dict[str, Any] = {}
        if external_references:
            optional["external_references"] = list(external_references)
        return stix2.Note(
            id=note_id(content, abstract, refs),
            abstract=abstract,
            content=content,
            object_refs=refs,
            note_types=list(note_types),
            **optional,
            **self._common(),
        )

    def indicator(
        self,
        *,
        pattern: str,
        name: str,
        pattern_type: str = "stix",
        description: str | None = None,
        valid_from: dt.datetime | None = None,
        valid_until: dt.datetime | None = None,
        score: int | None = None,
        detection: bool | None = None,
        main_observable_type: str | None = None,
        external_references: Iterable[Mapping[str, Any]] = (),
        labels: Iterable[str] = (),
    ) -> stix2.Indicator:
        custom: dict[str, Any] = {}
        if score is not None:
            custom["x_opencti_score"] = score
        if detection is not None:
            custom["x_opencti_detection"] = detection
        if main_observable_type:
            custom["x_opencti_main_observable_type"] = main_observable_type
        optional: dict[str, Any] = {}
        if description:
            optional["description"] = description
        if valid_until is not None:
            optional["valid_until"] = valid_until
        if labels:
            optional["labels"] = list(labels)
        if external_references:
            optional["external_references"] = list(external_references)
        return stix2.Indicator(
            id=ids.indicator_id(pattern),
            name=name,
            pattern=pattern,
            pattern_type=pattern_type,
            valid_from=valid_from or self.now,
            **optional,
            **custom,
            **self._common(),
        )

    def malware(
        self,
        name: str,
        *,
        is_family: bool = True,
        description: str | None = None,
        first_seen: dt.datetime | None = None,
        last_seen: dt.datetime | None = None,
        external_references: Iterable[Mapping[str, Any]] = (),
    ) -> stix2.Malware:
        """A malware (family by default) keyed by its name as OpenCTI keys it.

        The id depends on the lower-cased name only, so "OrcusRAT" from one
        file and "orcusrat" from another are the same entity, and the same as
        one OpenCTI already holds under that name. A shared reference entity:
        no marking of the enriched observable (the relationship to it keeps them).
        """
        return self._threat(
            stix2.Malware, ids.malware_id(name), name, description, first_seen, last_seen, external_references,
            is_family=is_family,
        )

    def intrusion_set(
        self,
        name: str,
        *,
        description: str | None = None,
        first_seen: dt.datetime | None = None,
        last_seen: dt.datetime | None = None,
        external_references: Iterable[Mapping[str, Any]] = (),
    ) -> stix2.IntrusionSet:
        """A threat actor as OpenCTI models one from threat intelligence: an Intrusion-Set keyed by its name.

        The id depends on the lower-cased name only (pycti's and OpenCTI's
        rule), so the object upserts onto the Intrusion-Set OpenCTI holds.
        """
        return self._threat(
            stix2.IntrusionSet, ids.intrusion_set_id(name), name, description, first_seen, last_seen,
            external_references,
        )

    def campaign(
        self,
        name: str,
        *,
        description: str | None = None,
        first_seen: dt.datetime | None = None,
        last_seen: dt.datetime | None = None,
        external_references: Iterable[Mapping[str, Any]] = (),
    ) -> stix2.Campaign:
        """A campaign keyed by its name (lower-cased), as OpenCTI keys campaigns."""
        return self._threat(
            stix2.Campaign, ids.campaign_id(name), name, description, first_seen, last_seen, external_references,
        )

    def _threat(
        self,
        cls: type,
        ident: str,
        name: str,
        description: str | None,
        first_seen: dt.datetime | None,
        last_seen: dt.datetime | None,
        external_references: Iterable[Mapping[str, Any]],
        **extra: Any,
    ) -> Any:
        """A named threat entity; a last sighting before the first is dropped."""
        optional: dict[str, Any] = {}
        if description:
            optional["description"] = description
        if first_seen is not None:
            optional["first_seen"] = first_seen
        if last_seen is not None and (first_seen is None or last_seen >= first_seen):
            optional["last_seen"] = last_seen
        if external_references:
            optional["external_references"] = list(external_references)
        return cls(id=ident, name=name, **extra, **optional, **self._shared())

    def report(
        self,
        name: str,
        published: dt.datetime,
        object_refs: Iterable[str],
        *,
        description: str | None = None,
        report_types: Iterable[str] = ("threat-report",),
        external_references: Iterable[Mapping[str, Any]] = (),
    ) -> stix2.Report:
        """A report about ``object_refs``, keyed by its name and publication date as OpenCTI keys reports.

        ``published`` must be the report's own date (never the enrichment's
        time): the id depends on it, so the same report published once is the
        same object on every enrichment, and OpenCTI adds each enrichment's
        ``object_refs`` to it. A shared entity: no marking of the enriched
        observable (a reader who may not see it does not see it in the report).
        """
        optional: dict[str, Any] = {"description": description} if description else {}
        if external_references:
            optional["external_references"] = list(external_references)
        return stix2.Report(
            id=ids.report_id(name, published),
            name=name,
            published=published,
            object_refs=list(dict.fromkeys(object_refs)),
            report_types=list(report_types),
            **optional,
            **self._shared(),
        )

    def sector(self, name: str) -> stix2.Identity:
        """An industry sector keyed by its name, as OpenCTI keys sectors (identity class ``class`` is a Sector)."""
        return stix2.Identity(
            id=ids.identity_id(name, "class"),
            name=name,
            identity_class="class",
            allow_custom=True,  # OpenCTI's sector, shared platform-wide: neither our author nor any marking
        )

    def attack_pattern(self, mitre_id: str, name: str | None = None) -> stix2.AttackPattern:
        """An ATT&CK technique keyed by its MITRE id (``T1059.001``), as OpenCTI keys them.

        The id depends on the MITRE id only, so the object upserts onto the
        technique OpenCTI imported from MITRE; without a known name the id
        stands in for it.
        """
        technique = mitre_id.strip().upper()
        # MITRE's object, shared platform-wide: neither our author nor the observable's markings.
        return stix2.AttackPattern(
            id=ids.attack_pattern_id(name or technique, technique),
            name=name or technique,
            x_mitre_id=technique,
            allow_custom=True,
        )

    def incident(
        self,
        *,
        name: str,
        created: dt.datetime,
        incident_type: str,
        description: str | None = None,
        source: str | None = None,
        first_seen: dt.datetime | None = None,
        last_seen: dt.datetime | None = None,
        severity: str | None = None,
        labels: Iterable[str] = (),
        external_references: Iterable[Mapping[str, Any]] = (),
    ) -> stix2.Incident:
        """An Incident whose id is the one OpenCTI computes (its name and ``created``).

        ``created`` is part of the id, so it must be a time that does not
        change (the event's own time), never "now".
        """
        custom: dict[str, Any] = {"incident_type": incident_type}
        for key, value in (("source", source), ("severity", severity), ("first_seen", first_seen),
                           ("last_seen", last_seen)):
            if value is not None:
                custom[key] = stix_time(value) if isinstance(value, dt.datetime) else value
        optional: dict[str, Any] = {}
        if description:
            optional["description"] = description
        if labels:
            optional["labels"] = list(labels)
        if external_references:
            optional["external_references"] = list(external_references)
        created_text = stix_time(created)
        return stix2.Incident(
            id=ids.incident_id(name, created_text),
            name=name,
            created=created_text,
            modified=created_text,
            **optional,
            **custom,
            **self._common(),
        )

    def country(self, name: str, code: str) -> stix2.Location:
        """The platform's own country: for a code OpenCTI's dataset knows, its name and aliases win.

        A shared reference entity: no marking of the enriched observable and
        no author (it is OpenCTI's country, not a VirusTotal finding).
        """
        known = country_by_code(code)
        if known is not None:
            name, code, aliases = known.name, known.alpha2, list(known.aliases)
        else:
            aliases = [code.upper()]
        return stix2.Location(
            id=ids.country_id(name),
            name=name,
            country=code.upper(),
            x_opencti_location_type="Country",
            x_opencti_aliases=aliases,
            allow_custom=True,
        )

    def country_for_code(self, code: object) -> stix2.Location | None:
        """The country of an ISO 3166-1 code as OpenCTI names it, ``None`` for an unknown code."""
        known = country_by_code(code)
        return self.country(known.name, known.alpha2) if known is not None else None

    # -- SROs -------------------------------------------------------------
    def relationship(self, relationship_type: str, source: str, target: str, **extra: Any) -> stix2.Relationship:
        return stix2.Relationship(
            id=ids.relationship_id(relationship_type, source, target),
            relationship_type=relationship_type,
            source_ref=source,
            target_ref=target,
            **extra,
            **self._common(),
        )

    def sighting(
        self,
        *,
        sighting_of: str,
        where_sighted: Iterable[str],
        first_seen: dt.datetime,
        last_seen: dt.datetime,
        count: int = 1,
        description: str | None = None,
        subject: str | None = None,
        external_references: Iterable[Mapping[str, Any]] = (),
    ) -> stix2.Sighting:
        """A Sighting of ``sighting_of`` (an SDO, usually an Indicator) where ``where_sighted`` saw it.

        Without ``subject`` the id is OpenCTI's own (what was sighted, where,
        first and last seen). With ``subject`` (what the sighting is about, e.g.
        ``file:<sha256>``) the id is one per (sighted, where, subject) whatever
        the dates, so a later sighting of the same subject reaches the same
        Sighting in OpenCTI, which widens its first/last seen and adds the count.
        """
        where = list(dict.fromkeys(where_sighted))
        if subject is None:
            ident = ids.sighting_id(sighting_of, where, stix_time(first_seen), stix_time(last_seen))
        else:
            seed = {"type": "sighting", "sighting_of_ref": sighting_of, "where_sighted_refs": where, "subject": subject}
            ident = opencti_id("sighting", seed)
        optional: dict[str, Any] = {}
        if description:
            optional["description"] = description
        if external_references:
            optional["external_references"] = list(external_references)
        return stix2.Sighting(
            id=ident,
            sighting_of_ref=sighting_of,
            where_sighted_refs=where,
            first_seen=stix_time(first_seen),
            last_seen=stix_time(last_seen),
            count=count,
            **optional,
            **self._common(),
        )

    # -- SCOs (stix2 derives deterministic ids from their contributing properties)
    def observable(self, cls: type, **properties: Any) -> Any:
        """An SCO such as ``stix2.IPv4Address``, with the enriched observable's markings."""
        stamp: dict[str, Any] = {"allow_custom": True, "x_opencti_created_by_ref": self.author_id}
        if self.markings:
            stamp["object_marking_refs"] = self.markings
        return cls(**properties, **stamp)

    def value_observable(
        self, entity_type: str, value: str, *, description: str | None = None, labels: Iterable[str] = ()
    ) -> Any:
        """The SCO of an OpenCTI entity type that is just a value (``IPv4-Addr``, ``Url``, ``Text``…).

        ``description`` and ``labels`` go into OpenCTI's observable extension,
        where OpenCTI reads them. A shared entity (another observable may name
        the same address): no marking of the enriched observable, so nothing
        that says what was learned belongs in its description; put that on the
        (marked) relationship to it.
        """
        try:
            cls = VALUE_OBSERVABLES[entity_type]
        except KeyError:
            raise ValueError(f"{entity_type} is not an observable made of a value alone") from None
        extra: dict[str, Any] = {}
        if description or labels:
            ext: dict[str, Any] = {"extension_type": "property-extension"}
            if description:
                ext["description"] = description
            if labels:
                ext["labels"] = list(dict.fromkeys(labels))
            extra["extensions"] = {STIX_EXT_OCTI_SCO: ext}
        return self.shared_observable(cls, value=value, **extra)

    def shared_observable(self, cls: type, **properties: Any) -> Any:
        """An SCO other observables share (an Autonomous System, a resolved address): no markings.

        See the module docstring: the relationship to it carries the markings.
        """
        return cls(**properties, allow_custom=True, x_opencti_created_by_ref=self.author_id)


def external_reference(url: str, description: str = "VirusTotal Report") -> dict[str, str]:
    return {"source_name": "VirusTotal", "url": url, "description": description}
