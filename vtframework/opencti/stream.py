"""``vtframework run livehunt``: the OpenCTI stream connector and the events it hands to plugins.

pycti's listener thread reads the live stream and calls the connector for each
event. That call never talks to VirusTotal: it files the event in a queue kept
in the shared state and returns at once, so the listener keeps reading. (pycti's
watchdog ends the process when no event reaches it for 45 s, and a listener
held up by a quota wait is a silent stream.) A worker thread takes the queue in
stream order. An event that must wait, for quota or for VirusTotal to answer
again, stays in the queue, "parked", and is tried again later; the events after
it about the same object wait behind it, so an object's events are always
applied in order; a newer ``update`` of an object replaces one still waiting
(the newest state wins, never before the ``create``).

The queue is in the shared state, so a restart resumes it; pycti's stream
position may move past a queued event, never past a lost one.

pycti's SSE client gives up (and pycti ends the process) when the platform
answers an error on a reconnect, as it does while restarting (502, 503): the
client is replaced by one that reconnects with backoff.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
import time
from typing import Any, Iterator

import requests

from vtframework.context import StreamContext
from vtframework.errors import InputError, QuotaExceededError, TooManyRequestsError, VTFrameworkError, format_duration
from vtframework.host.app import App
from vtframework.host.plugins import log as host_log
from vtframework.host.services import open_app_state, open_client
from vtframework.opencti.helper import FATAL, TRANSIENT, failure_reason, start_helper
from vtframework.opencti.metrics import Metrics
from vtframework.policy.egress import Marked
from vtframework.records import StreamEvent
from vtframework.vt.quota import hold_margin

STREAM_EVENT_TYPES = ("create", "update", "delete", "merge")
#: State namespace of the queue: stream event id -> the event and its retries.
QUEUE = "stream_queue"
#: Where earlier versions parked events (object id -> event); moved into the queue at start.
LEGACY_PARKED = "stream_retry"

log = logging.getLogger("vtframework.stream")


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


def position(entry: dict[str, Any]) -> tuple[int, int, float]:
    """Where a queued event stands in the stream: OpenCTI's ids are ``<ms>-<seq>``; others go last."""
    ms, _, seq = str(entry.get("id")).partition("-")
    queued_at = float(entry.get("queued_at") or 0)
    try:
        return int(ms), int(seq or 0), queued_at
    except ValueError:
        return 1 << 62, 0, queued_at


class EventQueue:
    """Stream events waiting for the worker, in the shared state (they survive a restart).

    Keyed by the stream event id: two replicas filing the same event file it
    once. The index of what waits per object is this process's; it only
    serves to replace an older ``update`` without reading the whole queue.
    """

    def __init__(self, state: Any) -> None:
        self.state = state
        self._lock = threading.Lock()
        self._updates: dict[str, set[str]] = {}

    def load(self) -> list[tuple[str, dict[str, Any]]]:
        """Every queued event, in stream order."""
        items = [(k, v) for k, v in self.state.kv_items(QUEUE).items() if isinstance(v, dict) and "data" in v]
        items.sort(key=lambda item: position(item[1]))
        with self._lock:
            self._updates = {}
            for key, entry in items:
                if entry.get("type") == "update":
                    self._updates.setdefault(str(entry.get("object")), set()).add(key)
        return items

    def put(self, event: StreamEvent) -> int:
        """File an event; returns how many waiting updates of the same object it replaced."""
        object_id = str(event.data.get("id"))
        entry = {
            "id": event.id, "type": event.type, "object": object_id, "data": dict(event.data),
            "context": dict(event.context), "message": event.message, "queued_at": time.time(), "attempts": 0,
        }
        replaced = []
        with self._lock:
            if event.type == "update":
                waiting = self._updates.setdefault(object_id, set())
                replaced = sorted(waiting - {event.id})
                waiting.clear()
                waiting.add(event.id)
        self.state.kv_set(QUEUE, event.id, entry)
        for key in replaced:
            self.state.kv_delete(QUEUE, key)
        return len(replaced)

    def get(self, key: str) -> dict[str, Any] | None:
        entry = self.state.kv_get(QUEUE, key)
        return entry if isinstance(entry, dict) else None

    def update(self, key: str, entry: dict[str, Any]) -> None:
        """Save a parked event's retry bookkeeping, unless it was done or replaced meanwhile."""
        if self.get(key) is not None:
            self.state.kv_set(QUEUE, key, entry)

    def remove(self, key: str, entry: dict[str, Any]) -> None:
        self.state.kv_delete(QUEUE, key)
        with self._lock:
            self._updates.get(str(entry.get("object")), set()).discard(key)


class _Capture(logging.Handler):
    """The messages a plugin logged through the stream context while one event was handled, in this thread."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.thread = threading.get_ident()
        self.messages: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            with contextlib.suppress(Exception):
                self.messages.add(record.getMessage())

    def said(self, text: str) -> bool:
        return text in self.messages or all(part in self.messages for part in text.split("; "))


class _ReportedHere(logging.Filter):
    """Drops the host's warning about a plugin's failure in this thread: the connector reports each one itself
    ("not handled" or "parked"), once."""

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        # The message is already a string here (secrets are redacted as a record is made): HookFailure's words.
        return not (record.thread == self.thread and record.levelno == logging.WARNING
                    and str(record.msg).startswith("plugin ") and " failed in vtf_stream_event: " in str(record.msg))


@contextlib.contextmanager
def _captured(logger: logging.Logger) -> Iterator[_Capture]:
    capture, reported = _Capture(), _ReportedHere()
    logger.addHandler(capture)
    host_log.addFilter(reported)
    try:
        yield capture
    finally:
        logger.removeHandler(capture)
        host_log.removeFilter(reported)


class StreamRefused(VTFrameworkError):
    """The platform refused the live stream for a reason no reconnect fixes (token, stream id)."""


#: Answers to a (re)connection worth trying again: the platform or its proxy is restarting or busy.
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def reconnecting_client(base: type, watcher: Any, pauses: tuple[float, ...], timeout: tuple[float, float]) -> type:
    """A subclass of pycti's SSE client (``filigran_sseclient.SSEClient``) that does not give up.

    The original reconnects after a dropped connection, but an error answer to
    the reconnect (a 503 while the platform restarts) or a read error it does
    not catch ends pycti's listener, and pycti then ends the process. This one
    tries again after ``pauses`` (the last repeats) and only raises
    :class:`StreamRefused` for answers no retry changes (401, 403, 404...).
    ``watcher`` is told: ``stream_lost()``, ``stream_retry(attempt, pause, why)``
    (it pauses), ``stream_connected(connections)``.
    """

    class ReconnectingSSEClient(base):  # type: ignore[misc, valid-type]
        def __init__(self, url: str, last_id: str | None = None, **kwargs: Any) -> None:
            self._connections = 0
            # A connection that sends nothing (the platform heartbeats every 5 s) is dropped, not waited on.
            kwargs.setdefault("timeout", timeout)
            super().__init__(url, last_id, **kwargs)

        def _connect(self) -> None:
            if self._connections:
                watcher.stream_lost()
            failures = 0
            while True:
                try:
                    super()._connect()
                except requests.HTTPError as exc:
                    status = exc.response.status_code if exc.response is not None else None
                    with contextlib.suppress(Exception):
                        self.resp.close()
                    if status not in RETRYABLE_STATUS:
                        raise StreamRefused(f"the live stream answered {status}; not retrying (check "
                                            "OPENCTI_TOKEN and CONNECTOR_LIVE_STREAM_ID)") from None
                    why = f"the live stream answered {status}"
                except (requests.ConnectionError, requests.Timeout) as exc:
                    why = f"no connection to the live stream ({type(exc).__name__})"
                else:
                    self._connections += 1
                    watcher.stream_connected(self._connections)
                    return
                pause = pauses[min(failures, len(pauses) - 1)]
                failures += 1
                watcher.stream_retry(failures, pause, why)

        def __next__(self) -> Any:
            while True:
                try:
                    return super().__next__()
                except StreamRefused:
                    raise
                except OSError:  # a read timeout or reset the original lets through
                    head, sep, _tail = self.buf.rpartition("\n")
                    self.buf = head + sep
                    self._connect()

    return ReconnectingSSEClient


class StreamConnector:
    """``vtframework run livehunt``: an OpenCTI stream connector on ``helper.listen_stream``.

    Each event goes to every plugin's ``vtf_stream_event``, from the worker.
    One event never kills the stream: a transient failure (VirusTotal
    unreachable, quota) parks it, any other failure is logged with the
    object's id and the event is done with. Only a configuration failure (the
    key is rejected) stops the connector; the event stays queued for the next
    start.
    """

    #: Longest a request waits for a quota slot in the worker before its event is parked.
    QUOTA_WAIT = 5.0
    #: Pauses, in seconds, before a parked event (other than for quota) is tried again; the last repeats.
    RETRY_PAUSES = (5.0, 15.0, 60.0, 300.0)
    #: Pauses before reconnecting to the live stream; the last repeats.
    RECONNECT_PAUSES = (1.0, 2.0, 5.0, 10.0, 30.0)
    #: Connect and read timeouts of the live stream (the platform sends a heartbeat every 5 s).
    STREAM_TIMEOUT = (10.0, 30.0)
    #: The worker looks at the queue at least this often (events another replica filed).
    IDLE = 5.0

    def __init__(self, app: App, helper: Any = None, *, state: Any = None, client: Any = None,
                 metrics: Metrics | None = None) -> None:
        self.app = app
        app.settings.require("connector.live_stream_id", why="to run a stream connector")
        self.helper = helper or start_helper(app)
        self.state = state or open_app_state(app)
        quota_wait = min(float(app.settings["virustotal.max_quota_wait"]), self.QUOTA_WAIT)
        self.client = client or open_client(app, self.state, max_quota_wait=quota_wait)
        self.metrics = metrics or Metrics(bool(app.settings["connector.expose_metrics"]))
        self.context = StreamContext(client=self.client, state=self.state, settings=app.settings,
                                     log=log, opencti=self.helper.api)
        self.queue = EventQueue(self.state)
        self.fatal: BaseException | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._quota_free_at = 0.0
        self._heartbeat: Any = None
        self._worker: threading.Thread | None = None
        #: pycti reads these on the callback object.
        self.manages_state = False

    # -- running -------------------------------------------------------------------
    def start(self) -> None:
        self.helper.connector_logger.info(
            "vtframework stream connector started", {"plugins": ",".join(self.app.host.loaded)}
        )
        self.start_worker()
        with self._reconnecting():
            self.helper.listen_stream(message_callback=self).join()

    def start_worker(self) -> None:
        self._adopt_legacy()
        waiting = len(self.queue.load())
        if waiting:
            self.helper.connector_logger.info(f"{waiting} stream event(s) queued before the restart; resuming them")
        self._worker = threading.Thread(target=self._work, name="vtframework-stream-worker", daemon=True)
        self._worker.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._worker is not None:
            self._worker.join(timeout)

    def set_heartbeat_queue(self, heartbeat: Any) -> None:
        """pycti hands its watchdog's queue to a callback that asks for it (both 6.9 and 7)."""
        self._heartbeat = heartbeat

    def __call__(self, msg: Any) -> None:
        self.process(msg)

    # -- the listener's side: file the event and return ----------------------------
    def process(self, msg: Any) -> None:
        if msg.event not in STREAM_EVENT_TYPES:
            return
        try:
            event = parse_event(msg.event, msg.id, msg.data)
        except InputError as exc:
            self.helper.connector_logger.warning(str(exc))
            return
        replaced = self.queue.put(event)
        if replaced:
            log.debug("update %s of %s replaces %d waiting update(s)", event.id, event.data.get("id"), replaced)
        self._wake.set()

    # -- the worker's side ---------------------------------------------------------
    def _work(self) -> None:
        while not self._stopping.is_set():
            try:
                pause = self.drain()
            except Exception as exc:  # the state is unreachable: try again, the queue is still there
                self.helper.connector_logger.error(f"stream worker: {type(exc).__name__}: {exc}; retrying")
                pause = self.IDLE
            if self.fatal is not None:
                return
            self._wake.wait(pause)
            self._wake.clear()

    def drain(self) -> float:
        """Do every queued event that is due, in stream order; the seconds until the next one is due."""
        now = time.time()
        if now < self._quota_free_at:
            return min(self._quota_free_at - now, self.IDLE)
        blocked: set[str] = set()
        next_due = now + self.IDLE
        items = self.queue.load()
        self.metrics.stream_queued(len(items))
        for key, entry in items:
            if self._stopping.is_set():
                break
            object_id = str(entry.get("object"))
            if object_id in blocked:
                continue
            retry_at = float(entry.get("retry_at") or 0)
            if retry_at > time.time():
                blocked.add(object_id)  # its later events wait behind it
                next_due = min(next_due, retry_at)
                continue
            if self.queue.get(key) is None:
                continue  # done by another replica, or replaced by a newer update
            outcome = self._handle(entry)
            if outcome is None:
                self.queue.remove(key, entry)
                continue
            if self.fatal is not None:
                return self.IDLE
            blocked.add(object_id)
            self._park(key, entry, outcome)
            if isinstance(outcome, (QuotaExceededError, TooManyRequestsError)):
                break  # every event needs the same quota: none goes before it frees
            next_due = min(next_due, float(entry["retry_at"]))
        self.metrics.client_stats(self.client.stats)
        if time.time() < self._quota_free_at:
            next_due = min(next_due, self._quota_free_at)
        return max(0.0, next_due - time.time())

    def _handle(self, entry: dict[str, Any]) -> BaseException | None:
        """Hand one event to every plugin; None when it is done with, else the transient failure."""
        event = StreamEvent(type=entry["type"], id=str(entry["id"]), data=entry["data"],
                            context=entry.get("context") or {}, message=str(entry.get("message") or ""))
        # Whatever a plugin asks VirusTotal while handling the event is checked against the object's markings.
        with self.client.scope(_marked(event)), _captured(log) as said:
            results, failures = self.app.host.call_each(
                "vtf_stream_event", event=event, context=self.context, settings=self.app.settings
            )
        for plugin, message in results:
            if not said.said(str(message)):  # what the plugin logged itself is not written again
                self.helper.connector_logger.info(str(message), {"plugin": plugin, "event_id": event.id})
        for failure in failures:
            if isinstance(failure.error, FATAL):
                self.helper.connector_logger.error(
                    f"stopping: {failure.error}", {"plugin": failure.plugin, "event_id": event.id}
                )
                self._stop_fatally(failure.error)
                return failure.error
        transient = [f for f in failures if isinstance(f.error, TRANSIENT)]
        for failure in failures:
            if failure not in transient:
                self.metrics.failure(failure_reason(str(failure.error)))
                self.helper.connector_logger.error(
                    f"{event.type} event of {event.data.get('id')} not handled: {failure.error}",
                    {"plugin": failure.plugin, "event_id": event.id},
                )
        if entry.get("attempts"):
            done = "done" if not transient else "still waiting"
            log.debug("parked %s event of %s: %s after %d attempt(s)", event.type, entry["object"], done,
                      entry["attempts"] + 1)
        return transient[0].error if transient else None

    def _park(self, key: str, entry: dict[str, Any], error: BaseException) -> None:
        attempts = int(entry.get("attempts") or 0) + 1
        now = time.time()
        if isinstance(error, (QuotaExceededError, TooManyRequestsError)):
            # A whole window, not just until the first slot frees: an event needing two requests in a row
            # would otherwise spend each single freed slot on its first request, forever.
            window = float(self.client.limiter.window)
            wait = max(float(getattr(error, "retry_after", None) or 0.0), window + hold_margin(window))
            self._quota_free_at = now + wait
            reason = "quota"
            self.metrics.stream_quota_wait(wait)
        else:
            wait = self.RETRY_PAUSES[min(attempts - 1, len(self.RETRY_PAUSES) - 1)]
            reason = "virustotal"
        entry.update(attempts=attempts, retry_at=now + wait, reason=reason)
        self.queue.update(key, entry)
        self.metrics.stream_parked(reason)
        line = (f"parked: {reason} ({error}); {entry['type']} event {entry['id']} of {entry['object']} "
                f"will retry in {format_duration(wait) if wait >= 1 else f'{wait:.1f}s'}")
        if attempts == 1:
            self.helper.connector_logger.warning(line, {"event_id": entry["id"]})
        else:
            log.debug("%s (attempt %d)", line, attempts)

    def _stop_fatally(self, error: BaseException) -> None:
        """As pycti does with a failure its threads cannot survive: its exception hook ends the process."""
        self.fatal = error
        self._stopping.set()
        self._wake.set()
        with contextlib.suppress(Exception):
            sys.excepthook(type(error), error, error.__traceback__)

    def _adopt_legacy(self) -> None:
        """Events an earlier version parked (one per object) join the queue."""
        for object_id, parked in self.state.kv_items(LEGACY_PARKED).items():
            with contextlib.suppress(KeyError, TypeError, AttributeError):
                self.queue.put(StreamEvent(type=parked["type"], id=str(parked["id"]), data=parked["data"],
                                           context=parked.get("context") or {}))
            self.state.kv_delete(LEGACY_PARKED, object_id)

    # -- the live stream's connection ----------------------------------------------
    @contextlib.contextmanager
    def _reconnecting(self) -> Iterator[None]:
        """pycti's listener builds its SSE client from its module's ``SSEClient``: ours, while it runs."""
        from pycti.connector import opencti_connector_helper as module

        original = module.SSEClient
        module.SSEClient = reconnecting_client(original, self, self.RECONNECT_PAUSES, self.STREAM_TIMEOUT)
        try:
            yield
        finally:
            module.SSEClient = original

    def stream_lost(self) -> None:
        self.helper.connector_logger.warning("the live stream connection was lost; reconnecting")

    def stream_connected(self, connections: int) -> None:
        if connections > 1:
            self.metrics.stream_reconnect()
            self.helper.connector_logger.info("reconnected to the live stream", {"connections": connections})

    def stream_retry(self, attempt: int, pause: float, why: str) -> None:
        self.helper.connector_logger.warning(f"{why}; reconnecting in {pause:g}s (attempt {attempt})")
        self.metrics.stream_reconnect_failure()
        # pycti's watchdog ends a stream silent for 45 s: a listener busy reconnecting is not silent.
        deadline = time.monotonic() + pause
        while True:
            self._beat()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 5.0))

    def _beat(self) -> None:
        if self._heartbeat is not None:
            with contextlib.suppress(Exception):
                self._heartbeat.put("reconnecting", block=False)
