"""Threat classification, sandbox verdicts and threat severity as STIX: a family, labels, a note."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vtframework import addons, blocks

#: Sandbox classifications that say nothing about what the file is.
UNINFORMATIVE = frozenset({"clean", "unknown_verdict", "unknown"})


def classification_objects(context: Any, report: Mapping[str, Any]) -> list[Any]:
    attrs = blocks.attributes(report)
    is_file = addons.is_file_report(report)
    sections: list[str] = []
    objects: list[Any] = []
    refs = [context.target_id]
    if is_file:
        verdicts, problems = addons.sandbox_verdicts(attrs)
        for problem in problems:
            context.warn(f"sandbox verdicts: {problem}")
        disagreement = addons.verdict_disagreement(attrs, verdicts)
        if disagreement:
            sections.append(f"**Engines and sandboxes disagree.** {disagreement}")
        family, family_text = _family(context, attrs)
        if family is not None:
            objects += [family, addons.from_enriched(context, "related-to", family.id, via_indicator="indicates")]
            refs.append(family.id)
        sections += [text for text in (family_text, _sandbox_section(verdicts)) if text]
        if context.settings["virustotal.file_sandbox_labels"]:
            blocks.add_labels(context, _labels(verdicts))
    severity = _severity_section(attrs.get("threat_severity"))
    if severity:
        sections.append(severity)
    if not sections:
        return objects
    objects.append(context.factory.note("VirusTotal Threat Classification", "\n\n".join(sections), refs))
    return objects


def _ranked(values: Any) -> list[tuple[str, int]]:
    """``[{value, count}]`` as ``(value, count)`` pairs, most counted first (ties keep VirusTotal's order)."""
    if not isinstance(values, list):
        return []
    pairs = [
        (item["value"].strip(), blocks.as_int(item.get("count")))
        for item in values
        if isinstance(item, Mapping) and isinstance(item.get("value"), str) and item["value"].strip()
    ]
    return sorted(pairs, key=lambda pair: -pair[1])


def _family(context: Any, attrs: Mapping[str, Any]) -> tuple[Any, str]:
    """The Malware of the most named family when enough engines name it, and the note's section."""
    popular = attrs.get("popular_threat_classification")
    if not isinstance(popular, Mapping):
        return None, ""
    names = _ranked(popular.get("popular_threat_name"))
    categories = _ranked(popular.get("popular_threat_category"))
    flagged = blocks.stats(attrs)["malicious"]
    lines = ["## Threat classification", ""]
    label = popular.get("suggested_threat_label")
    lines.append(f"Suggested label: **{blocks.cell(label)}**")
    if categories:
        lines.append("Categories: " + ", ".join(f"{blocks.cell(v)} ({n})" for v, n in categories))
    if names:
        lines.append("Family names: " + ", ".join(f"{blocks.cell(v)} ({n})" for v, n in names))
    if not names or not flagged:
        return None, "\n".join(lines)
    name, votes = names[0]
    share = min(1.0, votes / flagged)
    minimum_share = context.settings["virustotal.file_family_min_share"]
    minimum_votes = context.settings["virustotal.file_family_min_votes"]
    verdict = f"{votes} of the {flagged} engines that flag it name it {blocks.cell(name)} ({share:.0%})"
    if share >= minimum_share and votes >= minimum_votes:
        lines.append(f"\n{verdict}: related to the malware family {blocks.cell(name)}.")
        return context.factory.malware(name), "\n".join(lines)
    lines.append(
        f"\n{verdict}: below the {minimum_share:.0%} and {minimum_votes} engines needed "
        "(VIRUSTOTAL_FILE_FAMILY_MIN_SHARE, VIRUSTOTAL_FILE_FAMILY_MIN_VOTES), no malware family."
    )
    return None, "\n".join(lines)


def _sandbox_section(verdicts: list[addons.SandboxVerdict]) -> str:
    if not verdicts:
        return ""
    rows = [
        (v.sandbox, v.category, list(v.classifications), list(v.malware_names),
         "N/A" if v.confidence is None else f"{v.confidence}%")
        for v in verdicts
    ]
    return "## Sandbox verdicts\n\n" + blocks.table(
        ("Sandbox", "Category", "Classification", "Malware names", "Confidence"), rows
    )


def _labels(verdicts: list[addons.SandboxVerdict]) -> list[str]:
    labels: list[str] = []
    for verdict in verdicts:
        if verdict.category in addons.BAD_CATEGORIES:
            for name in verdict.classifications:
                label = name.lower()
                if label not in UNINFORMATIVE and label not in labels:
                    labels.append(label)
    return labels


def _severity_section(severity: Any) -> str:
    if not isinstance(severity, Mapping) or not isinstance(severity.get("threat_severity_level"), str):
        return ""
    level = severity["threat_severity_level"].removeprefix("SEVERITY_").lower()
    lines = ["## Threat severity", "", f"**{blocks.cell(level)}**: {blocks.cell(severity.get('level_description'))}"]
    data = severity.get("threat_severity_data")
    if isinstance(data, Mapping) and data:
        lines += ["", blocks.table(("Factor", "Value"), sorted((str(k), v) for k, v in data.items()))]
    return "\n".join(lines)
