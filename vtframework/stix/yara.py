"""YARA: single rules cut out of rulesets, and the marker of the Livehunt rulesets vtframework makes.

A YARA Indicator must compile on its own, so a rule is cut out of its
ruleset with its exact source text, the ruleset's imports and the rules its
condition names.

Every Livehunt ruleset vtframework creates for an OpenCTI YARA indicator
starts with one comment line naming that indicator::

    // vtframework: indicator--8e2e2d2b-17d4-4f0f-8a3c-5b1f8fa0bd3e vtf8e2e2d2b17d44f0f8a3c5b1f8fa0bd3e

The last word is one alphanumeric token derived from the id, so VirusTotal's
``rules:<token>`` listing filter (whole words only) finds the ruleset. The
marker is how anything (the livehunt plugin after a lost state, the Livehunt
notifications importer) tells which indicator a ruleset hunts, from
VirusTotal alone.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections import OrderedDict
from typing import Any

_IMPORT = re.compile(r'^\s*import\s+"[^"]+"\s*$', re.MULTILINE)

RULESET_MARKER_PREFIX = "// vtframework: "
_MARKER = re.compile(r"^// vtframework: (\S+)(?: (\S+))?[ \t]*$")


def extract_yara_rule(ruleset_text: str, rule_name: str) -> str | None:
    """The source of ``rule_name`` with the imports and rules it needs, or ``None`` when absent.

    :raises Exception: plyara's own error types when the ruleset does not parse.
    """
    import plyara

    parsed = plyara.Plyara().parse_string(ruleset_text)
    by_name = {rule["rule_name"]: rule for rule in parsed}
    if rule_name not in by_name:
        return None
    lines = ruleset_text.splitlines()
    needed: list[str] = []

    def visit(name: str) -> None:
        if name in needed:
            return
        for term in by_name[name].get("condition_terms", []):
            if term in by_name and term != name:
                visit(term)
        needed.append(name)

    visit(rule_name)
    imports = list(OrderedDict.fromkeys(match.strip() for match in _IMPORT.findall(ruleset_text)))
    sources = ["\n".join(lines[by_name[name]["start_line"] - 1 : by_name[name]["stop_line"]]) for name in needed]
    return "\n\n".join(part for part in ("\n".join(imports), *sources) if part).strip() + "\n"


def ruleset_marker_token(indicator_id: str) -> str:
    """One word derived from the indicator id, for VirusTotal's ``rules:`` filter."""
    try:
        return "vtf" + uuid.UUID(indicator_id.split("--", 1)[-1]).hex
    except ValueError:
        return "vtf" + hashlib.sha256(indicator_id.encode()).hexdigest()[:32]


def ruleset_marker(indicator_id: str) -> str:
    """The marker line naming ``indicator_id`` (without a newline)."""
    return f"{RULESET_MARKER_PREFIX}{indicator_id} {ruleset_marker_token(indicator_id)}"


def is_ruleset_marker(line: str) -> bool:
    """Is ``line`` a marker line (of any indicator)?"""
    return bool(_MARKER.match(line.strip()))


def marked_indicator(rules: Any) -> str | None:
    """The indicator id a ruleset's rules text is marked with, or ``None`` for a ruleset not made by vtframework.

    Only the first line counts, and its token must be the one derived from the
    id, so a rule that merely quotes a marker further down is not taken.
    """
    if not isinstance(rules, str):
        return None
    first = rules.lstrip().split("\n", 1)[0].strip()
    found = _MARKER.match(first)
    if not found or (found.group(2) and found.group(2) != ruleset_marker_token(found.group(1))):
        return None
    return found.group(1)
