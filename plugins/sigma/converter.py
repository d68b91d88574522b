"""Crowdsourced Sigma results as STIX: a note of the matches, Indicators and ATT&CK techniques."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from vtframework import addons, blocks
from vtframework.errors import MalformedResponse, NotFoundError, VTError

from vtframework_plugins.sigma.rule import SigmaRuleError, sigma_yaml, techniques
from vtframework_plugins.sigma.settings import LEVELS

#: Events shown per rule in the note, and characters per event field.
EVENTS_PER_RULE, FIELD_CHARS = 3, 200
#: Rules listed in the note, and rules whose events it shows (a hostile answer may list thousands).
NOTE_RULES, NOTE_RULES_WITH_EVENTS = 100, 25
#: Event fields an analyst reads first; the others follow in VirusTotal's order.
FIRST_FIELDS = ("EventID", "Image", "CommandLine", "ParentImage", "ScriptBlockText", "TargetFilename",
                "ImageLoaded", "TargetObject", "Details", "QueryName", "DestinationHostname", "DestinationIp")
_RULE_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def sigma_objects(context: Any, report: Mapping[str, Any]) -> list[Any]:
    if not addons.is_file_report(report):
        return []
    attrs = blocks.attributes(report)
    rules = addons.matched_rules(
        context, attrs, "sigma_analysis_results", "Sigma rule", ("rule_id", "rule_title"), "rule_level"
    )
    objects: list[Any] = []
    if context.settings["virustotal.file_import_sigma"]:
        objects += _indicators(context, rules)
    indicators = [obj.id for obj in objects if getattr(obj, "type", None) == "indicator"]
    if rules:
        objects.append(context.factory.note(
            "VirusTotal Sigma Rules", _note_content(attrs, rules), [context.target_id, *indicators]
        ))
    return objects


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _name(rule: Mapping[str, Any]) -> str:
    return _text(rule.get("rule_title")) or _text(rule.get("rule_id"))


def _indicators(context: Any, rules: list[Mapping[str, Any]]) -> list[Any]:
    lowest = LEVELS.index(context.settings["virustotal.sigma_min_level"])
    wanted = [r for r in rules if _text(r.get("rule_level")).lower() in LEVELS[lowest:]]
    wanted = addons.capped(context, wanted, "virustotal.sigma_max_rules", "Sigma rules to import")
    objects: list[Any] = []
    for position, rule in enumerate(wanted):
        rule_id = _text(rule.get("rule_id"))
        if not _RULE_ID.match(rule_id):
            context.warn(f"Sigma rule {_name(rule)} skipped: no usable rule id ({rule_id[:80]!r})")
            continue
        try:
            answer = context.client.get(f"/sigma_rules/{rule_id}", subject=f"Sigma rule {rule_id}")
        except (NotFoundError, MalformedResponse) as exc:
            context.warn(f"Sigma rule {_name(rule)} skipped: {exc}")
            continue
        except VTError as exc:
            # Quota, key or outage: the next rules would fail the same way, after the same wait.
            rest = len(wanted) - position
            context.warn(f"{rest} Sigma rule(s) from {_name(rule)} on skipped: {exc}")
            break
        try:
            pattern = sigma_yaml(answer)
        except SigmaRuleError as exc:
            context.warn(f"Sigma rule {_name(rule)} skipped: VirusTotal's rule {rule_id} {exc}")
            continue
        objects += _rule_objects(context, rule, pattern, techniques(answer))
    return objects


def _rule_objects(context: Any, rule: Mapping[str, Any], pattern: str, technique_ids: list[str]) -> list[Any]:
    factory = context.factory
    level = _text(rule.get("rule_level")).lower() or "unknown"
    source = _text(rule.get("rule_source")) or "an unnamed ruleset"
    author = _text(rule.get("rule_author"))
    description = (
        f"Crowdsourced Sigma rule, level {level}, from {source}" + (f", by {author}" if author else "") + "."
    )
    if _text(rule.get("rule_description")):
        description += "\n\n" + addons.clip(_text(rule.get("rule_description")), 2000)
    indicator = factory.indicator(
        pattern=pattern,
        pattern_type="sigma",
        name=_name(rule),
        description=description,
        score=addons.severity_score(level),
        main_observable_type="StixFile",
    )
    objects = [indicator, addons.from_enriched(context, "related-to", indicator.id)]
    for technique in technique_ids:
        attack_pattern = factory.attack_pattern(technique)
        objects += [attack_pattern, factory.relationship("indicates", indicator.id, attack_pattern.id)]
    return objects


def _note_content(attrs: Mapping[str, Any], rules: list[Mapping[str, Any]]) -> str:
    counts = {level: 0 for level in reversed(LEVELS)}
    for rule in rules:
        level = _text(rule.get("rule_level")).lower()
        if level in counts:
            counts[level] += 1
    parts = [
        f"{len(rules)} crowdsourced Sigma rule(s) matched events of the sandbox runs: "
        + ", ".join(f"{level} {count}" for level, count in counts.items()) + "."
    ]
    summary = attrs.get("sigma_analysis_summary")
    if isinstance(summary, Mapping) and summary:
        # VirusTotal's own per-ruleset counts; they do not always add up to the list (real answers differ).
        parts.append("VirusTotal's counts by ruleset: " + "; ".join(
            f"{blocks.cell(name)}: " + ", ".join(
                f"{level} {blocks.as_int(values.get(level))}" for level in reversed(LEVELS)
            )
            for name, values in summary.items() if isinstance(values, Mapping)
        ) + ".")
    parts.append(blocks.table(
        ("Level", "Rule", "Source", "Author", "Events"),
        [(r.get("rule_level"), _name(r), r.get("rule_source"), addons.clip(r.get("rule_author"), 200), _event_count(r))
         for r in rules[:NOTE_RULES]],
    ))
    if len(rules) > NOTE_RULES:
        parts.append(f"… and {len(rules) - NOTE_RULES} more rule(s).")
    for rule in rules[:NOTE_RULES_WITH_EVENTS]:
        events = _events(rule.get("match_context"))
        if events:
            parts.append(f"### {blocks.cell(_name(rule))}\n\n" + "\n".join(f"- {event}" for event in events))
    return "\n\n".join(parts)


def _event_count(rule: Mapping[str, Any]) -> int | str:
    context = rule.get("match_context")
    if isinstance(context, list):
        return len(context)
    return 1 if _text(context) else 0


def _events(match_context: Any) -> list[str]:
    """The first matched events, one line each; the older string form is shown as it is."""
    if isinstance(match_context, str):
        return [blocks.cell(addons.clip(match_context, FIELD_CHARS * 3))] if match_context.strip() else []
    if not isinstance(match_context, list):
        return []
    lines = []
    for event in match_context[:EVENTS_PER_RULE]:
        values = event.get("values") if isinstance(event, Mapping) else None
        if not isinstance(values, Mapping):
            continue
        ordered = [k for k in FIRST_FIELDS if k in values] + [k for k in values if k not in FIRST_FIELDS]
        lines.append("; ".join(
            f"{blocks.cell(key)}: {blocks.cell(addons.clip(values[key], FIELD_CHARS))}" for key in ordered[:8]
        ))
    if len(match_context) > EVENTS_PER_RULE:
        lines.append(f"… {len(match_context) - EVENTS_PER_RULE} more event(s)")
    return lines
