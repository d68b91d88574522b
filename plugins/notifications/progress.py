"""Where the import stands in a newest-first listing, so that nothing is skipped or repeated across runs and crashes.

VirusTotal lists notifications newest first. A *sweep* reads down from the
newest notification to the *floor* (everything at or below the floor was
handled by an earlier sweep), handling each notification as it comes. The
checkpoint says how far the sweep got (``resume``: the date reached and the
ids handled at that date), so a run stopped by the per-run limit, a failure
or a crash resumes right below the last handled notification. Notifications
arriving meanwhile are newer than the sweep's ``top``; the next sweep takes
them. When a sweep reaches the floor, its top becomes the new floor.

Dates are seconds, so several notifications may share one; positions keep the
ids handled at their date, which makes "already handled" exact.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: How far back the very first run looks (the original connector's three days).
FIRST_RUN_LOOKBACK = 3 * 86400
#: Ids kept per position: more notifications than this in one second would be re-handled (idempotently).
MAX_IDS = 1000
#: The original connector's state key (unix seconds of its last run's end).
LEGACY_KEY = "latest_run_timestamp"


@dataclass
class Position:
    """A point in the listing: the notifications of ``date`` whose ids are in ``ids``, and all newer ones."""

    date: int
    ids: list[str] = field(default_factory=list)

    def covers(self, date: int, notification_id: str) -> bool:
        """Is a notification at or beyond this point, going down from the top?"""
        return date > self.date or (date == self.date and notification_id in self.ids)

    def add(self, date: int, notification_id: str) -> None:
        if date != self.date:
            self.date, self.ids = date, []
        if notification_id not in self.ids:
            self.ids = (self.ids + [notification_id])[-MAX_IDS:]

    def to_dict(self) -> dict[str, Any]:
        return {"date": self.date, "ids": list(self.ids)}

    @classmethod
    def parse(cls, value: Any) -> "Position | None":
        if not isinstance(value, Mapping) or not isinstance(value.get("date"), int):
            return None
        ids = [i for i in value.get("ids") or [] if isinstance(i, str)]
        return cls(value["date"], ids[-MAX_IDS:])


@dataclass
class Progress:
    """The plugin's checkpoint: the floor, and the sweep in progress (if any)."""

    source: str
    floor: Position
    sweep_id: str | None = None
    top: Position | None = None
    resume: Position | None = None

    @classmethod
    def load(cls, checkpoint: Mapping[str, Any], connector_state: Mapping[str, Any], source: str,
             now: int) -> "Progress":
        """The progress saved by the last run; without one, where the original connector left off, or
        three days ago. Switching source starts a new floor where the old one stood."""
        floor = Position.parse(checkpoint.get("floor"))
        if floor is None:
            legacy = connector_state.get(LEGACY_KEY)
            since = legacy if isinstance(legacy, int) and not isinstance(legacy, bool) else now - FIRST_RUN_LOOKBACK
            return cls(source, Position(since))
        progress = cls(source, floor)
        if checkpoint.get("source") != source:
            # The other listing's ids mean nothing here; its dates still say how far it got.
            progress.floor = Position(floor.date)
            return progress
        sweep = checkpoint.get("sweep")
        if isinstance(sweep, Mapping) and isinstance(sweep.get("id"), str):
            progress.sweep_id = sweep["id"]
            progress.top = Position.parse(sweep.get("top"))
            progress.resume = Position.parse(sweep.get("resume"))
        return progress

    def to_checkpoint(self) -> dict[str, Any]:
        sweep = None
        if self.sweep_id is not None:
            sweep = {"id": self.sweep_id, "top": self.top.to_dict() if self.top else None,
                     "resume": self.resume.to_dict() if self.resume else None}
        return {"version": 1, "source": self.source, "floor": self.floor.to_dict(), "sweep": sweep}

    # -- reading the listing ------------------------------------------------------------
    def begin(self) -> None:
        """Start a sweep unless one is in progress."""
        if self.sweep_id is None:
            self.sweep_id = uuid.uuid4().hex
            self.top = None
            self.resume = None

    @property
    def bounds(self) -> tuple[int | None, int | None]:
        """``(newer_than, older_than)``: what the listing must cover (both inclusive)."""
        return self.floor.date, (self.resume.date if self.resume else None)

    def below_floor(self, date: int) -> bool:
        """Is everything from here down handled already (the sweep is over)?"""
        return date < self.floor.date

    def handled_before(self, date: int, notification_id: str) -> bool:
        """Was this notification handled by an earlier sweep or earlier in this one?"""
        if date == self.floor.date and notification_id in self.floor.ids:
            return True
        return self.resume is not None and self.resume.covers(date, notification_id)

    def handled(self, date: int, notification_id: str) -> None:
        """Record one more notification handled (imported or skipped with a reason)."""
        if self.top is None:
            self.top = Position(date)
        if date == self.top.date:
            self.top.add(date, notification_id)
        if self.resume is None:
            self.resume = Position(date)
        self.resume.add(date, notification_id)

    def finish(self) -> None:
        """The sweep reached the floor: its top is the new floor."""
        if self.top is not None:
            self.floor = Position(self.top.date, list(self.top.ids))
        self.sweep_id, self.top, self.resume = None, None, None
