"""The message runtime of the enrichment and downloader connectors: at least once, one outcome per work.

pycti's own listener acknowledges a message when it receives it, so a
platform outage, a broker outage or a killed process loses the message and
leaves its work "in progress" for ever. This runtime consumes the connector's
queue itself, with pika, and keeps pycti's helper for everything else
(registration, the work API, ``send_stix2_bundle``, metrics):

* one message at a time (``basic_qos(prefetch_count=1)``), acknowledged only
  once its work is reported (``toProcessed``), so a message whose process dies
  comes back to the queue and is done again (an enrichment is idempotent:
  same ids);
* a platform or broker that does not answer while the entity is read, the
  work reported or the bundle sent is waited for (a pause that doubles up to
  :data:`MAX_PAUSE`, a log line saying what is unavailable), for at most
  ``vtf.platform_max_wait`` seconds; then the message goes back to the queue
  instead of failing;
* a journal in the connector state, keyed by work id (or the message's
  digest for playbook steps), remembers the works already reported: a
  redelivered copy of one is acknowledged without a second outcome;
* every work ends with exactly one ``toProcessed``, in error or not, whose
  message is never empty.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable

from vtframework.opencti.metrics import QueueMetrics

log = logging.getLogger("vtframework.opencti.queue")

#: Longest pause between two tries of a platform or broker call, in seconds.
MAX_PAUSE = 30.0
#: How long the journal remembers a reported work, in seconds (a redelivery comes long before).
JOURNAL_TTL = 7 * 86400.0
#: Starts of one message after which its work is failed instead of started again (none of them finished).
MAX_ATTEMPTS = 3
#: How often a long work is pinged, as pycti does (the platform forgets a silent work).
PING_EVERY = 300.0
#: GraphQL error names that no wait will fix: the work fails at once, with the platform's words.
PERMANENT_ERRORS = frozenset({
    "FORBIDDEN_ACCESS", "GRAPHQL_VALIDATION_FAILED", "GRAPHQL_PARSE_FAILED", "BAD_USER_INPUT",
    "UNSUPPORTED_ERROR", "FUNCTIONAL_ERROR", "VALIDATION_ERROR", "MISSING_REFERENCE_ERROR",
})

#: pycti's own ValueErrors that are not a platform's answer.
PYCTI_REFUSALS = ("Nothing to import", "Internal enrichment must be based", "Unable to read/access")


class Unavailable(Exception):
    """OpenCTI or RabbitMQ did not answer for longer than we wait: the message goes back to the queue."""

    def __init__(self, system: str, what: str, waited: float, cause: BaseException) -> None:
        super().__init__(f"{system} was unavailable for {waited:.0f} s while {what}: {describe(cause)}")
        self.system = system


def describe(exc: BaseException) -> str:
    """An exception as one non-empty line (pika's often have no message)."""
    cause = exc.args[0] if len(exc.args) == 1 else None
    if isinstance(cause, Mapping):  # pycti raises ValueError({"name", "error_message", ...})
        text = f"{cause.get('name') or 'error'}: {cause.get('error_message') or ''}".strip()
    else:
        text = str(exc).strip()
    text = " ".join(text.split())[:500]
    return f"{type(exc).__name__}: {text}" if text else f"{type(exc).__name__} (no message)"


def _error_name(exc: BaseException) -> str | None:
    cause = exc.args[0] if len(exc.args) == 1 else None
    return str(cause.get("name")) if isinstance(cause, Mapping) and cause.get("name") else None


def system_of(exc: BaseException) -> str | None:
    """Which system a failure says is unavailable ("OpenCTI", "RabbitMQ"), None for a failure waiting won't fix."""
    import pika.exceptions
    import requests

    if isinstance(exc, (pika.exceptions.AMQPError,)):
        return "RabbitMQ"
    if isinstance(exc, (requests.RequestException, ConnectionError, TimeoutError)):
        return "OpenCTI"
    if isinstance(exc, ValueError):  # pycti: a GraphQL error, or the body of a non-200 answer
        name = _error_name(exc)
        if name is None:  # the body of a non-200 answer; pycti's own refusals are not about availability
            text = exc.args[0] if exc.args and isinstance(exc.args[0], str) else None
            return None if text is None or text.startswith(PYCTI_REFUSALS) else "OpenCTI"
        return None if name in PERMANENT_ERRORS else "OpenCTI"
    return None


class Patience:
    """Calls to OpenCTI and RabbitMQ that wait out an outage, for a bounded time."""

    def __init__(self, pause: float, max_wait: float, metrics: QueueMetrics,
                 stopping: threading.Event | None = None) -> None:
        self.pause = max(pause, 0.01)
        self.max_wait = max_wait
        self.metrics = metrics
        self.stopping = stopping or threading.Event()

    def call(self, what: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        pause = self.pause
        while True:
            try:
                return function(*args, **kwargs)
            except Exception as exc:
                system = system_of(exc)
                if system is None:
                    raise
                waited = time.monotonic() - started
                if waited + pause > self.max_wait or self.stopping.is_set():
                    raise Unavailable(system, what, waited, exc) from exc
                log.warning("%s is unavailable while %s (%s); trying again in %.1f s",
                            system, what, describe(exc), pause)
                self.metrics.waited(system)
                self.stopping.wait(pause)
                pause = min(pause * 2, MAX_PAUSE)


class Journal:
    """The works already reported, in the connector state (shared by replicas on Redis)."""

    def __init__(self, state: Any) -> None:
        self.state = state

    @staticmethod
    def key_of(message: Mapping[str, Any], body: bytes) -> str:
        work_id = (message.get("internal") or {}).get("work_id")
        return f"vtf:journal:work:{work_id}" if work_id else f"vtf:journal:message:{hashlib.sha256(body).hexdigest()}"

    def reported(self, key: str) -> dict[str, Any] | None:
        try:
            return self.state.cache_get(key, time.time())
        except Exception as exc:  # the journal only saves a duplicate outcome: never a reason to stop
            log.warning("the journal could not be read (%s); the message is processed", describe(exc))
            return None

    def attempt(self, key: str) -> int:
        """Count one more start of a redelivered message: how many there were (the first delivery included)."""
        try:
            counted = self.state.cache_get(f"{key}:attempts", time.time()) or {}
            attempts = int(counted.get("attempts") or 1) + 1
            self.state.cache_set(f"{key}:attempts", {"attempts": attempts}, JOURNAL_TTL, time.time())
            return attempts
        except Exception as exc:
            log.warning("the journal could not count the attempts of %s (%s)", key, describe(exc))
            return 1

    def forgive(self, key: str) -> None:
        """The message goes back because a system was down: that attempt does not count."""
        try:
            counted = self.state.cache_get(f"{key}:attempts", time.time())
            if counted:
                attempts = max(int(counted.get("attempts") or 1) - 1, 1)
                self.state.cache_set(f"{key}:attempts", {"attempts": attempts}, JOURNAL_TTL, time.time())
        except Exception as exc:
            log.warning("the journal could not update the attempts of %s (%s)", key, describe(exc))

    def record(self, key: str, in_error: bool) -> None:
        try:
            self.state.cache_set(key, {"in_error": in_error, "at": time.time()}, JOURNAL_TTL, time.time())
        except Exception as exc:
            log.warning("the journal could not record %s (%s)", key, describe(exc))


@dataclass
class Outcome:
    """What became of one message: ``settle`` is "ack" or "requeue"."""

    settle: str
    reason: str = ""


@dataclass
class _Job:
    body: bytes
    redelivered: bool
    done: threading.Event = field(default_factory=threading.Event)
    outcome: Outcome | None = None


class ReliableListener:
    """Consumes the connector's queue; see the module docstring."""

    def __init__(self, helper: Any, callback: Callable[[dict[str, Any]], str], state: Any, *,
                 pause: float, max_wait: float, metrics: QueueMetrics) -> None:
        self.helper = helper
        self.callback = callback
        self.metrics = metrics
        self.journal = Journal(state)
        self.stopping = threading.Event()
        self.patience = Patience(pause, max_wait, metrics, self.stopping)
        self._pause = pause
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._reconnect_pause = pause
        #: The connector's own user (registration): the applicant of a message that names none.
        self._connector_applicant = getattr(helper, "applicant_id", None)
        #: The installed pycti's default (7.x "draft", 6.x "workbench") for a message that names none.
        self._validation_mode = getattr(helper, "validation_mode", None) or "draft"

    # -- the broker side -----------------------------------------------------------
    def run(self) -> None:
        """Consume until :meth:`stop`; a lost broker connection is opened again."""
        import pika.exceptions

        self._reconnect_pause = self._pause
        while not self.stopping.is_set():
            try:
                self._consume()
            except (pika.exceptions.AMQPError, OSError) as exc:
                if self.stopping.is_set():
                    break
                pause = self._reconnect_pause
                log.warning("RabbitMQ is unavailable (%s); connecting again in %.1f s", describe(exc), pause)
                self.metrics.waited("RabbitMQ")
                self.stopping.wait(pause)
                self._reconnect_pause = min(pause * 2, MAX_PAUSE)

    def serve(self) -> None:
        """The connector's listener: this runtime on RabbitMQ (AMQP, the default).

        With ``CONNECTOR_LISTEN_PROTOCOL=API`` OpenCTI does not publish to the
        queue but calls the connector over HTTP, and pycti's listener serves
        those calls: the platform keeps each request until the call answers,
        after the work is done.
        """
        protocol = str(getattr(self.helper, "listen_protocol", None) or "AMQP").upper()
        if protocol == "API":
            log.info("CONNECTOR_LISTEN_PROTOCOL=API: OpenCTI calls this connector over HTTP; pycti's listener answers")
            self.helper.listen(message_callback=self.callback)
            return
        self.run()

    def stop(self) -> None:
        self.stopping.set()

    def _parameters(self) -> Any:
        import pika

        connection = self.helper.connector_config["connection"]
        ssl_options = None
        if connection.get("use_ssl"):
            try:
                from pycti.connector.opencti_connector_helper import create_mq_ssl_context

                context = create_mq_ssl_context(self.helper.config)
            except ImportError:  # older pycti: the system's trust store
                import ssl

                context = ssl.create_default_context()
            ssl_options = pika.SSLOptions(context, connection["host"])
        return pika.ConnectionParameters(
            host=connection["host"], port=int(connection["port"]), virtual_host=connection["vhost"],
            credentials=pika.PlainCredentials(connection["user"], connection["pass"]),
            heartbeat=10, blocked_connection_timeout=30, ssl_options=ssl_options,
        )

    def _consume(self) -> None:
        import pika

        queue_name = self.helper.connector_config["listen"]
        connection = pika.BlockingConnection(self._parameters())
        self._reconnect_pause = self._pause  # connected: the next outage starts with a short pause again
        try:
            channel = connection.channel()
            channel.basic_qos(prefetch_count=1)
            log.info("consuming %s, one message at a time, acknowledged once its work is reported", queue_name)
            for method, _properties, body in channel.consume(queue_name, inactivity_timeout=1.0):
                if self.stopping.is_set():
                    break
                if method is None:
                    continue
                self._deliver(connection, channel, method, body)
        finally:
            try:
                if connection.is_open:
                    connection.close()
            except Exception:  # already closed by the broker; nothing to release
                pass

    def _deliver(self, connection: Any, channel: Any, method: Any, body: bytes) -> None:
        """Hand one message to the worker thread while this one keeps the connection alive."""
        import pika.exceptions

        job = _Job(body, bool(method.redelivered))
        self._submit(job)
        self.metrics.taken()
        lost: BaseException | None = None
        last_ping = time.monotonic()
        try:
            while not job.done.is_set():
                if lost is None:
                    try:
                        connection.sleep(0.05)
                    except (pika.exceptions.AMQPError, OSError) as exc:
                        # The message will come back on the next connection; the work goes on meanwhile
                        # and the journal keeps it from being reported twice.
                        lost = exc
                else:
                    job.done.wait(0.05)
                if time.monotonic() - last_ping > PING_EVERY and self.helper.work_id:
                    last_ping = time.monotonic()
                    try:
                        self.helper.api.work.ping(self.helper.work_id)
                    except Exception as exc:
                        log.warning("OpenCTI did not take the ping of work %s (%s)", self.helper.work_id, describe(exc))
        finally:
            self.metrics.settled()
        if lost is not None:
            raise lost
        outcome = job.outcome or Outcome("requeue", "the message's worker ended without an outcome")
        if outcome.settle == "ack":
            channel.basic_ack(delivery_tag=method.delivery_tag)
        else:
            log.warning("message back to the queue: %s", outcome.reason)
            self.stopping.wait(self._pause)
            channel.basic_nack(delivery_tag=method.delivery_tag, requeue=True)

    def _submit(self, job: "_Job") -> None:
        """One long-lived worker thread for every message: what a thread holds (a state connection) is opened once."""
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._work, name="vtf-message", daemon=True)
            self._worker.start()
        self._jobs.put(job)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                job.outcome = self.handle(job.body, job.redelivered)
            finally:
                job.done.set()

    # -- one message ---------------------------------------------------------------
    def handle(self, body: bytes, redelivered: bool = False) -> Outcome:
        """Process one message body and report its work; never raises."""
        try:
            message = json.loads(body)
            if not isinstance(message, dict) or not isinstance(message.get("event"), dict) \
                    or not isinstance(message.get("internal"), dict):
                raise ValueError("a message needs an 'internal' and an 'event' object")
        except ValueError as exc:
            # Nothing in it names a work to report: it can only be dropped, and counted.
            log.error("dropping a message that is not an OpenCTI request (%s, %d bytes)", describe(exc), len(body))
            self.metrics.lost()
            return Outcome("ack", "unreadable")
        key = self.journal.key_of(message, body)
        work_id = message["internal"].get("work_id")
        if self.journal.reported(key) is not None:
            log.info("work %s was already reported; its redelivered message is acknowledged", work_id or key)
            self.metrics.duplicate()
            return Outcome("ack", "duplicate")
        abandoned = None
        if redelivered:
            attempts = self.journal.attempt(key)
            if attempts > MAX_ATTEMPTS:
                # The process stopped during each of them (killed, out of memory): doing it again would loop.
                abandoned = (f"abandoned after {attempts - 1} attempts that never finished (the connector stopped "
                             f"during each); see its logs, then enrich the entity again")
                log.error("work %s %s", work_id or key, abandoned)
            else:
                log.warning("work %s was delivered before and not reported: processing it again", work_id or key)
                self.metrics.retried()
        try:
            text, in_error = (abandoned, True) if abandoned else self._process(message)
            if work_id:
                self.patience.call(f"reporting work {work_id}", self.helper.api.work.to_processed,
                                   work_id, text, in_error)
        except Unavailable as exc:
            self.journal.forgive(key)  # an outage is no attempt of the message's own
            return Outcome("requeue", str(exc))
        except Exception as exc:  # a bug of ours: the message comes back rather than vanish
            log.exception("work %s could not be handled", work_id or key)
            return Outcome("requeue", describe(exc))
        self.journal.record(key, in_error)
        return Outcome("ack", text)

    def _process(self, message: dict[str, Any]) -> tuple[str, bool]:
        """``(the work's message, in error)``; raises :class:`Unavailable` to put the message back."""
        internal, event = message["internal"], message["event"]
        work_id = internal.get("work_id")
        helper = self.helper
        helper.work_id = work_id
        helper.validation_mode = event.get("validation_mode", self._validation_mode)
        helper.force_validation = event.get("force_validation", False)
        self._set_draft_id(internal.get("draft_id") or "")
        helper.playbook = None
        helper.enrichment_shared_organizations = None
        try:
            try:
                event_data = self._event_data(message)
            except Unavailable:
                raise
            except Exception as exc:
                reason = f"the entity could not be prepared: {describe(exc)}"
                log.error("work %s failed: %s", work_id, reason)
                return reason, True
            helper.applicant_id = internal.get("applicant_id") or self._connector_applicant
            helper.api_impersonate.set_applicant_id_header(helper.applicant_id)
            if work_id:
                self.patience.call(f"reporting work {work_id} received", helper.api.work.to_received,
                                   work_id, "Connector ready to process the operation")
            if "configuration" in message:
                event_data["configuration"] = message["configuration"]
            try:
                text = self.callback(event_data)
            except Unavailable:
                raise
            except Exception as exc:
                reason = describe(exc) if not str(exc).strip() else str(exc)
                log.error("work %s failed: %s", work_id, reason)
                helper.metric.inc("error_count")
                return reason, True
            return (str(text).strip() or "done"), False
        finally:
            self._set_draft_id("")

    def _set_draft_id(self, draft_id: str) -> None:
        self.helper.draft_id = draft_id
        self.helper.api.set_draft_id(draft_id)
        self.helper.api_impersonate.set_draft_id(draft_id)

    def _event_data(self, message: dict[str, Any]) -> dict[str, Any]:
        """What the callback receives, as pycti builds it: the entity read again, the STIX objects."""
        helper = self.helper
        event = message["event"]
        entity_id = event.get("entity_id")
        stix_entity = json.loads(event["stix_entity"]) if isinstance(event.get("stix_entity"), str) else None
        stix_objects = json.loads(event["stix_objects"]) if isinstance(event.get("stix_objects"), str) else None
        if helper.connect_type != "INTERNAL_ENRICHMENT":
            return event
        if not entity_id:
            raise ValueError("an enrichment request names no entity (entity_id)")
        reader = helper.api.stix2.get_reader(event.get("entity_type") or "Stix-Core-Object")
        entity = self.patience.call(f"reading entity {entity_id}", reader, id=entity_id, withFiles=True)
        if entity is None:
            raise ValueError(f"OpenCTI returns no entity {entity_id}: deleted, or beyond the connector's permissions")
        event["enrichment_entity"] = entity
        playbook = message["internal"].get("playbook")
        if isinstance(playbook, Mapping):
            bundle = event.get("bundle") or {}
            helper.playbook = {
                "event_id": playbook.get("event_id"), "execution_id": playbook.get("execution_id"),
                "execution_start": helper.date_now(), "playbook_id": playbook.get("playbook_id"),
                "data_instance_id": playbook.get("data_instance_id"),
                "previous_step_id": playbook.get("previous_step_id"),
                "previous_bundle": json.dumps(bundle), "step_id": playbook.get("step_id"),
            }
            stix_objects = list(bundle.get("objects") or [])
            matching = [o for o in stix_objects if isinstance(o, Mapping) and o.get("id") == entity_id]
            if not matching:
                raise ValueError(f"the playbook's bundle does not hold its entity {entity_id}")
            stix_entity = matching[0]
        elif stix_objects is None:
            def export() -> list[dict[str, Any]]:
                return helper.api.stix2.prepare_export(entity=helper.api.stix2.generate_export(copy.copy(entity)))

            stix_objects = self.patience.call(f"exporting entity {entity_id}", export)
            standard_id = entity.get("standard_id")
            matching = [o for o in stix_objects if o.get("id") in (standard_id, f"x-opencti-{standard_id}")]
            if not matching:
                raise ValueError(f"OpenCTI's export of {entity_id} does not hold the entity")
            stix_entity = matching[0]
        event["stix_objects"] = stix_objects
        event["stix_entity"] = stix_entity or {}
        if "x_opencti_granted_refs" in event["stix_entity"]:
            helper.enrichment_shared_organizations = event["stix_entity"]["x_opencti_granted_refs"]
        else:
            helper.enrichment_shared_organizations = helper.get_attribute_in_extension(
                "granted_refs", event["stix_entity"])
        return event

    # -- what the callback calls ---------------------------------------------------
    def send_bundle(self, bundle: str, **kwargs: Any) -> Any:
        """pycti's ``send_stix2_bundle``, waiting out an OpenCTI or RabbitMQ outage (a resend is idempotent)."""
        return self.patience.call("sending the bundle", self.helper.send_stix2_bundle, bundle, **kwargs)


def listener_for(app: Any, helper: Any, state: Any, callback: Callable[[dict[str, Any]], str]) -> ReliableListener:
    """The listener of a connector, configured from its settings."""
    settings = app.settings
    return ReliableListener(
        helper, callback, state,
        pause=float(settings["vtf.platform_retry_pause"]), max_wait=float(settings["vtf.platform_max_wait"]),
        metrics=QueueMetrics(bool(settings["connector.expose_metrics"])),
    )
