"""``vtframework run downloader``: a StixFile's sample becomes an Artifact linked to it."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any, Mapping

from vtframework.errors import InputError, VTFrameworkError
from vtframework.host.app import App
from vtframework.host.services import open_app_state, open_client
from vtframework.opencti.artifacts import OpenCTIArtifacts, sha256_of
from vtframework.opencti.helper import failure_reason, start_helper
from vtframework.opencti.messages import observable_from_message
from vtframework.opencti.metrics import Metrics
from vtframework.pipeline.download import fetch_sample
from vtframework.pipeline.enrich import dedupe
from vtframework.stix.factory import AUTHOR_ID, StixFactory, author, to_dict
from vtframework.stix.observables import lookup_hash

log = logging.getLogger("vtframework.downloader")


class DownloaderConnector:
    """``vtframework run downloader``: StixFile -> its sample, as an Artifact linked to it."""

    def __init__(self, app: App, helper: Any = None) -> None:
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
            self.metrics.failure(failure_reason(str(exc)))
            raise
        finally:
            self.metrics.client_stats(self.client.stats)
            self.helper.metric.state("idle")

    def _process(self, data: Mapping[str, Any]) -> str:
        entity = data.get("enrichment_entity") or {}
        stix_entity = data.get("stix_entity") or {}
        entity_type = entity.get("entity_type") or stix_entity.get("type")
        if entity_type != "StixFile":
            raise InputError(f"the downloader fetches the samples of StixFile observables, not of {entity_type}")
        observable = observable_from_message(entity, stix_entity)
        _name, value = lookup_hash(observable, "have its sample downloaded")
        existing = self.artifacts.find(dict(observable.hashes))
        if existing is not None:
            # Its SHA-256 from its hashes: its displayed value is a SHA-512.
            artifact = {"id": existing["standard_id"], "existing": True, "sha256": sha256_of(existing)}
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


class _ArtifactContext:
    def __init__(self, factory: Any, settings: Any, logger: logging.Logger) -> None:
        self.factory, self.settings, self.log = factory, settings, logger
