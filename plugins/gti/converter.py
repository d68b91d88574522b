"""GTI's context as STIX: families, actors, campaigns, reports and techniques, upserted onto OpenCTI's own.

Malware families become Malware (``is_family``), threat actors
Intrusion-Sets, campaigns Campaigns, each keyed by its name as OpenCTI keys
them and ``related-to`` the enriched object (``indicates`` from an
Indicator), the only relationship OpenCTI allows between an observable and
them; reports become Reports whose ``object_refs`` hold the enriched object
(or, without a publication date to key them by, an external reference on
it); ATT&CK techniques become Attack-Patterns keyed by their MITRE id, which a
file ``uses``. What GTI says of a collection is kept where OpenCTI has a
place for it: first and last seen, the countries and industries it targets
(``targets``) and comes from (``originates-from``), its origin in the
relationship's description and its GTI page as an external reference. No link
GTI does not state is inferred (a family and an actor found together are not
said to be related to each other).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Iterable
from urllib.parse import quote

from vtframework import ScoreReason, addons, blocks

from vtframework_plugins.gti import fetch
from vtframework_plugins.gti.relations import RELATIONS, Relation

GTI = "Google Threat Intelligence"
GUI_COLLECTION = "https://www.virustotal.com/gui/collection/"
#: What the enriched object is called in a relationship's description.
OBJECT_WORDS = {
    "StixFile": "file", "Artifact": "file", "IPv4-Addr": "IP address", "IPv6-Addr": "IP address",
    "Domain-Name": "domain", "Hostname": "hostname", "Url": "URL",
}
KIND_WORDS = {
    "malware-family": "malware family", "threat-actor": "threat actor", "campaign": "campaign",
    "report": "report", "attack-technique": "ATT&CK technique",
}
#: Countries and industries kept per collection; names and texts kept per item.
MAX_TARGETS, NAME_CHARS, DESCRIPTION_CHARS = 20, 250, 2000
#: Seen-details entries read per collection.
MAX_DETAILS = 50
#: Associations named one by one in the "why this score" note, per relationship.
MAX_REASONS = 10


def gti_objects(context: Any, report: Mapping[str, Any]) -> list[Any]:
    add_labels(context, report)
    found = fetch.collect(context, report)
    objects: list[Any] = []
    made: dict[str, str] = {}  # GTI collection id -> the STIX id of what it became
    unnamed: dict[str, int] = {}
    for name, items in found.items.items():
        relation = RELATIONS[name]
        for item in items:
            converted = _convert(context, relation, item)
            if converted is None:
                unnamed[name] = unnamed.get(name, 0) + 1
                continue
            objects += converted
            if converted:  # a report without a date is a reference, not an object
                made[item.id] = converted[0]["id"]
    for name, count in unnamed.items():
        context.warn(f"GTI {name}: {count} item(s) without a name skipped")
    for collection_id, techniques in found.techniques.items():
        if collection_id in made:
            for technique in techniques:
                pattern = context.factory.attack_pattern(technique.id, _name(technique))
                objects += [pattern, context.factory.relationship("uses", made[collection_id], pattern.id)]
    return objects


def _convert(context: Any, relation: Relation, item: fetch.Item) -> list[Any] | None:
    """The objects one related item becomes, the item's own first; None when it has no usable name."""
    factory = context.factory
    if relation.kind == "attack-technique":
        pattern = factory.attack_pattern(item.id, _name(item))
        # OpenCTI lets a file use a technique; anything else may only be related to one.
        kind = "uses" if context.observable.entity_type == "StixFile" else "related-to"
        return [pattern, addons.from_enriched(
            context, kind, pattern.id, via_indicator="indicates", description=f"{GTI} lists this technique for this "
            f"{OBJECT_WORDS.get(context.observable.entity_type, 'object')}.",
        )]
    name = _name(item)
    if name is None:
        return None
    attrs = item.attributes
    reference = _reference(item, relation)
    if relation.kind == "report":
        return _report(context, item, name, reference)
    common = {
        "description": _text(attrs.get("description")),
        "first_seen": _seen(attrs.get("first_seen_details"), first=True),
        "last_seen": _seen(attrs.get("last_seen_details"), first=False),
        "external_references": [reference],
    }
    if relation.kind == "malware-family":
        sdo = factory.malware(name, is_family=True, **common)
    elif relation.kind == "threat-actor":
        sdo = factory.intrusion_set(name, **common)
    else:
        sdo = factory.campaign(name, **common)
    link = addons.from_enriched(
        context, "related-to", sdo.id, via_indicator="indicates",
        description=_association(context, relation, name, attrs),
    )
    return [sdo, link, *_targets(context, sdo.id, attrs)]


def _report(context: Any, item: fetch.Item, name: str, reference: dict[str, str]) -> list[Any] | None:
    published = blocks.epoch(item.attributes.get("creation_date"))
    if published is None:
        # Keyed by name and date, a report without its own date would be a new object on every run.
        current = blocks.extension(context.target, context.target_extension).setdefault("external_references", [])
        if all(ref.get("url") != reference["url"] for ref in current):
            current.append(dict(reference, description=f"{GTI} report: {name}"))
        return []
    return [context.factory.report(
        name, published, [context.target_id], description=_text(item.attributes.get("description")),
        external_references=[reference],
    )]


def _targets(context: Any, source: str, attrs: Mapping[str, Any]) -> list[Any]:
    """Countries and industries the collection targets, countries it comes from."""
    objects: list[Any] = []
    places = (("targeted_regions_hierarchy", "targets"), ("source_regions_hierarchy", "originates-from"))
    for field_name, kind in places:
        for code in _values(attrs.get(field_name), "country_iso2"):
            location = context.factory.country_for_code(code)  # named as OpenCTI names its countries
            if location is not None:
                objects += [location, context.factory.relationship(kind, source, location.id)]
    for industry in _values(attrs.get("targeted_industries_tree"), "industry_group"):
        sector = context.factory.sector(industry)
        objects += [sector, context.factory.relationship("targets", source, sector.id)]
    return objects


def _values(entries: Any, key: str) -> list[str]:
    """The distinct text ``key`` of a list of entries (first :data:`MAX_TARGETS`)."""
    if not isinstance(entries, list):
        return []
    values = (entry.get(key) for entry in entries[:MAX_DETAILS] if isinstance(entry, Mapping))
    texts = (" ".join(value.split()) for value in values if isinstance(value, str))
    return list(dict.fromkeys(text for text in texts if 0 < len(text) <= 100))[:MAX_TARGETS]


def _association(context: Any, relation: Relation, name: str, attrs: Mapping[str, Any]) -> str:
    origin = _origin(attrs)
    return (
        f"{GTI} associates this {OBJECT_WORDS.get(context.observable.entity_type, 'object')} with the "
        f"{KIND_WORDS[relation.kind]} {name}" + (f" (origin: {origin})." if origin else ".")
    )


def _reference(item: fetch.Item, relation: Relation) -> dict[str, str]:
    origin = _origin(item.attributes)
    description = f"{KIND_WORDS[relation.kind].capitalize()} in {GTI}" + (f" (origin: {origin})" if origin else "")
    return {
        "source_name": GTI,
        "url": GUI_COLLECTION + quote(item.id, safe=""),
        "external_id": item.id,
        "description": description,
    }


def _name(item: fetch.Item) -> str | None:
    value = item.attributes.get("name")
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())
    return text if 0 < len(text) <= NAME_CHARS else None


def _text(value: Any) -> str | None:
    return addons.clip(value.strip(), DESCRIPTION_CHARS) if isinstance(value, str) and value.strip() else None


def _origin(attrs: Mapping[str, Any]) -> str | None:
    value = attrs.get("origin")
    return addons.clip(" ".join(value.split()), 60) if isinstance(value, str) and value.strip() else None


def _seen(details: Any, *, first: bool) -> dt.datetime | None:
    """The earliest (``first``) or latest date of GTI's first or last seen details (``[{value: "2019-…Z"}]``)."""
    if not isinstance(details, list):
        return None
    dates = [_date(entry.get("value")) for entry in details[:MAX_DETAILS] if isinstance(entry, Mapping)]
    known = [date for date in dates if date is not None]
    if not known:
        return None
    return min(known) if first else max(known)


def _date(value: Any) -> dt.datetime | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return blocks.epoch(value)
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)
    # A date before the epoch or in the future is a placeholder, not a sighting.
    return moment if dt.datetime(1990, 1, 1, tzinfo=dt.timezone.utc) <= moment <= _now() else None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)


# -- the assessment: labels and reasons ---------------------------------------------------------
#: Contributing factors (true booleans) that GTI counts, in words, and which way each leans.
FACTORS: dict[str, tuple[str, str]] = {
    "mandiant_analyst_malicious": ("Mandiant analysts judged it malicious", "malicious"),
    "mandiant_analyst_benign": ("Mandiant analysts judged it benign", "benign"),
    "google_malware_analysis": ("Google's malware analysis flags it", "malicious"),
    "google_malware_analysis_auto": ("Google's automated malware analysis flags it", "malicious"),
    "google_malware_similarity": ("it is similar to known malware", "malicious"),
    "google_botnet_emulation": ("Google's botnet emulation flags it", "malicious"),
    "google_mobile_malware_analysis": ("Google's mobile malware analysis flags it", "malicious"),
    "mandiant_association_report": ("Mandiant associates it with a report", "malicious"),
    "mandiant_association_actor": ("Mandiant associates it with a threat actor", "malicious"),
    "mandiant_association_malware": ("Mandiant associates it with a malware family", "malicious"),
    "mandiant_domain_hijack": ("Mandiant saw the domain hijacked", "malicious"),
    "associated_actor": ("it is associated with a threat actor", "malicious"),
    "associated_reference": ("it is associated with a reference", "malicious"),
    "associated_malware_configuration": ("it appears in a malware configuration", "malicious"),
    "matched_malicious_yara": ("it matched a malicious YARA rule", "malicious"),
    "malicious_sandbox_verdict": ("a sandbox judged it malicious", "malicious"),
    "high_severity_related_files": ("high-severity files relate to it", "malicious"),
    "medium_severity_related_files": ("medium-severity files relate to it", "neutral"),
    "low_severity_related_files": ("low-severity files relate to it", "neutral"),
    "mandiant_osint": ("open-source intelligence mentions it", "neutral"),
    "legitimate_software": ("it is known legitimate software", "benign"),
    "pervasive_indicator": ("it is pervasive (seen widely)", "benign"),
}
#: The source of the reasons that explain the factors (the explain plugin then leaves out its summary of them).
GTI_FACTORS = "GTI contributing factors"
LABEL_CHARS = 50
MAX_CATEGORY_LABELS = 10


def assessment(report: Mapping[str, Any]) -> tuple[str | None, str | None, Mapping[str, Any]]:
    """``(verdict, severity, contributing factors)`` of the report's ``gti_assessment`` (values unwrapped)."""
    gti = blocks.attributes(report).get("gti_assessment")
    if not isinstance(gti, Mapping):
        return None, None, {}

    def value(name: str) -> str | None:
        item = gti.get(name)
        text = item.get("value") if isinstance(item, Mapping) else None
        return text.strip() if isinstance(text, str) and 0 < len(text.strip()) <= LABEL_CHARS else None

    factors = gti.get("contributing_factors")
    return value("verdict"), value("severity"), factors if isinstance(factors, Mapping) else {}


def add_labels(context: Any, report: Mapping[str, Any]) -> None:
    """``gti:verdict:malicious``, ``gti:severity:high`` and one ``gti:category:…`` per normalised category."""
    verdict, severity, factors = assessment(report)
    labels = []
    if verdict:
        labels.append("gti:verdict:" + verdict.removeprefix("VERDICT_").lower())
    if severity:
        labels.append("gti:severity:" + severity.removeprefix("SEVERITY_").lower())
    categories = [c.strip().lower() for c in _list(factors.get("normalised_categories")) if 0 < len(c.strip()) <= 40]
    labels += ["gti:category:" + c for c in list(dict.fromkeys(categories))[:MAX_CATEGORY_LABELS]]
    blocks.add_labels(context, labels)


def score_reasons(context: Any, report: Mapping[str, Any]) -> list[ScoreReason]:
    """What GTI relates the object to, and its contributing factors in words."""
    reasons = []
    found = fetch.collect(context, report)
    for name, items in found.items.items():
        relation = RELATIONS[name]
        named = [n for n in (_name(item) for item in items) if n]
        if not named or relation.kind == "attack-technique":
            continue
        more = len(named) - MAX_REASONS
        shown = ", ".join(named[:MAX_REASONS]) + (f" and {more} more" if more > 0 else "")
        words = KIND_WORDS[relation.kind] + ("s" if len(named) > 1 else "")
        reasons.append(ScoreReason("GTI associations", f"{len(named)} {words}: {shown}", "malicious"))
    _verdict, _severity, factors = assessment(report)
    for key, value in sorted(factors.items(), key=lambda kv: str(kv[0])):
        if value is True and key in FACTORS:
            text, leaning = FACTORS[key]
            reasons.append(ScoreReason(GTI_FACTORS, text, leaning))
    detections = factors.get("gavs_detections")
    if isinstance(detections, int) and not isinstance(detections, bool) and detections > 0:
        categories = ", ".join(dict.fromkeys(_list(factors.get("gavs_categories"))))
        shown = f" ({addons.clip(categories, 200)})" if categories else ""
        reasons.append(ScoreReason(GTI_FACTORS, f"{detections} Google antivirus detection(s){shown}", "malicious"))
    verdict = factors.get("safebrowsing_verdict")
    if isinstance(verdict, str) and verdict.strip():
        leaning = "benign" if verdict.strip().lower() in ("harmless", "safe") else "malicious"
        reasons.append(ScoreReason(GTI_FACTORS, f"Safe Browsing says {addons.clip(verdict, 40)}", leaning))
    return reasons


def _list(value: Any) -> Iterable[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []
