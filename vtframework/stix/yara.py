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
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

_IMPORT = re.compile(r'^\s*import\s+"[^"]+"\s*$', re.MULTILINE)

RULESET_MARKER_PREFIX = "// vtframework: "
_MARKER = re.compile(r"^// vtframework: (\S+)(?: (\S+))?[ \t]*$")


#: Rulesets whose parse is kept (by the SHA-256 of their text); a Livehunt or crowdsourced ruleset hits many files.
PARSED_RULESETS_MAX = 64


@dataclass(frozen=True)
class _ParsedRuleset:
    """What cutting a rule needs of a parsed ruleset: each rule's lines and the names its condition uses."""

    rules: dict[str, tuple[int, int, tuple[str, ...]]]


class _RulesetParser:
    """Parses rulesets, each text once, into a bounded LRU of :class:`_ParsedRuleset` keyed by its hash.

    Building a plyara parser (its lexer and LR tables) costs some 25 ms,
    twenty times the parse of a ruleset, and ``Plyara.clear()`` rebuilds
    them; so one parser is kept and its per-parse state reset by hand. After
    a parse that failed it is thrown away (plyara's lexer may be left
    mid-token) and the next parse builds a new one. A ruleset that does not
    parse is remembered too, so its error is not paid for again.
    """

    def __init__(self, capacity: int = PARSED_RULESETS_MAX) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._parser: Any = None
        self._parsed: OrderedDict[str, _ParsedRuleset | Exception] = OrderedDict()

    def parsed(self, ruleset_text: str) -> _ParsedRuleset:
        key = hashlib.sha256(ruleset_text.encode("utf-8", "surrogatepass")).hexdigest()
        with self._lock:
            found = self._parsed.get(key)
            if found is None:
                found = self._parse(ruleset_text)
                self._parsed[key] = found
                while len(self._parsed) > self.capacity:
                    self._parsed.popitem(last=False)
            else:
                self._parsed.move_to_end(key)
        if isinstance(found, Exception):
            raise found
        return found

    def _parse(self, ruleset_text: str) -> _ParsedRuleset | Exception:
        import plyara

        parser = self._parser if self._parser is not None else plyara.Plyara()
        self._parser = None
        _reset(parser)
        try:
            rules = parser.parse_string(ruleset_text)
        except Exception as exc:  # plyara raises several parser error types
            return exc.with_traceback(None)
        parsed = _ParsedRuleset({
            str(rule["rule_name"]): (
                int(rule["start_line"]), int(rule["stop_line"]),
                tuple(term for term in rule.get("condition_terms", []) if isinstance(term, str)),
            )
            for rule in rules
        })
        _reset(parser)
        self._parser = parser
        return parsed


def _reset(parser: Any) -> None:
    """``Plyara.clear()`` without rebuilding the lexer and the parser tables."""
    for name in ("rules", "string_modifiers", "imports", "includes", "terms", "scopes", "tags", "comments",
                 "_rule_comments", "_stringnames"):
        getattr(parser, name).clear()
    parser.current_rule = {}
    for name in ("_raw_input", "_meta_start", "_meta_end", "_strings_start", "_strings_end", "_condition_start",
                 "_condition_end"):
        setattr(parser, name, None)
    parser.lexer.lineno = 1
    parser.lexer.begin("INITIAL")


_PARSER = _RulesetParser()


def extract_yara_rule(ruleset_text: str, rule_name: str) -> str | None:
    """The source of ``rule_name`` with the imports and rules it needs, or ``None`` when absent.

    The ruleset is parsed once for all the rules cut out of it, whichever
    file or notification names them.

    :raises Exception: plyara's own error types when the ruleset does not parse.
    """
    by_name = _PARSER.parsed(ruleset_text).rules
    if rule_name not in by_name:
        return None
    lines = ruleset_text.splitlines()
    needed: list[str] = []

    def visit(name: str) -> None:
        if name in needed:
            return
        for term in by_name[name][2]:
            if term in by_name and term != name:
                visit(term)
        needed.append(name)

    visit(rule_name)
    imports = list(OrderedDict.fromkeys(match.strip() for match in _IMPORT.findall(ruleset_text)))
    sources = ["\n".join(lines[by_name[name][0] - 1 : by_name[name][1]]) for name in needed]
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
