"""Sightings of the hunting indicators: one per indicator and matched entity, counted per sweep.

OpenCTI keeps one Sighting per id and, when a Sighting arrives again with a
wider first/last seen, widens it and *adds* its count. So each sweep sends,
per (indicator, matched entity), one Sighting covering the notifications of
that sweep: its window lies entirely after everything sent before (sweeps
follow each other in time), so OpenCTI's count becomes the number of
notifications, and re-sending the same Sighting after a crash widens nothing
and counts nothing twice.

The notifications of the sweep in progress are remembered in the shared state
(one small entry each, keyed by notification id, so a notification handled
twice counts once) until the sweep ends, under the connector's id: connectors
sharing one Redis never see each other's.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any, Iterable

from vtframework import AUTHOR_ID, blocks

NS = "notifications.sightings"


def namespace(connector_id: str | None) -> str:
    return f"{NS}:{connector_id or 'default'}"
#: Sightings per bundle when a sweep ends.
BATCH = 200


def record(state: Any, ns: str, sweep_id: str, notification: Any, indicator_id: str, subject: str,
           label: str) -> None:
    """Remember that ``notification`` sighted ``indicator_id`` (kept until the sweep ends)."""
    state.kv_set(ns, f"{sweep_id}|{notification.id}", {
        "indicator": indicator_id, "subject": subject, "label": label, "date": notification.date,
        "rule": notification.rule_name, "ruleset": notification.ruleset_name or notification.ruleset_id,
    })


def pending(state: Any, ns: str, sweep_id: str) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The sweep's notifications, by (indicator, subject)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for key, entry in state.kv_items(ns).items():
        if key.startswith(f"{sweep_id}|") and isinstance(entry, dict):
            groups[(entry["indicator"], entry["subject"])].append(entry)
    return groups


def sightings(factory: Any, groups: dict[tuple[str, str], list[dict[str, Any]]]) -> list[Any]:
    """One Sighting per (indicator, subject), where VirusTotal saw it, over this sweep's notifications."""
    made = []
    for (indicator_id, subject), entries in sorted(groups.items()):
        dates = sorted(int(e["date"]) for e in entries)
        first, last = (dt.datetime.fromtimestamp(d, dt.timezone.utc) for d in (dates[0], dates[-1]))
        rules = sorted({str(e.get("rule")) for e in entries if e.get("rule")})
        rulesets = sorted({str(e.get("ruleset")) for e in entries if e.get("ruleset")})
        description = (
            f"VirusTotal Livehunt: rule {', '.join(rules) or 'unknown'} of ruleset {', '.join(rulesets) or 'unknown'} "
            f"matched {entries[0].get('label') or subject} {len(entries)} time(s) between "
            f"{blocks.date_text(dates[0])} and {blocks.date_text(dates[-1])}."
        )
        made.append(factory.sighting(
            sighting_of=indicator_id, where_sighted=[AUTHOR_ID], first_seen=first, last_seen=last,
            count=len(entries), description=description, subject=subject,
        ))
    return made


def forget(state: Any, ns: str, keep_sweep: str | None = None) -> int:
    """Drop what ended sweeps (and sweeps abandoned by a state reset) left behind; keep ``keep_sweep``'s."""
    dropped = 0
    for key in state.kv_items(ns):
        if keep_sweep is None or not key.startswith(f"{keep_sweep}|"):
            state.kv_delete(ns, key)
            dropped += 1
    return dropped


def batches(items: list[Any], size: int = BATCH) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
