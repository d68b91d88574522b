"""A Sigma rule in YAML, rebuilt from VirusTotal's ``sigma_rule`` object.

VirusTotal does not hand out the rule's YAML: ``GET /sigma_rules/{id}`` gives
its parts (title, log source, tags…) and its detection pre-parsed, each
selection a JSON document inside a string. This module puts them back together
in Sigma's field order, so the Indicator's pattern is a rule a Sigma tool reads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import yaml

#: Longest rule kept (a bigger one is refused, not cut: a cut rule would not parse).
MAX_RULE_CHARS = 64_000
_TECHNIQUE = re.compile(r"^attack\.(t\d{4}(?:\.\d{3})?)$", re.IGNORECASE)


class SigmaRuleError(ValueError):
    """The object cannot make a Sigma rule; the message says which field is wrong."""


def _string(attrs: Mapping[str, Any], name: str) -> str | None:
    value = attrs.get(name)
    return value.strip() if isinstance(value, str) and value.strip() else None


def _strings(attrs: Mapping[str, Any], name: str) -> list[str]:
    value = attrs.get(name)
    if not isinstance(value, list):
        return []
    return [item.strip() for item in value if isinstance(item, str) and item.strip()]


def _detection(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise SigmaRuleError("detection is missing")
    condition = raw.get("condition")
    if isinstance(condition, list) and condition and all(isinstance(c, str) for c in condition):
        condition = list(condition)
    elif not isinstance(condition, str) or not condition.strip():
        raise SigmaRuleError("detection has no condition")
    details = raw.get("details")
    if not isinstance(details, Mapping) or not details:
        raise SigmaRuleError("detection has no selections")
    detection: dict[str, Any] = {}
    for name, selection in details.items():
        if name == "condition":
            continue
        if isinstance(selection, str):
            try:
                selection = json.loads(selection)
            except ValueError as exc:
                raise SigmaRuleError(f"selection {str(name)[:60]!r} is not JSON ({str(exc)[:100]})") from None
        if not isinstance(selection, (Mapping, list, str)):
            raise SigmaRuleError(f"selection {str(name)[:60]!r} is neither a map nor a list")
        detection[str(name)] = selection
    detection["condition"] = condition
    return detection


def sigma_yaml(rule_object: Mapping[str, Any]) -> str:
    """The Sigma YAML of a ``sigma_rule`` object (its ``{"data": …}`` envelope or the object).

    :raises SigmaRuleError: naming the missing or malformed field.
    """
    data = rule_object.get("data") if isinstance(rule_object.get("data"), Mapping) else rule_object
    attrs = data.get("attributes") if isinstance(data, Mapping) else None
    if not isinstance(attrs, Mapping):
        raise SigmaRuleError("the answer has no attributes")
    title = _string(attrs, "title")
    if title is None:
        raise SigmaRuleError("title is missing")
    doc: dict[str, Any] = {"title": title}
    for name in ("status", "description"):
        if _string(attrs, name):
            doc[name] = _string(attrs, name)
    if _strings(attrs, "references"):
        doc["references"] = _strings(attrs, "references")
    if _string(attrs, "author"):
        doc["author"] = _string(attrs, "author")
    if _strings(attrs, "tags"):
        doc["tags"] = _strings(attrs, "tags")
    source = attrs.get("log_source")
    logsource = {
        key: value.strip()
        for key, value in (source.items() if isinstance(source, Mapping) else [])
        if key in ("category", "product", "service", "definition") and isinstance(value, str) and value.strip()
    }
    if not logsource:
        raise SigmaRuleError("log_source is missing")
    doc["logsource"] = logsource
    doc["detection"] = _detection(attrs.get("detection"))
    for name, key in (("fields", "fields"), ("false_positives", "falsepositives")):
        if _strings(attrs, name):
            doc[key] = _strings(attrs, name)
    if _string(attrs, "level"):
        doc["level"] = _string(attrs, "level").lower()
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, default_flow_style=False, width=4096)
    if len(text) > MAX_RULE_CHARS:
        raise SigmaRuleError(f"the rule is {len(text)} characters long, more than {MAX_RULE_CHARS}")
    return text


def techniques(rule_object: Mapping[str, Any]) -> list[str]:
    """The ATT&CK technique ids the rule is tagged with (``attack.t1059.001`` -> ``T1059.001``)."""
    data = rule_object.get("data") if isinstance(rule_object.get("data"), Mapping) else rule_object
    attrs = data.get("attributes") if isinstance(data, Mapping) else {}
    found = []
    for tag in _strings(attrs if isinstance(attrs, Mapping) else {}, "tags"):
        match = _TECHNIQUE.match(tag)
        if match and match.group(1).upper() not in found:
            found.append(match.group(1).upper())
    return found
