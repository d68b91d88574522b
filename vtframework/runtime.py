"""The OpenCTI connector runtimes, on pycti's ``OpenCTIConnectorHelper``.

``EnrichmentConnector`` consumes enrichment requests (``helper.listen``): both
message shapes (the entity from the platform with OpenCTI extensions, and the
objects pycti rebuilds with flat ``x_opencti_*`` keys) and playbook steps (a
bundle in, the enriched bundle out). A failure raises, so pycti reports the
work as failed with our message; success returns the message the analyst
reads in the UI.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
import uuid
from typing import Any, Callable, Mapping

from vtframework.app import App
from vtframework.egress import most_restrictive_tlp
from vtframework.errors import (
    AuthenticationError,
    ConnectionFailed,
    InputError,
    QuotaExceededError,
    RequestTimeout,
    TooManyRequestsError,
    TransientError,
    VTFrameworkError,
)
from vtframework.metrics import Metrics
from vtframework.observables import best_hash, observable_for, observables_in_pattern
from vtframework.pipeline import EnrichmentResult, Pipeline, dedupe
from vtframework.records import Observable
from vtframework.services import open_app_state, open_client

log = logging.getLogger("vtframework.runtime")


class EnrichmentFailed(VTFrameworkError):
    """The enrichment of one entity failed; the message says why."""


def helper_config(app: App) -> dict[str, Any]:
    """pycti's configuration: what config.yml holds for OpenCTI, plus our validated values."""
    settings = app.settings
    opencti = settings.raw_section("opencti")
    connector = settings.raw_section("connector")
    for entry in settings.entries():
        namespace, _, key = entry.key.path.partition(".")
        if namespace in ("opencti", "connector") and entry.value is not None:
            value = entry.value
            if isinstance(value, list):
                value = ",".join(value)
            (opencti if namespace == "opencti" else connector)[key] = value
    config: dict[str, Any] = {"opencti": opencti, "connector": connector}
    for section in ("mq", "s3"):
        if settings.raw_section(section):
            config[section] = settings.raw_section(section)
    return config


def start_helper(app: App, **kwargs: Any) -> Any:
    """A registered pycti helper (requires OPENCTI_URL and OPENCTI_TOKEN)."""
    app.settings.require("opencti.url", "opencti.token", "connector.id", why="to run as an OpenCTI connector")
    from pycti import OpenCTIConnectorHelper

    return OpenCTIConnectorHelper(helper_config(app), **kwargs)


# -- observables from OpenCTI messages ------------------------------------------
def _marking_ids(entity: Mapping[str, Any], stix_entity: Mapping[str, Any]) -> list[str]:
    ids = [m for m in stix_entity.get("object_marking_refs") or [] if isinstance(m, str)]
    for marking in entity.get("objectMarking") or []:
        if isinstance(marking, Mapping) and marking.get("standard_id"):
            ids.append(marking["standard_id"])
    return list(dict.fromkeys(ids))


def entity_tlp(entity: Mapping[str, Any], stix_entity: Mapping[str, Any]) -> str:
    """The MOST restrictive TLP of an entity, from every marking we are told about."""
    return most_restrictive_tlp([*(entity.get("objectMarking") or []), *_marking_ids(entity, stix_entity)])


def _hashes(entity: Mapping[str, Any], stix_entity: Mapping[str, Any]) -> dict[str, str]:
    hashes = dict(stix_entity.get("hashes") or {})
    for item in entity.get("hashes") or []:
        if isinstance(item, Mapping) and item.get("algorithm") and item.get("hash"):
            hashes.setdefault(item["algorithm"], item["hash"])
    return hashes


def observable_from_message(
    entity: Mapping[str, Any],
    stix_entity: Mapping[str, Any],
    open_file: Callable[[Mapping[str, Any]], Any] | None = None,
) -> Observable:
    """The observable of an enrichment message (entity read by pycti + STIX entity)."""
    entity_type = str(entity.get("entity_type") or stix_entity.get("x_opencti_type") or "")
    hashes = _hashes(entity, stix_entity)
    value = str(entity.get("observable_value") or stix_entity.get("value") or "")
    if entity_type in ("StixFile", "Artifact"):
        best = best_hash(hashes)
        value = best[1] if best else value
    files = []
    for item in entity.get("importFiles") or []:
        if isinstance(item, Mapping) and open_file is not None:
            files.append({"name": item.get("name"), "size": item.get("size"), "id": item.get("id"),
                          "open": lambda item=item: open_file(item)})
    return Observable(
        entity_type=entity_type,
        value=value,
        stix=dict(stix_entity),
        hashes=hashes,
        markings=tuple(_marking_ids(entity, stix_entity)),
        tlp=entity_tlp(entity, stix_entity),
        files=tuple(files),
    )


def indicator_observables(entity: Mapping[str, Any], stix_entity: Mapping[str, Any]) -> list[Observable]:
    """The observables an Indicator's pattern names, with the Indicator's markings."""
    pattern = stix_entity.get("pattern") or entity.get("pattern") or ""
    if (stix_entity.get("pattern_type") or entity.get("pattern_type") or "stix") != "stix":
        return []
    markings = _marking_ids(entity, stix_entity)
    tlp = entity_tlp(entity, stix_entity)
    found = []
    for entity_type, value in observables_in_pattern(str(pattern)):
        try:
            found.append(observable_for(entity_type, value, markings, tlp))
        except InputError as exc:
            log.warning("indicator %s: %s", stix_entity.get("id"), exc)
    return found


# -- the enrichment connector -------------------------------------------------------
class EnrichmentConnector:
    """``vtframework run enrichment``: the OpenCTI internal-enrichment connector."""

    def __init__(self, app: App, helper: Any = None) -> None:
        self.app = app
        self.helper = helper or start_helper(app, playbook_compatible=True)
        self.state = open_app_state(app)
        self.client = open_client(app, self.state)
        self.pipeline = Pipeline(app, self.client, factory_kwargs={"confidence": app.settings["connector.confidence_level"]})
        self.metrics = Metrics(bool(app.settings["connector.expose_metrics"]))

    def start(self) -> None:
        self.helper.connector_logger.info(
            "vtframework enrichment connector started",
            {"plugins": ",".join(self.app.host.loaded), "types": ",".join(sorted(self.app.host.owners))},
        )
        self.helper.listen(message_callback=self.process)

    # pycti calls this once per message, in a worker thread.
    def process(self, data: dict[str, Any]) -> str:
        self.helper.metric.inc("run_count")
        self.helper.metric.state("running")
        try:
            result, base = self._enrich(data)
            if not result.ok:
                self.metrics.failure(_reason(result.message))
                raise EnrichmentFailed(result.message)
            objects = dedupe([*base, *result.objects])
            self.helper.send_stix2_bundle(
                json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects}),
                cleanup_inconsistent_bundle=True,
            )
            self.helper.metric.inc("record_send", len(objects))
            message = f"{result.message}; {len(objects)} STIX objects sent"
            if result.warnings:
                self.helper.connector_logger.warning(message, {"warnings": result.warnings})
            else:
                self.helper.connector_logger.info(message)
            return message
        finally:
            self.metrics.client_stats(self.client.stats)
            self.helper.metric.state("idle")

    def _enrich(self, data: Mapping[str, Any]) -> tuple[EnrichmentResult, list[dict[str, Any]]]:
        entity = data.get("enrichment_entity") or {}
        stix_entity = data.get("stix_entity") or {}
        base = list(data.get("stix_objects") or [stix_entity])
        if entity.get("entity_type") == "Indicator" or stix_entity.get("type") == "indicator":
            return self.pipeline.enrich_indicator(stix_entity, indicator_observables(entity, stix_entity)), base
        observable = observable_from_message(entity, stix_entity, self._open_file)
        return self.pipeline.enrich(observable), base

    def _open_file(self, item: Mapping[str, Any]) -> Any:
        """An Artifact's file from OpenCTI storage, spooled to disk beyond 8 MB."""
        url = f"{self.helper.opencti_url.rstrip('/')}/storage/get/{item['id']}"
        content = self.helper.api.fetch_opencti_file(url, binary=True)
        spool = tempfile.SpooledTemporaryFile(max_size=8 << 20)
        spool.write(content)
        spool.seek(0)
        return spool


class DownloaderConnector:
    """``vtframework run downloader``: StixFile -> its sample, as an Artifact linked to it."""

    def __init__(self, app: App, helper: Any = None) -> None:
        from vtframework.opencti_artifacts import OpenCTIArtifacts

        self.app = app
        self.helper = helper or start_helper(app, playbook_compatible=True)
        self.state = open_app_state(app)
        self.client = open_client(app, self.state)
        self.artifacts = OpenCTIArtifacts(self.helper)
        self.metrics = Metrics(bool(app.settings["connector.expose_metrics"]))
        # The Artifact's author must exist before the upload names it (same id as our STIX author).
        self.helper.api.identity.create(type="Organization", name="VirusTotal", description="VirusTotal")

    def start(self) -> None:
        self.helper.connector_logger.info("vtframework downloader connector started")
        self.helper.listen(message_callback=self.process)

    def process(self, data: dict[str, Any]) -> str:
        self.helper.metric.inc("run_count")
        self.helper.metric.state("running")
        try:
            return self._process(data)
        except VTFrameworkError as exc:
            self.metrics.failure(_reason(str(exc)))
            raise
        finally:
            self.metrics.client_stats(self.client.stats)
            self.helper.metric.state("idle")

    def _process(self, data: Mapping[str, Any]) -> str:
        from vtframework.download import fetch_sample
        from vtframework.observables import lookup_hash
        from vtframework.stix import AUTHOR_ID, StixFactory, author, to_dict

        entity = data.get("enrichment_entity") or {}
        stix_entity = data.get("stix_entity") or {}
        entity_type = entity.get("entity_type") or stix_entity.get("type")
        if entity_type != "StixFile":
            raise InputError(f"the downloader fetches the samples of StixFile observables, not of {entity_type}")
        observable = observable_from_message(entity, stix_entity)
        _name, value = lookup_hash(observable, "have its sample downloaded")
        existing = self.artifacts.find(dict(observable.hashes))
        if existing is not None:
            artifact = {"id": existing["standard_id"], "existing": True, "sha256": existing.get("observable_value")}
            message = f"StixFile {value}: OpenCTI already holds its sample (Artifact {existing['standard_id']}); not downloaded again"
        else:
            sample = fetch_sample(self.app, self.client, observable,
                                  max_size=self.app.settings["virustotal_downloader.max_size"])
            try:
                stored = self.artifacts.upload(
                    sample, name=str(observable.stix.get("name") or sample.sha256),
                    description=f"Downloaded from VirusTotal using hash {value}",
                    author_id=AUTHOR_ID, markings=observable.markings,
                )
            finally:
                sample.discard()
            artifact = {"id": stored["standard_id"], "existing": False, "sha256": sample.sha256,
                        "size": sample.size, "mime_type": sample.mime_type}
            message = f"StixFile {value}: sample downloaded ({sample.size} bytes, {sample.mime_type}), Artifact {stored['standard_id']}"
        context = _ArtifactContext(StixFactory(markings=observable.markings), self.app.settings, log)
        created, failures = self.app.host.call_each(
            "vtf_artifact_objects", observable=observable, artifact=artifact, context=context, settings=self.app.settings
        )
        if failures:
            raise failures[0].as_error()
        objects = [to_dict(author()), *(to_dict(obj) for _plugin, result in created for obj in result)]
        if self.helper.playbook is not None:  # a playbook step passes the incoming bundle on, enriched
            objects = dedupe([*(data.get("stix_objects") or []), *objects])
        self.helper.send_stix2_bundle(json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects}))
        self.helper.connector_logger.info(message)
        return message


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
        from vtframework.stream import StreamContext

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
        from vtframework.stream import STREAM_EVENT_TYPES, parse_event

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
                    self.metrics.failure(_reason(str(failure.error)))
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
        from vtframework.records import StreamEvent

        now = time.time()
        for object_id, parked in self.state.kv_items(self.PARKED).items():
            if now - parked.get("parked_at", 0) < self.PARKED_RETRY_AFTER:
                continue
            event = StreamEvent(type=parked["type"], id=parked["id"], data=parked["data"], context=parked["context"])
            if self._handle(event, ()):
                self.state.kv_delete(self.PARKED, object_id)
            else:
                self._park(event)


class _ArtifactContext:
    def __init__(self, factory: Any, settings: Any, logger: logging.Logger) -> None:
        self.factory, self.settings, self.log = factory, settings, logger


#: Failures worth trying the same event again for (after the client's own retries).
TRANSIENT = (TransientError, ConnectionFailed, RequestTimeout, QuotaExceededError, TooManyRequestsError)
#: Failures no retry will fix: the connector stops and says so.
FATAL = (AuthenticationError,)


def _reason(message: str) -> str:
    lowered = message.lower()
    for reason in ("quota", "not found", "tlp", "timeout", "forbidden", "rejected"):
        if reason in lowered:
            return reason.replace(" ", "_")
    return "other"

