"""The "why this score" note: how the score was made and what argues for and against it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vtframework import ScoreReason, addons, blocks

#: OpenCTI type -> the infix of the type plugin's indicator keys.
INDICATOR_KIND = {
    "StixFile": "file", "Artifact": "file", "IPv4-Addr": "ip", "IPv6-Addr": "ip",
    "Domain-Name": "domain", "Hostname": "domain", "Url": "url",
}
#: Engines named per verdict in the note.
ENGINES_SHOWN = 8
#: Reasons listed, and characters per reason (other plugins' reasons are not ours to trust).
MAX_REASONS, REASON_CHARS = 60, 600
GTI_LEANING = {
    "VERDICT_MALICIOUS": "malicious", "VERDICT_SUSPICIOUS": "malicious",
    "VERDICT_BENIGN": "benign", "VERDICT_HARMLESS": "benign",
}
SEVERITY_LEANING = {"SEVERITY_HIGH": "malicious", "SEVERITY_MEDIUM": "malicious"}
#: The source of the reasons that explain GTI's contributing factors.
GTI_FACTORS = "GTI contributing factors"


def explain_objects(context: Any, report: Mapping[str, Any]) -> list[Any]:
    attrs = blocks.attributes(report)
    others = context.score_reasons()
    # A plugin that explains the GTI factors one by one (the gti plugin) replaces the one-line summary.
    factors_explained = any(reason.source == GTI_FACTORS for reason in others)
    reasons = [
        *_engines(attrs), *_gti(attrs.get("gti_assessment"), with_factors=not factors_explained), *_rules(attrs),
        *_sandboxes(attrs), *_severity(attrs.get("threat_severity")), *others,
    ]
    parts = [_score_line(context, attrs), _indicator_line(context, attrs)]
    if reasons:
        parts.append(blocks.table(
            ("Points to", "Source", "Reason"),
            [(r.points_to, addons.clip(r.source, 80), addons.clip(r.text, REASON_CHARS))
             for r in reasons[:MAX_REASONS]],
        ))
    if len(reasons) > MAX_REASONS:
        parts.append(f"… and {len(reasons) - MAX_REASONS} more reason(s).")
    content = "\n\n".join(part for part in parts if part)
    return [context.factory.note("VirusTotal Score Explained", content, [context.target_id])]


def _score_line(context: Any, attrs: Mapping[str, Any]) -> str:
    counts = blocks.stats(attrs)
    ratio = None
    denominator = counts["malicious"] + counts["harmless"] + counts["undetected"]
    if blocks.has_stats(attrs) and denominator:
        ratio = (
            f"{counts['malicious']} malicious / ({counts['malicious']} malicious + {counts['harmless']} harmless "
            f"+ {counts['undetected']} undetected) = {round(counts['malicious'] / denominator * 100)}"
        )
    score = blocks.vt_score(attrs)
    if score is None:
        return "**No score**: VirusTotal's answer has no detection statistics, so the score was left as it was."
    if _gti_score(attrs) is not None:
        text = f"**Score {score}**: Google Threat Intelligence's threat score."
        if ratio:
            text += f" The engines alone would give {ratio}."
    else:
        text = f"**Score {score}**: {ratio}."
    applied = context.summary.get("score")
    if applied != score:
        current = blocks.existing_score(context.target)
        text += (
            f" Not applied: the observable already scores {current} and "
            "VIRUSTOTAL_REPLACE_WITH_LOWER_SCORE=false keeps the higher score."
        )
    return text


def _gti_score(attrs: Mapping[str, Any]) -> Any:
    gti = attrs.get("gti_assessment")
    threat = gti.get("threat_score") if isinstance(gti, Mapping) else None
    value = threat.get("value") if isinstance(threat, Mapping) else None
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _indicator_line(context: Any, attrs: Mapping[str, Any]) -> str:
    if context.via_indicator:
        return "Indicator rule: not applied, the enrichment came through an Indicator."
    kind = INDICATOR_KIND.get(context.observable.entity_type)
    path = f"virustotal.{kind}_indicator_create_positives"
    threshold = context.settings.get(path) if kind else None
    if threshold is None:
        return ""
    env = context.settings.entry(path).key.env_name
    if threshold <= 0:
        return f"Indicator rule: off ({env}=0), no Indicator."
    if not blocks.has_stats(attrs):
        return (
            f"Indicator rule: at least {threshold} engines ({env}={threshold}); no detection statistics, no Indicator."
        )
    flagged = blocks.stats(attrs)["malicious"]
    made = "so one was made" if flagged >= threshold else "so none was made"
    return (
        f"Indicator rule: an Indicator is made when at least {threshold} engines flag it ({env}={threshold}); "
        f"{flagged} do, {made}."
    )


def _engines(attrs: Mapping[str, Any]) -> list[ScoreReason]:
    if not blocks.has_stats(attrs):
        return []
    counts = blocks.stats(attrs)
    results = attrs.get("last_analysis_results")
    results = results if isinstance(results, Mapping) else {}
    reasons = []
    for category, leaning in (("malicious", "malicious"), ("suspicious", "malicious")):
        if counts[category]:
            named = [
                f"{(r.get('engine_name') or engine)} ({r.get('result') or category})"
                for engine, r in sorted(results.items(), key=lambda item: str(item[0]).lower())
                if isinstance(r, Mapping) and r.get("category") == category
            ]
            shown = ", ".join(named[:ENGINES_SHOWN])
            if len(named) > ENGINES_SHOWN:
                shown += f" and {len(named) - ENGINES_SHOWN} more"
            text = f"{counts[category]} {category}" + (f": {shown}" if shown else "")
            reasons.append(ScoreReason("Engines", text, leaning))
    quiet = counts["harmless"] + counts["undetected"]
    if quiet:
        reasons.append(ScoreReason(
            "Engines", f"{counts['undetected']} undetected, {counts['harmless']} harmless", "benign"
        ))
    return reasons


def _gti(gti: Any, with_factors: bool = True) -> list[ScoreReason]:
    if not isinstance(gti, Mapping):
        return []

    def value(name: str) -> Any:
        item = gti.get(name)
        return item.get("value") if isinstance(item, Mapping) else None

    verdict, severity, threat = value("verdict"), value("severity"), value("threat_score")
    parts = [
        f"verdict {verdict}" if isinstance(verdict, str) else "",
        f"severity {severity}" if isinstance(severity, str) else "",
        f"threat score {threat}" if threat is not None else "",
    ]
    text = ", ".join(p for p in parts if p) or "assessment without verdict"
    if isinstance(gti.get("description"), str) and gti["description"].strip():
        text += f": {addons.clip(gti['description'].strip(), 300)}"
    reasons = [ScoreReason("GTI assessment", text, GTI_LEANING.get(str(verdict), "neutral"))]
    factors = gti.get("contributing_factors")
    if with_factors and isinstance(factors, Mapping) and factors:
        shown = "; ".join(f"{key} {_factor(val)}" for key, val in sorted(factors.items(), key=lambda kv: str(kv[0])))
        reasons.append(ScoreReason(GTI_FACTORS, addons.clip(shown, 600)))
    return reasons


def _factor(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(dict.fromkeys(str(item) for item in value))
    return str(value)


def _rules(attrs: Mapping[str, Any]) -> list[ScoreReason]:
    reasons = []
    yara = [hit for hit in attrs.get("crowdsourced_yara_results") or [] if isinstance(hit, Mapping)]
    if yara:
        names = ", ".join(dict.fromkeys(str(hit.get("rule_name")) for hit in yara if hit.get("rule_name")))
        reasons.append(ScoreReason("Crowdsourced YARA", f"{len(yara)} rule(s) matched: {addons.clip(names, 300)}"))
    for source, field, level_key in (("Crowdsourced Sigma", "sigma_analysis_results", "rule_level"),
                                     ("Crowdsourced IDS", "crowdsourced_ids_results", "alert_severity")):
        rules = [rule for rule in attrs.get(field) or [] if isinstance(rule, Mapping)]
        if not rules:
            continue
        levels: dict[str, int] = {}
        for rule in rules:
            level = str(rule.get(level_key) or "unknown").lower()
            levels[level] = levels.get(level, 0) + 1
        ordered = sorted(levels.items(), key=lambda kv: addons.severity_rank(kv[0]))
        leaning = "malicious" if any(addons.severity_rank(level) <= 1 for level in levels) else "neutral"
        reasons.append(ScoreReason(
            source, f"{len(rules)} rule(s) matched: " + ", ".join(f"{n} {level}" for level, n in ordered), leaning
        ))
    return reasons


def _sandboxes(attrs: Mapping[str, Any]) -> list[ScoreReason]:
    verdicts, _problems = addons.sandbox_verdicts(attrs)
    reasons = []
    for verdict in verdicts:
        leaning = ("malicious" if verdict.category in addons.BAD_CATEGORIES
                   else "benign" if verdict.category in addons.GOOD_CATEGORIES else "neutral")
        details = ", ".join([*verdict.classifications, *verdict.malware_names])
        confidence = f", confidence {verdict.confidence}%" if verdict.confidence is not None else ""
        reasons.append(ScoreReason(
            f"Sandbox {verdict.sandbox}", f"{verdict.category}" + (f" ({details})" if details else "") + confidence,
            leaning,
        ))
    disagreement = addons.verdict_disagreement(attrs, verdicts)
    if disagreement:
        reasons.append(ScoreReason("Disagreement", disagreement))
    return reasons


def _severity(severity: Any) -> list[ScoreReason]:
    if not isinstance(severity, Mapping) or not isinstance(severity.get("threat_severity_level"), str):
        return []
    level = severity["threat_severity_level"]
    description = severity.get("level_description")
    text = level.removeprefix("SEVERITY_").lower()
    if isinstance(description, str):
        text += f": {addons.clip(description, 200)}"
    return [ScoreReason("Threat severity", text, SEVERITY_LEANING.get(level, "neutral"))]
