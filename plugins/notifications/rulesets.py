"""Which Livehunt ruleset a notification came from: one vtframework made for an OpenCTI YARA indicator, or another.

A ruleset the livehunt plugin made names its indicator twice: in the shared
state (the livehunt plugin's map, when this connector shares its state
directory or Redis) and in the marker line that starts its rules in
VirusTotal. The map costs nothing; the marker costs one ruleset read (the read also
gives the rules of a ruleset that is not vtframework's).
Rulesets without either are someone else's: their matched rule becomes a YARA
Indicator, cut out with its imports and the rules it depends on.

Each ruleset is looked at once per run, however many notifications it sent.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vtframework import blocks, extract_yara_rule, marked_indicator
from vtframework.errors import BadRequestError, ForbiddenError, MalformedResponse, NotFoundError

from vtframework_plugins.notifications.source import PRIVILEGE

#: The livehunt plugin's namespace in the shared state: indicator id -> {"ruleset_id": ...}.
LIVEHUNT_NS = "livehunt"


@dataclass
class Ruleset:
    id: str
    #: The OpenCTI YARA indicator this ruleset hunts (vtframework's rulesets only).
    indicator_id: str | None = None
    name: str | None = None
    rules: str | None = None
    created: int | None = None
    #: Why the ruleset could not be read, when it could not.
    problem: str | None = None


class Rulesets:
    """The rulesets met during one run."""

    def __init__(self, client: Any, state: Any, opencti: Any = None, log: logging.Logger | None = None) -> None:
        self.client = client
        self.opencti = opencti
        self.log = log or logging.getLogger("vtframework.notifications")
        self._seen: dict[str, Ruleset] = {}
        self._rules: dict[tuple[str, str], tuple[str | None, str | None, str | None]] = {}
        self._indicators: dict[str, bool] = {}
        self._mapped = self._livehunt_map(state)

    @staticmethod
    def _livehunt_map(state: Any) -> dict[str, str]:
        mapped = {}
        for indicator_id, entry in state.kv_items(LIVEHUNT_NS).items():
            if isinstance(entry, Mapping) and entry.get("ruleset_id"):
                mapped[str(entry["ruleset_id"])] = indicator_id
        return mapped

    def get(self, ruleset_id: str) -> Ruleset:
        """What is known of a ruleset: from the livehunt map when it is there, else from VirusTotal (once a run)."""
        known = self._seen.get(ruleset_id)
        if known is None:
            known = Ruleset(ruleset_id, indicator_id=self._mapped.get(ruleset_id))
            if known.indicator_id is None:
                self._read(known)
            self._seen[ruleset_id] = known
        return known

    def _read(self, ruleset: Ruleset) -> None:
        try:
            answer = self.client.get(f"/intelligence/hunting_rulesets/{ruleset.id}",
                                     subject=f"Livehunt ruleset {ruleset.id}", privilege=PRIVILEGE)
        except (NotFoundError, ForbiddenError) as exc:
            ruleset.problem = f"Livehunt ruleset {ruleset.id} cannot be read (deleted, or not shared with this key): {exc}"
            return
        except (BadRequestError, MalformedResponse) as exc:
            # What VirusTotal says of this one ruleset; an outage (5xx, quota, timeout) still stops the run.
            ruleset.problem = f"Livehunt ruleset {ruleset.id} cannot be read: {exc}"
            return
        attrs = blocks.attributes(answer)
        rules = attrs.get("rules")
        ruleset.rules = rules if isinstance(rules, str) else None
        ruleset.name = attrs.get("name") if isinstance(attrs.get("name"), str) else None
        created = attrs.get("creation_date")
        ruleset.created = created if isinstance(created, int) and not isinstance(created, bool) else None
        ruleset.indicator_id = ruleset.indicator_id or marked_indicator(ruleset.rules)

    def rule(self, ruleset: Ruleset, rule_name: str) -> tuple[str | None, str | None, str | None]:
        """:func:`rule_text`, cut once per run."""
        key = (ruleset.id, rule_name)
        if key not in self._rules:
            self._rules[key] = rule_text(ruleset, rule_name)
        return self._rules[key]

    def indicator_exists(self, indicator_id: str) -> bool:
        """Does OpenCTI still hold the indicator (a Sighting of a deleted one would be refused)?"""
        if self.opencti is None:
            return True
        if indicator_id not in self._indicators:
            try:
                found = self.opencti.indicator.read(id=indicator_id)
            except Exception as exc:  # pycti raises bare Exceptions for GraphQL errors
                self.log.warning("could not check indicator %s in OpenCTI (%s); assuming it exists", indicator_id, exc)
                found = True
            self._indicators[indicator_id] = bool(found)
        return self._indicators[indicator_id]


def rule_text(ruleset: Ruleset, rule_name: str) -> tuple[str | None, str | None, str | None]:
    """``(the rule's source, its description meta, None)``, or ``(None, None, why not)``."""
    if ruleset.problem:
        return None, None, ruleset.problem
    if not ruleset.rules:
        return None, None, f"Livehunt ruleset {ruleset.id} has no rules text"
    try:
        text = extract_yara_rule(ruleset.rules, rule_name)
    except Exception as exc:  # plyara raises several parser error types
        return None, None, f"Livehunt ruleset {ruleset.id} does not parse ({exc})"
    if text is None:
        return None, None, f"rule {rule_name} is not in Livehunt ruleset {ruleset.id}"
    own = re.search(rf"\brule\s+{re.escape(rule_name)}\b", text)
    found = _DESCRIPTION.search(text, own.end() if own else 0)
    return text, (found.group(1) if found else None), None


_DESCRIPTION = re.compile(r'^\s*description\s*=\s*"((?:[^"\\]|\\.)*)"', re.MULTILINE)
