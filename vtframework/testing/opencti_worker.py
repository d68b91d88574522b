"""What OpenCTI's worker makes of the bundles a connector pushes, where it matters for imports.

One object per id; a Sighting arriving again with a wider first/last seen is
widened and its count added (the platform's upsert rule for sightings), while
a Sighting arriving again unchanged changes nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable


def ingest(bundles: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What the platform holds after importing ``bundles`` in order, by STIX id (see the module docstring)."""
    held: dict[str, dict[str, Any]] = {}
    for bundle in bundles:
        for obj in bundle.get("objects", []):
            current = held.get(obj["id"])
            if current is None:
                held[obj["id"]] = dict(obj)
            elif obj.get("type") == "sighting":
                first = min(current["first_seen"], obj["first_seen"], key=_moment)
                last = max(current["last_seen"], obj["last_seen"], key=_moment)
                if (first, last) != (current["first_seen"], current["last_seen"]):
                    current.update(first_seen=first, last_seen=last, count=current["count"] + obj.get("count", 1))
            else:
                held[obj["id"]] = {**current, **obj}
    return held


def _moment(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
