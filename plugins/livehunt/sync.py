"""``livehunt sync``: compare OpenCTI's YARA indicators with our rulesets in VirusTotal, then fix.

:func:`compare` is pure (indicator STIX dicts and VirusTotal ruleset objects
in, drift out); :func:`apply` makes VirusTotal and the state match;
:func:`fetch_indicators` is the thin OpenCTI side.

Only rulesets carrying our marker are ever changed or deleted, with one
exception made for upgrades: a ruleset the original connector made (no marker,
same name as the indicator and the very same rules) is adopted rather than
duplicated.
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from vtframework import EgressRefused
from vtframework.errors import InputError, VTError

from vtframework_plugins.livehunt.handler import NS, egress_refusal, share_with_owners, state_entry
from vtframework_plugins.livehunt.indicator import YaraIndicator, is_yara_indicator, parse_indicator
from vtframework_plugins.livehunt.ruleset import desired_attributes, differences, indicator_of
from vtframework_plugins.livehunt.vtapi import HuntingRulesets, ruleset_order

#: Drift kinds, in the order they are shown and fixed.
KINDS = ("missing", "legacy", "differs", "duplicate", "orphaned")


@dataclass(frozen=True)
class Drift:
    """One difference between OpenCTI and VirusTotal and what fixes it.

    ``missing``: a hunted indicator has no ruleset (fix: create ``changes``);
    ``legacy``: the original connector's ruleset for it (fix: patch ``changes``, adding our marker);
    ``differs``: its ruleset says something else (fix: patch ``changes``);
    ``duplicate``: a second ruleset for one indicator (fix: delete);
    ``orphaned``: a ruleset whose indicator is gone, not hunted or too restricted (fix: delete).
    """

    kind: str
    indicator_id: str
    ruleset_id: str | None
    detail: str
    changes: Mapping[str, Any] = field(default_factory=dict)
    #: The ruleset's full attributes once fixed (what the state records).
    wanted: Mapping[str, Any] = field(default_factory=dict)
    #: What a fix sending the rule is about (the indicator and its markings), for the client's egress check.
    marked: Any = None


@dataclass
class Comparison:
    drifts: list[Drift]
    #: Indicator id -> the VirusTotal ruleset that is already right.
    in_sync: dict[str, dict[str, Any]]


def compare(
    indicators: Iterable[Mapping[str, Any]], rulesets: Iterable[Mapping[str, Any]], settings: Mapping[str, Any]
) -> Comparison:
    known: dict[str, YaraIndicator] = {}
    for data in indicators:
        if is_yara_indicator(data):
            try:
                indicator = parse_indicator(data)
            except InputError:
                continue
            known[indicator.id] = indicator
    marked: dict[str, list[dict[str, Any]]] = defaultdict(list)
    unmarked: list[dict[str, Any]] = []
    for ruleset in rulesets:
        owner = indicator_of((ruleset.get("attributes") or {}).get("rules"))
        (marked[owner] if owner else unmarked).append(dict(ruleset))

    disable = settings["virustotal_livehunt.on_detection_false"] == "disable"
    drifts: list[Drift] = []
    in_sync: dict[str, dict[str, Any]] = {}
    for indicator_id, found in marked.items():
        keep, *extras = sorted(found, key=ruleset_order)
        for extra in extras:
            why = f"second ruleset for the indicator (keeping {keep['id']})"
            drifts.append(Drift("duplicate", indicator_id, extra["id"], why))
        indicator = known.get(indicator_id)
        attributes = keep.get("attributes") or {}
        if indicator is None:
            why = "no such YARA indicator in OpenCTI"
        elif egress_refusal(indicator, settings):
            why = f"the indicator is {indicator.tlp}, above VIRUSTOTAL_MAX_TLP={settings['virustotal.max_tlp']}"
        elif not indicator.hunted and not disable:
            why = "the indicator is revoked" if indicator.revoked else "detection is off"
        else:
            why = ""
        if why:
            drifts.append(Drift("orphaned", indicator_id, keep["id"], why))
        elif not indicator.hunted:
            if attributes.get("enabled"):
                drifts.append(Drift("differs", indicator_id, keep["id"], "enabled while detection is off",
                                    {"enabled": False}, {**attributes, "enabled": False}))
            else:
                in_sync[indicator_id] = keep
        else:
            wanted = desired_attributes(indicator, settings)
            changes = differences(attributes, wanted)
            if changes:
                why = f"{', '.join(sorted(changes))} differ"
                drifts.append(Drift("differs", indicator_id, keep["id"], why, changes, wanted, indicator.marked))
            else:
                in_sync[indicator_id] = keep

    for indicator in known.values():
        if indicator.id in marked or not indicator.hunted or egress_refusal(indicator, settings):
            continue
        wanted = desired_attributes(indicator, settings)
        legacy = _legacy_ruleset(indicator, unmarked)
        if legacy is not None:
            unmarked.remove(legacy)
            changes = differences(legacy.get("attributes") or {}, wanted)
            why = "made by the original connector: adopt it"
            drifts.append(Drift("legacy", indicator.id, legacy["id"], why, changes, wanted, indicator.marked))
        else:
            why = f'no ruleset for "{indicator.name}"'
            drifts.append(Drift("missing", indicator.id, None, why, wanted, wanted, indicator.marked))
    drifts.sort(key=lambda d: (KINDS.index(d.kind), d.indicator_id, d.ruleset_id or ""))
    return Comparison(drifts, in_sync)


def _legacy_ruleset(indicator: YaraIndicator, unmarked: list[dict[str, Any]]) -> dict[str, Any] | None:
    for ruleset in sorted(unmarked, key=ruleset_order):
        attributes = ruleset.get("attributes") or {}
        same_rules = str(attributes.get("rules", "")).strip() == indicator.pattern.strip()
        if same_rules and attributes.get("name") == indicator.name:
            return ruleset
    return None


@dataclass(frozen=True)
class Outcome:
    drift: Drift
    error: str | None = None


def apply(
    comparison: Comparison,
    api: HuntingRulesets,
    state: Any,
    settings: Mapping[str, Any],
    log: logging.Logger | None = None,
) -> list[Outcome]:
    """Fix every drift (one failure does not stop the others) and leave the state matching VirusTotal."""
    log = log or logging.getLogger("vtframework.livehunt")
    outcomes = []
    recorded = state.kv_items(NS)
    kept: dict[str, dict[str, Any]] = {}
    for indicator_id, ruleset in comparison.in_sync.items():
        kept[indicator_id] = state_entry(ruleset["id"], ruleset.get("attributes") or {}, editors=[])
    for drift in comparison.drifts:
        subject = f"Livehunt ruleset of {drift.indicator_id}"
        try:
            # A fix that sends the rule is about the indicator: the client checks it against its markings.
            with api.client.scope(drift.marked) if drift.marked is not None else contextlib.nullcontext():
                _fix(drift, api, kept, subject)
        except (VTError, EgressRefused) as err:
            log.warning("%s %s: %s", drift.kind, drift.indicator_id, err)
            outcomes.append(Outcome(drift, getattr(err, "vt_message", "") or str(err)))
            if drift.kind in ("legacy", "differs") and drift.indicator_id in recorded:
                kept[drift.indicator_id] = dict(recorded[drift.indicator_id])
            continue
        outcomes.append(Outcome(drift))
    for indicator_id, entry in kept.items():
        before = recorded.get(indicator_id) or {}
        if before.get("ruleset_id") == entry["ruleset_id"]:
            entry["editors"] = before.get("editors") or []
            entry["version"] = before.get("version") or ""
        if entry["enabled"]:
            share_with_owners(api, entry, settings, f"Livehunt ruleset of {indicator_id}", log)
        if entry != before:
            state.kv_set(NS, indicator_id, entry)
    for indicator_id in recorded.keys() - kept.keys():
        state.kv_delete(NS, indicator_id)
    return outcomes


def _fix(drift: Drift, api: HuntingRulesets, kept: dict[str, dict[str, Any]], subject: str) -> None:
    if drift.kind == "missing":
        created = api.create(drift.changes, subject=subject)
        kept[drift.indicator_id] = state_entry(created["id"], drift.wanted, editors=[])
    elif drift.kind in ("legacy", "differs"):
        if drift.changes:
            api.patch(drift.ruleset_id, drift.changes, subject=subject)
        kept[drift.indicator_id] = state_entry(drift.ruleset_id, drift.wanted, editors=[])
    else:
        api.delete(drift.ruleset_id, subject=subject)


# -- OpenCTI -----------------------------------------------------------------------
#: What the listing asks OpenCTI for: just enough to build the ruleset and check the TLP.
INDICATOR_FIELDS = """
    standard_id
    name
    pattern
    pattern_type
    revoked
    x_opencti_detection
    objectMarking { standard_id definition_type definition }
"""
YARA_FILTER = {
    "mode": "and",
    "filters": [{"key": "pattern_type", "values": ["yara"], "operator": "eq", "mode": "or"}],
    "filterGroups": [],
}


def fetch_indicators(opencti: Any) -> list[dict[str, Any]]:
    """Every YARA indicator in OpenCTI (detection on or off), as STIX-shaped dicts, all pages."""
    nodes = opencti.indicator.list(filters=YARA_FILTER, customAttributes=INDICATOR_FIELDS, getAll=True)
    return [_stix(node) for node in nodes or []]


def _stix(node: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": "indicator",
        "id": node.get("standard_id"),
        "name": node.get("name"),
        "pattern": node.get("pattern"),
        "pattern_type": node.get("pattern_type"),
        "revoked": node.get("revoked") is True,
        "x_opencti_detection": node.get("x_opencti_detection") is True,
        "object_marking_refs": [m["standard_id"] for m in node.get("objectMarking") or [] if m.get("standard_id")],
        # What OpenCTI says of each marking: a custom one is then named (and mappable) by its definition.
        "objectMarking": [dict(m) for m in node.get("objectMarking") or [] if isinstance(m, dict)],
    }
