"""Crowdsourced context entries as a note and as reasons for the score."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vtframework import ScoreReason, addons, blocks

#: Severities that make an entry argue for a malicious verdict.
BAD_SEVERITIES = ("critical", "high", "medium")


@dataclass(frozen=True)
class Entry:
    title: str
    source: str
    severity: str
    details: str
    timestamp: Any


def context_entries(context: Any, report: Mapping[str, Any], limit: int) -> list[Entry]:
    """The entries, newest first, at most ``limit``; a malformed one costs itself (warned when ``context``)."""
    raw = blocks.attributes(report).get("crowdsourced_context")
    if raw is None or limit <= 0:
        return []
    if not isinstance(raw, list):
        if context is not None:
            context.warn("crowdsourced context skipped: crowdsourced_context is not a list")
        return []
    entries = []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping) or not any(isinstance(item.get(k), str) for k in ("title", "details")):
            if context is not None:
                context.warn(f"crowdsourced context entry #{index + 1} skipped: no title or details")
            continue
        entries.append(Entry(
            title=addons.clip(item.get("title") or "", 300),
            source=addons.clip(item.get("source") or "", 120),
            severity=(item.get("severity") if isinstance(item.get("severity"), str) else "").strip().lower(),
            details=addons.clip(item.get("details") or "", 1000),
            timestamp=item.get("timestamp"),
        ))
    entries.sort(key=lambda entry: -(blocks.epoch(entry.timestamp) or blocks.epoch(1)).timestamp())
    if len(entries) > limit and context is not None:
        entries = addons.capped(
            context, entries, "virustotal.crowdsourced_context_max_entries", "crowdsourced context entries"
        )
    return entries[:limit]


def context_note(context: Any, entries: list[Entry]) -> list[Any]:
    if not entries:
        return []
    rows = [(blocks.date_text(e.timestamp), e.severity, e.source, e.title, e.details) for e in entries]
    content = blocks.table(("Date", "Severity", "Source", "Title", "Details"), rows)
    return [context.factory.note("VirusTotal Crowdsourced Context", content, [context.target_id])]


def score_reasons(entries: list[Entry]) -> list[ScoreReason]:
    return [
        ScoreReason(
            "Crowdsourced context",
            f"{entry.source or 'a feed'} ({entry.severity or 'no severity'}, "
            f"{blocks.date_text(entry.timestamp)}): {entry.details or entry.title}",
            "malicious" if entry.severity in BAD_SEVERITIES else "neutral",
        )
        for entry in entries
    ]
