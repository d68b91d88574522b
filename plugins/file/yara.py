"""Crowdsourced YARA: the rules that matched a file, each as its own Indicator.

VirusTotal names the matching rule and its ruleset; the ruleset text is
fetched once per ruleset (and cached by the client). Each matching rule is
cut out of the ruleset with its exact source text, the ruleset's imports and
the rules it depends on, so the indicator compiles on its own.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from vtframework import blocks, extract_yara_rule
from vtframework.errors import VTError


def _group_by_ruleset(hits: Iterable[Any]) -> "OrderedDict[str, list[Mapping[str, Any]]]":
    groups: OrderedDict[str, list[Mapping[str, Any]]] = OrderedDict()
    for hit in hits:
        if isinstance(hit, Mapping) and hit.get("ruleset_id") and hit.get("rule_name"):
            groups.setdefault(str(hit["ruleset_id"]), []).append(hit)
    return groups


def _description(hit: Mapping[str, Any]) -> str:
    fields = {
        "description": hit.get("description") or "No description provided",
        "author": hit.get("author") or "No author provided",
        "source": hit.get("source") or "No source provided",
        "ruleset_id": hit.get("ruleset_id"),
        "ruleset_name": hit.get("ruleset_name") or "No ruleset name provided",
    }
    return "```\n" + json.dumps(fields, indent=2) + "\n```"


def yara_objects(context: Any, attrs: Mapping[str, Any], score: int | None) -> list[Any]:
    """YARA indicators ``related-to`` the enriched object.

    A ruleset that cannot be fetched or parsed costs its rules (a warning in
    the result), never the whole enrichment.
    """
    hits = blocks.bounded(context, attrs.get("crowdsourced_yara_results"), "crowdsourced YARA results")
    objects: list[Any] = []
    for ruleset_id, ruleset_hits in _group_by_ruleset(hits).items():
        names = ", ".join(str(hit["rule_name"]) for hit in ruleset_hits)
        try:
            ruleset = context.client.get(f"/yara_rulesets/{ruleset_id}", subject=f"YARA ruleset {ruleset_id}")
        except VTError as exc:
            context.warn(f"YARA rule(s) {names} skipped: {exc}")
            continue
        text = blocks.attributes(ruleset).get("rules")
        for hit in ruleset_hits:
            rule = _rule_text(context, text, str(hit["rule_name"]), ruleset_id)
            if rule is None:
                continue
            indicator = context.factory.indicator(
                pattern=rule,
                pattern_type="yara",
                name=str(hit["rule_name"]),
                description=_description(hit),
                score=score,
                main_observable_type="StixFile",
            )
            objects += [indicator, context.factory.relationship("related-to", context.target_id, indicator.id)]
    return objects


def _rule_text(context: Any, ruleset_text: Any, rule_name: str, ruleset_id: str) -> str | None:
    if not isinstance(ruleset_text, str) or not ruleset_text.strip():
        context.warn(f"YARA rule {rule_name} skipped: ruleset {ruleset_id} has no rules text")
        return None
    try:
        rule = extract_yara_rule(ruleset_text, rule_name)
    except Exception as exc:  # plyara raises several parser error types
        context.warn(f"YARA rule {rule_name} skipped: ruleset {ruleset_id} does not parse ({exc})")
        return None
    if rule is None:
        context.warn(f"YARA rule {rule_name} skipped: not found in ruleset {ruleset_id}")
    return rule
