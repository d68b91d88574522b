"""Building blocks of the plugins that add to every enrichment (they own no type).

Caps that say when they cut, rule severities as scores, text bounded before it
goes into a note, the VirusTotal object a report is about, and relationships
that start at the enriched object whether it came as itself or through an
Indicator. Importable as ``from vtframework import addons``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from vtframework.pipeline.blocks import as_int, stats

if TYPE_CHECKING:  # pragma: no cover
    from vtframework.context import EnrichmentContext

T = TypeVar("T")

#: Rule levels (Sigma) and alert severities (Snort/Suricata) as OpenCTI scores.
SEVERITY_SCORES = {"critical": 90, "high": 75, "medium": 50, "low": 25, "info": 10, "informational": 10}
#: Most severe first.
SEVERITY_ORDER = ("critical", "high", "medium", "low", "info", "informational")

#: VirusTotal object type -> its API collection.
COLLECTIONS = {"file": "files", "ip_address": "ip_addresses", "domain": "domains", "url": "urls"}


def severity_score(level: Any) -> int | None:
    """The score of a rule level or alert severity (``high`` -> 75), None when unknown."""
    return SEVERITY_SCORES.get(level.strip().lower()) if isinstance(level, str) else None


def severity_rank(level: Any) -> int:
    """Sort key: most severe first, unknown levels last."""
    text = level.strip().lower() if isinstance(level, str) else ""
    return SEVERITY_ORDER.index(text) if text in SEVERITY_ORDER else len(SEVERITY_ORDER)


def capped(context: "EnrichmentContext", items: Sequence[T], setting: str, what: str) -> list[T]:
    """The first ``settings[setting]`` items; when that cuts, the result says so in a warning.

    :param setting: the config key holding the cap (named with its environment
        variable in the warning, so the user knows what to raise).
    :param what: what the items are, plural (``"IDS rules"``).
    """
    limit = context.settings[setting]
    if len(items) <= limit:
        return list(items)
    env = context.settings.entry(setting).key.env_name
    context.warn(f"{len(items)} {what}, only the first {limit} kept ({env}={limit})")
    return list(items[:limit])


def clip(text: Any, limit: int) -> str:
    """``text`` as a string of at most about ``limit`` characters, saying how much was left out."""
    value = text if isinstance(text, str) else "" if text is None else str(text)
    if len(value) <= limit:
        return value
    return value[:limit] + f"… ({len(value) - limit} more characters)"


def vt_object(report: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(collection, id)`` of the VirusTotal object a report is about (``("files", sha256)``)."""
    data = report.get("data") if isinstance(report, Mapping) else None
    if not isinstance(data, Mapping):
        return None
    collection, ident = COLLECTIONS.get(str(data.get("type"))), data.get("id")
    if collection is None or not isinstance(ident, str) or not ident or "/" in ident:
        return None
    return collection, ident


def is_file_report(report: Mapping[str, Any]) -> bool:
    found = vt_object(report)
    return found is not None and found[0] == "files"


def matched_rules(
    context: "EnrichmentContext", attrs: Mapping[str, Any], field: str, what: str, names: Sequence[str], level: str
) -> list[Mapping[str, Any]]:
    """The rules of a report list (``sigma_analysis_results``…), most severe first.

    An entry that is not an object or has none of the ``names`` keys as text
    is skipped with a warning naming its position (``what`` names the kind:
    ``"Sigma rule"``); a field that is not a list costs the whole list.
    """
    results = attrs.get(field)
    if results is None:
        return []
    if not isinstance(results, list):
        context.warn(f"{what}s skipped: {field} is not a list")
        return []
    rules = []
    for index, rule in enumerate(results):
        if not isinstance(rule, Mapping) or not any(
            isinstance(rule.get(name), str) and rule[name].strip() for name in names
        ):
            context.warn(f"{what} #{index + 1} skipped: no {' or '.join(names)}")
            continue
        rules.append(rule)
    return sorted(rules, key=lambda rule: severity_rank(rule.get(level)))


def from_enriched(
    context: "EnrichmentContext",
    relationship_type: str,
    target: str,
    via_indicator: str = "related-to",
    **extra: Any,
) -> Any:
    """A relationship from the enriched object to ``target`` (``extra``: ``description``…).

    Through an Indicator the observable is not in the bundle, so the
    relationship starts at the Indicator, with ``via_indicator`` as its type
    (``related-to`` by default; ``indicates`` towards a Malware).
    """
    kind = via_indicator if context.via_indicator else relationship_type
    return context.factory.relationship(kind, context.target_id, target, **extra)


def code_block(text: str, language: str = "") -> str:
    """A Markdown code block whose fence no backtick run in ``text`` can close early."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text}\n{fence}"


def engines_total(attrs: Mapping[str, Any]) -> int:
    """How many engines looked at the object, as the summary counts them."""
    results = attrs.get("last_analysis_results")
    return len(results) if isinstance(results, Mapping) and results else sum(stats(attrs).values())


# -- sandbox verdicts -----------------------------------------------------------------------
#: Sandbox verdicts read per report (VirusTotal runs about ten sandboxes).
MAX_SANDBOXES = 50
#: Sandbox categories that say the file is bad, and those that say it is not.
BAD_CATEGORIES = ("malicious", "suspicious")
GOOD_CATEGORIES = ("harmless", "undetected")


@dataclass(frozen=True)
class SandboxVerdict:
    """One sandbox's verdict on a file (``sandbox_verdicts``)."""

    sandbox: str
    category: str
    classifications: tuple[str, ...] = ()
    malware_names: tuple[str, ...] = ()
    confidence: int | None = None


def sandbox_verdicts(attrs: Mapping[str, Any]) -> tuple[list[SandboxVerdict], list[str]]:
    """The sandboxes' verdicts (by sandbox name), and one line per entry that could not be read."""
    raw = attrs.get("sandbox_verdicts")
    if raw is None:
        return [], []
    if not isinstance(raw, Mapping):
        return [], ["sandbox_verdicts is not an object"]
    verdicts, problems = [], []
    entries = sorted(raw.items(), key=lambda item: str(item[0]).lower())
    if len(entries) > MAX_SANDBOXES:
        problems.append(f"{len(entries)} sandbox verdicts, only the first {MAX_SANDBOXES} read")
    for name, entry in entries[:MAX_SANDBOXES]:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("category"), str):
            problems.append(f"the verdict of {str(name)[:80]!r} has no category, skipped")
            continue
        confidence = entry.get("confidence")
        verdicts.append(SandboxVerdict(
            sandbox=str(entry.get("sandbox_name") or name)[:80],
            category=entry["category"].strip().lower(),
            classifications=_strings(entry.get("malware_classification")),
            malware_names=_strings(entry.get("malware_names")),
            confidence=as_int(confidence) if isinstance(confidence, (int, float)) and not isinstance(confidence, bool)
            else None,
        ))
    return verdicts, problems


def _strings(value: Any, limit: int = 20) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(dict.fromkeys(item.strip()[:80] for item in value if isinstance(item, str) and item.strip()))[:limit]


def verdict_disagreement(attrs: Mapping[str, Any], verdicts: Sequence[SandboxVerdict]) -> str | None:
    """One sentence when the engines and the sandboxes (or the sandboxes among themselves) disagree."""
    bad = [v for v in verdicts if v.category in BAD_CATEGORIES]
    good = [v for v in verdicts if v.category in GOOD_CATEGORIES]
    flagged, total = stats(attrs)["malicious"], engines_total(attrs)

    def named(group: Sequence[SandboxVerdict]) -> str:
        return ", ".join(
            f"{v.sandbox} says {v.category}" + (f" ({', '.join(v.classifications)})" if v.classifications else "")
            for v in group
        )

    if flagged and good and not bad:
        return f"{flagged} of {total} engines flag it malicious, but {named(good)}."
    if not flagged and bad and total:
        return f"No engine of {total} flags it malicious, but {named(bad)}."
    if bad and good:
        return f"The sandboxes disagree: {named(bad)}; {named(good)}."
    return None
