"""``vtframework run livehunt``: the OpenCTI stream connector and the events it hands to plugins."""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Callable

from vtframework.context import StreamContext
from vtframework.errors import InputError
from vtframework.host.app import App
from vtframework.host.services import open_app_state, open_client
from vtframework.opencti.helper import FATAL, TRANSIENT, failure_reason, start_helper
from vtframework.opencti.metrics import Metrics
from vtframework.policy.egress import Marked
from vtframework.records import StreamEvent

STREAM_EVENT_TYPES = ("create", "update", "delete", "merge")


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


def _marked(event: StreamEvent) -> Marked:
    refs = event.data.get("object_marking_refs")
    return Marked.of(f"{event.data.get('type')} {event.data.get('id')}", refs if isinstance(refs, list) else [])


class StreamConnector:
    """``vtframework run livehunt``: an OpenCTI stream connector on ``helper.listen_stream``.

    Each event goes to every plugin's ``vtf_stream_event``. One event never
    kills the stream: a transient failure (VirusTotal unreachable, quota) is
    tried again after short pauses, then parked in the shared state and
    retried with later events; any other failure is logged with the
    object's id and skipped. Only a configuration failure (the key is
    rejected) stops the connector, so the stream position does not move past
    events nobody could handle.
    """

    #: Pauses, in seconds, before an event that failed transiently is tried again.
    #: Kept short: pycti's watchdog stops a stream that sees no event for 45 s.
    RETRY_PAUSES = (1.0, 4.0, 10.0)
    #: Seconds a parked event waits before it is tried again.
    PARKED_RETRY_AFTER = 60.0
    PARKED = "stream_retry"

    def __init__(self, app: App, helper: Any = None, sleep: Callable[[float], None] | None = None) -> None:
        self.app = app
        app.settings.require("connector.live_stream_id", why="to run a stream connector")
        self.helper = helper or start_helper(app)
        self.state = open_app_state(app)
        self.client = open_client(app, self.state)
        self.metrics = Metrics(bool(app.settings["connector.expose_metrics"]))
        self.sleep = sleep or time.sleep
        self.context = StreamContext(client=self.client, state=self.state, settings=app.settings,
                                     log=logging.getLogger("vtframework.stream"), opencti=self.helper.api)

    def start(self) -> None:
        self.helper.connector_logger.info(
            "vtframework stream connector started", {"plugins": ",".join(self.app.host.loaded)}
        )
        self.helper.listen_stream(message_callback=self.process).join()

    def process(self, msg: Any) -> None:
        if msg.event not in STREAM_EVENT_TYPES:
            return
        try:
            event = parse_event(msg.event, msg.id, msg.data)
        except InputError as exc:
            self.helper.connector_logger.warning(str(exc))
            return
        if self._handle(event, self.RETRY_PAUSES):
            self.state.kv_delete(self.PARKED, str(event.data.get("id")))  # the newest event wins
        else:
            self._park(event)
        self._retry_parked()
        self.metrics.client_stats(self.client.stats)

    def _handle(self, event: Any, pauses: tuple[float, ...]) -> bool:
        """True when the event is done with (handled, or failed for good)."""
        for pause in (*pauses, None):
            # Whatever a plugin asks VirusTotal while handling the event is checked against the object's markings.
            with self.client.scope(_marked(event)):
                results, failures = self.app.host.call_each(
                    "vtf_stream_event", event=event, context=self.context, settings=self.app.settings
                )
            for plugin, message in results:
                self.helper.connector_logger.info(str(message), {"plugin": plugin, "event_id": event.id})
            for failure in failures:
                if isinstance(failure.error, FATAL):
                    self.helper.connector_logger.error(
                        f"stopping: {failure.error}", {"plugin": failure.plugin, "event_id": event.id}
                    )
                    raise failure.error
            transient = [f for f in failures if isinstance(f.error, TRANSIENT)]
            for failure in failures:
                if failure not in transient:
                    self.metrics.failure(failure_reason(str(failure.error)))
                    self.helper.connector_logger.error(
                        f"{event.type} event of {event.data.get('id')} not handled: {failure.error}",
                        {"plugin": failure.plugin, "event_id": event.id},
                    )
            if not transient:
                return True
            if pause is None:
                self.helper.connector_logger.warning(
                    f"{event.type} event of {event.data.get('id')}: {transient[0].error}; parked, to be tried again"
                )
                return False
            self.sleep(pause)
        return False

    def _park(self, event: Any) -> None:
        self.state.kv_set(self.PARKED, str(event.data.get("id")), {
            "type": event.type, "id": event.id, "data": dict(event.data), "context": dict(event.context),
            "parked_at": time.time(),
        })

    def _retry_parked(self) -> None:
        now = time.time()
        for object_id, parked in self.state.kv_items(self.PARKED).items():
            if now - parked.get("parked_at", 0) < self.PARKED_RETRY_AFTER:
                continue
            event = StreamEvent(type=parked["type"], id=parked["id"], data=parked["data"], context=parked["context"])
            if self._handle(event, ()):
                self.state.kv_delete(self.PARKED, object_id)
            else:
                self._park(event)
