"""``vtframework run downloader``: a StixFile's sample becomes an Artifact linked to it."""

from __future__ import annotations

import json
import uuid
from typing import Any, Mapping

from vtframework.errors import InputError, VTFrameworkError
from vtframework.host.app import App
from vtframework.host.services import open_app_state, open_client
from vtframework.opencti.artifacts import OpenCTIArtifacts
from vtframework.opencti.helper import failure_reason, start_helper
from vtframework.opencti.messages import observable_from_message
from vtframework.opencti.metrics import Metrics
from vtframework.opencti.queue import listener_for
from vtframework.pipeline.download import store_sample
from vtframework.pipeline.enrich import dedupe
from vtframework.stix.factory import author, to_dict
from vtframework.stix.observables import lookup_hash


class DownloaderConnector:
    """``vtframework run downloader``: StixFile -> its sample, as an Artifact linked to it."""

    def __init__(self, app: App, helper: Any = None) -> None:
        self.app = app
        self.helper = helper or start_helper(app, playbook_compatible=True)
        self.state = open_app_state(app)
        self.client = open_client(app, self.state)
        self.artifacts = OpenCTIArtifacts(self.helper)
        self.metrics = Metrics(bool(app.settings["connector.expose_metrics"]))
        self.listener = listener_for(app, self.helper, self.state, self.process)
        # The Artifact's author must exist before the upload names it (same id as our STIX author).
        self.helper.api.identity.create(type="Organization", name="VirusTotal", description="VirusTotal")

    def start(self) -> None:
        self.helper.connector_logger.info("vtframework downloader connector started")
        self.listener.serve()

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
        stored = store_sample(
            self.app, self.client, self.artifacts, observable,
            max_size=self.app.settings["virustotal_downloader.max_size"],
            name=str(observable.stix.get("name") or "") or None,
            description=f"Downloaded from VirusTotal using hash {value}",
        )
        message = stored.message
        objects = [to_dict(author()), *stored.objects]
        if self.helper.playbook is not None:  # a playbook step passes the incoming bundle on, enriched
            objects = dedupe([*(data.get("stix_objects") or []), *objects])
        self.listener.send_bundle(json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects}))
        self.helper.connector_logger.info(message)
        return message

