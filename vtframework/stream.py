"""What stream features (livehunt) get to handle OpenCTI live-stream events."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from vtframework.errors import InputError
from vtframework.records import StreamEvent

STREAM_EVENT_TYPES = ("create", "update", "delete", "merge")


@dataclass
class StreamContext:
    """Handed to ``vtf_stream_event`` with every event.

    ``client`` is the VirusTotal client of the preset's key, ``state`` the
    shared state (SQLite or Redis: ``kv_get``/``kv_set``/``kv_delete``/
    ``kv_items``), ``opencti`` pycti's API client when connected to OpenCTI
    (``None`` otherwise), ``log`` a logger.
    """

    client: Any
    state: Any
    settings: Any
    log: logging.Logger
    opencti: Any = None


def parse_event(event_type: str, event_id: str, data: str | bytes) -> StreamEvent:
    """A :class:`StreamEvent` from the SSE fields; ``InputError`` when it does not parse."""
    try:
        payload = json.loads(data)
    except (TypeError, ValueError) as exc:
        raise InputError(f"stream event {event_id}: data is not JSON ({exc})") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
        raise InputError(f"stream event {event_id}: no STIX object in its data")
    return StreamEvent(
        type=event_type,
        id=str(event_id),
        data=payload["data"],
        context=payload.get("context") if isinstance(payload.get("context"), dict) else {},
        message=str(payload.get("message") or ""),
    )
