"""Building blocks every type plugin shares: score, link, indicator, notes.

They read VirusTotal objects defensively: every attribute may be missing or
null (objects recorded in 2019 have no ``last_analysis_stats``), and text that
goes into a Markdown table is escaped so a value cannot break the note.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from vtframework.context import STIX_EXT_OCTI, STIX_EXT_OCTI_SCO
from vtframework.stix.factory import external_reference, pattern_for

if TYPE_CHECKING:  # pragma: no cover
    from vtframework.context import EnrichmentContext

GUI_BASE = "https://www.virustotal.com/gui"
#: VirusTotal API collection -> GUI path segment.
GUI_COLLECTIONS = {"files": "file", "ip_addresses": "ip-address", "domains": "domain", "urls": "url"}
GUI_TYPES = {"file": "file", "ip_address": "ip-address", "domain": "domain", "url": "url"}

NA = "N/A"

#: How indicator descriptions name each plugin kind.
KIND_LABELS = {"file": "file", "ip": "IP address", "domain": "domain", "url": "URL"}

#: A count above this is not VirusTotal's (it has fewer than 200 engines; no other counter comes near).
MAX_COUNT = 10**9
#: Related objects one enrichment adds when the setting is not declared (see VIRUSTOTAL_MAX_RELATED_OBJECTS).
DEFAULT_MAX_RELATED = 1000


# -- reading VirusTotal objects ----------------------------------------------
def attributes(report: Mapping[str, Any]) -> dict[str, Any]:
    data = report.get("data") if isinstance(report, Mapping) else None
    attrs = data.get("attributes") if isinstance(data, Mapping) else None
    return dict(attrs) if isinstance(attrs, Mapping) else {}


def count(value: Any, maximum: int = MAX_COUNT) -> int | None:
    """A count from VirusTotal, or None when it is not one.

    Numbers from VirusTotal are not trusted: negative, NaN, infinite,
    fractional or absurdly large values (and booleans, strings) are missing
    data, never a number to show or compute with.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()):
        return None
    if not 0 <= value <= maximum:
        return None
    return int(value)


def as_int(value: Any) -> int:
    """VirusTotal counters as ints; null, missing or junk (see :func:`count`) count as 0."""
    found = count(value)
    if found is None and isinstance(value, str) and value.strip().isdigit():
        found = count(int(value.strip()))
    return found or 0


def valid_score(value: Any) -> int | None:
    """A score as OpenCTI holds it: a whole number from 0 to 100, or None."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return round(value) if 0 <= value <= 100 else None


STAT_KEYS = ("malicious", "suspicious", "undetected", "harmless", "timeout",
             "confirmed-timeout", "failure", "type-unsupported")


def stats(attrs: Mapping[str, Any]) -> dict[str, int]:
    """``last_analysis_stats`` with every counter present (0 when missing or not a count)."""
    raw = attrs.get("last_analysis_stats")
    raw = raw if isinstance(raw, Mapping) else {}
    return {key: as_int(raw.get(key)) for key in STAT_KEYS}


def has_stats(attrs: Mapping[str, Any]) -> bool:
    """Are there detection statistics to show? Not when the malicious count is missing or not a count."""
    raw = attrs.get("last_analysis_stats")
    return isinstance(raw, Mapping) and bool(raw) and count(raw.get("malicious")) is not None


def engine_total(attrs: Mapping[str, Any]) -> int:
    """How many engines gave a verdict: the results listed, else the sum of the statistics."""
    results = attrs.get("last_analysis_results")
    listed = len(results) if isinstance(results, Mapping) else 0
    return listed or sum(stats(attrs).values())


def detection_summary(attrs: Mapping[str, Any]) -> dict[str, int]:
    """``{"malicious": m, "total": n}`` for the summary table, or ``{}`` without usable statistics."""
    if not has_stats(attrs):
        return {}
    return {"malicious": stats(attrs)["malicious"], "total": engine_total(attrs)}


def vt_score(attrs: Mapping[str, Any]) -> int | None:
    """The VirusTotal score of an object, 0-100, or ``None`` when there is none.

    Google Threat Intelligence's ``threat_score`` wins when the key has it (and
    is a number from 0 to 100); otherwise malicious / (malicious + harmless +
    undetected) x 100, rounded, when the malicious count is a count.
    """
    gti = attrs.get("gti_assessment")
    if isinstance(gti, Mapping):
        threat = gti.get("threat_score")
        value = valid_score(threat.get("value") if isinstance(threat, Mapping) else None)
        if value is not None:
            return value
    if not has_stats(attrs):
        return None
    counts = stats(attrs)
    total = counts["malicious"] + counts["harmless"] + counts["undetected"]
    if total == 0:
        return None
    return round(counts["malicious"] / total * 100)


def bounded(context: "EnrichmentContext", items: Any, what: str) -> list[Any]:
    """The first ``VIRUSTOTAL_MAX_RELATED_OBJECTS`` entries of a list from VirusTotal ([] when not a list).

    A domain with 50,000 DNS records costs the time of 1,000, and the result
    says what was left out.
    """
    if not isinstance(items, list):
        return []
    limit = context.settings.get("virustotal.max_related_objects") or DEFAULT_MAX_RELATED
    if len(items) > limit:
        context.warn(f"only the first {limit} of {len(items)} {what} used (VIRUSTOTAL_MAX_RELATED_OBJECTS={limit})")
        return items[:limit]
    return items


def gui_link(report: Mapping[str, Any]) -> str | None:
    """The VirusTotal web page of an object (the API ``self`` link mapped to the GUI)."""
    data = report.get("data") if isinstance(report, Mapping) else None
    if not isinstance(data, Mapping):
        return None
    object_type, object_id = data.get("type"), data.get("id")
    if object_type in GUI_TYPES and object_id:
        return f"{GUI_BASE}/{GUI_TYPES[object_type]}/{object_id}"
    link = (data.get("links") or {}).get("self") if isinstance(data.get("links"), Mapping) else None
    if isinstance(link, str) and "/api/v3/" in link:
        collection, _, rest = link.split("/api/v3/", 1)[1].partition("/")
        if collection in GUI_COLLECTIONS and rest:
            return f"{GUI_BASE}/{GUI_COLLECTIONS[collection]}/{rest}"
    return None


def epoch(value: Any) -> dt.datetime | None:
    """A VirusTotal unix timestamp as an aware datetime (None when absent or invalid)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return None
    try:
        return dt.datetime.fromtimestamp(value, dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def date_text(value: Any) -> str:
    moment = epoch(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else NA


# -- Markdown -----------------------------------------------------------------
#: What a Markdown cell escapes: its own escape character, the column separator and code quotes.
_CELL_ESCAPES = str.maketrans({"\\": "\\\\", "|": "\\|", "`": "\\`"})
_CELL_SPECIAL = frozenset("\\|`")


def cell(value: Any) -> str:
    """One Markdown table cell: 'N/A' for empty values, pipes and newlines neutralised."""
    if type(value) is str:  # most cells (an engine's name, a verdict): the short road
        if not value:
            return NA
        text = value
    elif value is None or value == "" or value == [] or value == {}:
        return NA
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (list, tuple)):
        text = ", ".join(str(item) for item in value)
    else:
        text = str(value)
    text = " ".join(text.split())  # newlines and tabs would end the row
    return text.translate(_CELL_ESCAPES) if not _CELL_SPECIAL.isdisjoint(text) else text


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in rows]
    return "\n".join(lines)


def engine_rows(attrs: Mapping[str, Any], with_version: bool = False) -> list[list[Any]]:
    results = attrs.get("last_analysis_results")
    if not isinstance(results, Mapping):
        return []
    rows = []
    for engine, result in sorted(results.items(), key=lambda item: str(item[0]).lower()):
        result = result if isinstance(result, Mapping) else {}
        row = [result.get("engine_name") or engine]
        if with_version:
            row.append(result.get("engine_version"))
        row += [result.get("method"), result.get("category"), result.get("result")]
        rows.append(row)
    return rows


def attributes_block(title: str, fields: Iterable[tuple[str, Any]]) -> str:
    """The optional 'Attributes' section appended to notes."""
    return f"## Attributes ({cell(title)})\n\n" + table(("Attribute", "Value"), fields)


# -- updating the enriched object -------------------------------------------
def extension(stix: dict[str, Any], extension_id: str) -> dict[str, Any]:
    """The object's OpenCTI property extension, created when missing."""
    ext = stix.setdefault("extensions", {}).setdefault(extension_id, {})
    ext.setdefault("extension_type", "property-extension")
    return ext


def put_extension(stix: dict[str, Any], extension_id: str, key: str, value: Any, multiple: bool = False) -> None:
    """Write an OpenCTI attribute into the object's extension (dropping ``x_opencti_<key>``)."""
    stix.pop("x_opencti_" + key, None)
    ext = extension(stix, extension_id)
    if multiple:
        current = ext.setdefault(key, [])
        if value not in current:
            current.append(value)
    else:
        ext[key] = value


def existing_score(stix: Mapping[str, Any]) -> int | None:
    """The score the object carries, flat (pycti export) or in an extension."""
    if stix.get("x_opencti_score") is not None:
        return valid_score(stix["x_opencti_score"])
    extensions = stix.get("extensions")
    for extension in (STIX_EXT_OCTI, STIX_EXT_OCTI_SCO):
        ext = extensions.get(extension) if isinstance(extensions, Mapping) else None
        value = ext.get("score") if isinstance(ext, Mapping) else None
        if value is not None:
            return valid_score(value)
    return None


def apply_score(context: "EnrichmentContext", score: int | None) -> list[Any]:
    """Set the VirusTotal score on the enriched object.

    With ``VIRUSTOTAL_REPLACE_WITH_LOWER_SCORE=false`` a lower VirusTotal score
    leaves a higher existing score in place (whatever its source, GTI included)
    and is recorded in a "VirusTotal Score" note instead.
    """
    score = valid_score(score)
    if score is None:
        return []
    current = existing_score(context.target)
    if current is not None and score < current and not context.settings["virustotal.replace_with_lower_score"]:
        return [context.factory.note("VirusTotal Score", f"```\n{score}\n```", [context.target_id])]
    put_extension(context.target, context.target_extension, "score", score)
    context.summary["score"] = score
    return []


def add_external_reference(context: "EnrichmentContext", report: Mapping[str, Any], description: str) -> dict | None:
    url = gui_link(report)
    if not url:
        return None
    reference = external_reference(url, description)
    current = extension(context.target, context.target_extension).setdefault("external_references", [])
    if all(ref.get("url") != url for ref in current):
        current.append(reference)
    return reference


def add_labels(context: "EnrichmentContext", labels: Iterable[str]) -> None:
    for label in labels:
        if isinstance(label, str) and label.strip():
            if context.via_indicator:
                current = context.target.setdefault("labels", [])
                if label not in current:
                    current.append(label)
            else:
                put_extension(context.target, context.target_extension, "labels", label, multiple=True)


def indicator_based_on(
    context: "EnrichmentContext",
    *,
    kind: str,
    pattern: str,
    name: str,
    malicious: int,
    score: int | None,
    references: Iterable[Mapping[str, Any]] = (),
) -> list[Any]:
    """An Indicator ``based-on`` the observable when ``malicious >= threshold > 0``.

    ``kind`` selects the ``VIRUSTOTAL_<KIND>_INDICATOR_*`` keys. Never made when
    the enrichment itself targets an Indicator.
    """
    if context.via_indicator:
        return []
    threshold = context.settings[f"virustotal.{kind}_indicator_create_positives"]
    if threshold <= 0 or malicious < threshold:
        return []
    minutes = context.settings[f"virustotal.{kind}_indicator_valid_minutes"]
    indicator = context.factory.indicator(
        pattern=pattern,
        name=name,
        description=f"VirusTotal: {malicious} engines flagged this {KIND_LABELS.get(kind, kind)} (threshold {threshold}).",
        valid_from=context.factory.now,
        valid_until=context.factory.now + dt.timedelta(minutes=minutes),
        score=score,
        detection=context.settings[f"virustotal.{kind}_indicator_detect"],
        main_observable_type=context.observable.entity_type,
        external_references=list(references),
    )
    relationship = context.factory.relationship("based-on", indicator.id, context.observable.id)
    return [indicator, relationship]


def results_note(context: "EnrichmentContext", attrs: Mapping[str, Any], extra: str = "") -> list[Any]:
    """The "VirusTotal Results" note of IPs, domains and URLs (none without stats)."""
    if not has_stats(attrs):
        return []
    counts = stats(attrs)
    total = engine_total(attrs)
    observable = context.observable
    content = (
        table(
            ("Total Analyses", "Malicious", "Suspicious", "Harmless", "Undetected"),
            [(total, counts["malicious"], counts["suspicious"], counts["harmless"], counts["undetected"])],
        )
        + "\n\n### Last Analysis Results\n\n"
        + table(("Engine name", "Method", "Category", "Result"), engine_rows(attrs))
        + (f"\n\n{extra}" if extra else "")
    )
    abstract = f"VirusTotal Results ({observable.entity_type}: {observable.value})"
    return [context.factory.note(abstract, content, [context.target_id])]


# -- IPs, domains and URLs ------------------------------------------------------
def attributes_section(context: "EnrichmentContext", fields: Iterable[tuple[str, Any]]) -> str:
    """The observable's attributes block, or "" unless ``VIRUSTOTAL_INCLUDE_ATTRIBUTES_IN_NOTE`` is on."""
    if not context.settings["virustotal.include_attributes_in_note"]:
        return ""
    observable = context.observable
    return attributes_block(f"{observable.entity_type}: {observable.value}", fields)


def categories_note(context: "EnrichmentContext", attrs: Mapping[str, Any], extra: str = "") -> list[Any]:
    """The "VirusTotal Categories" note of domains and URLs (none when no vendor categorises it)."""
    categories = attrs.get("categories")
    if not isinstance(categories, Mapping) or not categories:
        return []
    rows = sorted(categories.items(), key=lambda item: str(item[0]).lower())
    content = table(("Vendor", "Category"), rows) + (f"\n\n{extra}" if extra else "")
    observable = context.observable
    abstract = f"VirusTotal Categories ({observable.entity_type}: {observable.value})"
    return [context.factory.note(abstract, content, [context.target_id])]


def reputation_objects(
    context: "EnrichmentContext",
    report: Mapping[str, Any],
    *,
    kind: str,
    fields: Iterable[tuple[str, Any]],
    related: Callable[["EnrichmentContext", Mapping[str, Any]], list[Any]] | None = None,
) -> list[Any]:
    """What every IP, domain and URL enrichment shares.

    The summary, score, VirusTotal link, results and categories notes (each
    with the attributes block when it is on), the Indicator over the ``kind``
    threshold, and the ``related(context, attributes)`` objects when
    ``VIRUSTOTAL_<KIND>_ADD_RELATIONSHIPS`` is on. A report without analysis
    statistics (objects recorded years ago) gets no summary counts, no results
    note and no score.
    """
    attrs = attributes(report)
    observable = context.observable
    counts = stats(attrs)
    context.summary.update(detection_summary(attrs))
    score = vt_score(attrs)
    objects = apply_score(context, score)
    reference = add_external_reference(context, report, "VirusTotal Report")
    section = attributes_section(context, fields)
    objects += results_note(context, attrs, section)
    objects += categories_note(context, attrs, section)
    objects += indicator_based_on(
        context,
        kind=kind,
        pattern=pattern_for(observable.entity_type, observable.value),
        name=observable.value,
        malicious=counts["malicious"],
        score=score,
        references=[reference] if reference else [],
    )
    # Through an Indicator the observable itself is not in the bundle, so nothing may point at it.
    if related is not None and context.settings[f"virustotal.{kind}_add_relationships"] and not context.via_indicator:
        objects += related(context, attrs)
    return objects
