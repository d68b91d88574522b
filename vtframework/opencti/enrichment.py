"""``vtframework run enrichment``: the OpenCTI internal-enrichment connector.

It consumes enrichment requests (:mod:`vtframework.opencti.queue`: at least
once, one outcome per work): both message shapes (the
entity from the platform with OpenCTI extensions, and the objects pycti
rebuilds with flat ``x_opencti_*`` keys) and playbook steps (a bundle in, the
enriched bundle out). A failure raises, so the work is reported as failed
with our message; success returns the message the analyst reads in the UI.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from typing import Any, Mapping

from vtframework.context import EnrichmentResult
from vtframework.errors import InputError
from vtframework.host.app import App
from vtframework.host.services import open_app_state, open_client
from vtframework.opencti.helper import EnrichmentFailed, failure_reason, start_helper
from vtframework.opencti.messages import indicator_observables, observable_from_message
from vtframework.opencti.metrics import Metrics
from vtframework.opencti.queue import listener_for
from vtframework.pipeline.enrich import Pipeline, dedupe


class EnrichmentConnector:
    """``vtframework run enrichment``: the OpenCTI internal-enrichment connector."""

    def __init__(self, app: App, helper: Any = None) -> None:
        self.app = app
        self.helper = helper or start_helper(app, playbook_compatible=True)
        self.state = open_app_state(app)
        self.client = open_client(app, self.state)
        self.pipeline = Pipeline(app, self.client, factory_kwargs={"confidence": app.settings["connector.confidence_level"]})
        self.metrics = Metrics(bool(app.settings["connector.expose_metrics"]))
        self.listener = listener_for(app, self.helper, self.state, self.process)

    def start(self) -> None:
        self.helper.connector_logger.info(
            "vtframework enrichment connector started",
            {"plugins": ",".join(self.app.host.loaded), "types": ",".join(sorted(self.app.host.owners))},
        )
        self.listener.serve()

    # The listener calls this once per message, in a worker thread.
    def process(self, data: dict[str, Any]) -> str:
        self.helper.metric.inc("run_count")
        self.helper.metric.state("running")
        try:
            result, base = self._enrich(data)
            if not result.ok:
                self.metrics.failure(failure_reason(result.message))
                raise EnrichmentFailed(result.message)
            objects = dedupe([*base, *result.objects])
            self.listener.send_bundle(
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
        """An Artifact's file from OpenCTI storage, streamed into a spool that goes to disk beyond 8 MB.

        pycti's ``fetch_opencti_file`` holds the whole file in memory and
        answers ``None`` on any failure; here a failure names the file and
        what OpenCTI answered.
        """
        import requests

        api = self.helper.api
        file_id = str(item.get("id") or "")
        url = f"{self.helper.opencti_url.rstrip('/')}/storage/get/{file_id}"
        spool = tempfile.SpooledTemporaryFile(max_size=8 << 20)
        try:
            with api.session.get(
                url, headers=api.request_headers, verify=api.ssl_verify, cert=getattr(api, "cert", None),
                proxies=getattr(api, "proxies", None), timeout=(30, 300), stream=True,
            ) as response:
                if response.status_code != 200:
                    raise InputError(f"OpenCTI did not return the file {file_id} of this Artifact "
                                     f"(HTTP {response.status_code}); nothing was sent to VirusTotal")
                for chunk in response.iter_content(1 << 20):
                    spool.write(chunk)
        except requests.RequestException as exc:
            spool.close()
            raise InputError(f"OpenCTI did not return the file {file_id} of this Artifact "
                             f"({type(exc).__name__}); nothing was sent to VirusTotal") from None
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        return spool
