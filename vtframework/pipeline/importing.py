"""External imports: one run of every import plugin, its progress, its bundles, its samples.

The flow is the same whether the run talks to OpenCTI (``vtframework run
notifications``, on pycti's scheduler) or to a test's memory: an
:class:`ImportSink` receives the bundles, keeps the connector state and the
Artifacts. Each plugin's progress lives in the connector state under the
plugin's name, and is saved the moment the plugin says so, so a crash repeats
at most the item in flight.
"""

from __future__ import annotations

import copy
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from stix2 import TLP_WHITE

from vtframework.context import ImportContext
from vtframework.errors import AuthenticationError, ImportInterrupted, PluginError, VTFrameworkError
from vtframework.host.app import App
from vtframework.pipeline.download import ArtifactStore, store_sample
from vtframework.pipeline.enrich import Pipeline, dedupe
from vtframework.policy.markings import TLP_MARKING_BY_ID
from vtframework.records import Observable
from vtframework.stix.factory import StixFactory, author_dict, to_dict

HOOK = "vtf_import"
#: TLP:CLEAR travels as the STIX specification's TLP:WHITE (same id, which OpenCTI holds as TLP:CLEAR):
#: validators refuse a TLP marking definition the specification does not define.
_SPEC_TLP = {TLP_WHITE.id: json.loads(TLP_WHITE.serialize())}
#: The connector-state key OpenCTI's own import connectors keep: the end of the last successful run.
LAST_RUN_KEY = "latest_run_timestamp"
#: Failures that no later run fixes: the connector reports them and stops.
FATAL = (AuthenticationError,)


class ImportSink(Protocol):
    """Where an import run's output goes: OpenCTI (work, queue, connector state) or a test's memory."""

    #: pycti's API client, or None.
    opencti: Any
    artifacts: ArtifactStore

    def load_state(self) -> dict[str, Any]:
        """The connector state as the run starts (``{}`` when there is none)."""

    def save_state(self, state: dict[str, Any]) -> None:
        """Persist the connector state now.

        :raises ImportInterrupted: when it was reset from outside since the run loaded it.
        """

    def send_bundle(self, bundle: dict[str, Any]) -> None:
        """Deliver one bundle (opening the run's work first when needed)."""

    def stopping(self) -> bool:
        """True when the connector is shutting down."""


@dataclass
class RunOutcome:
    """What one run did, for the work's message and the logs."""

    message: str
    failed: bool
    bundles: int = 0
    objects: int = 0
    warnings: list[str] = field(default_factory=list)
    #: A failure no later run fixes (the key is rejected); the runtime stops after reporting it.
    fatal: BaseException | None = None


class ImportRun(ImportContext):
    """One plugin's part of one run (see :class:`~vtframework.context.ImportContext`)."""

    def __init__(
        self,
        app: App,
        client: Any,
        state: Any,
        sink: ImportSink,
        plugin: str,
        connector_state: dict[str, Any],
        log: logging.Logger,
    ) -> None:
        self.app = app
        self.plugin = plugin
        self.client = client
        self.state = state
        self.settings = app.settings
        self.log = log
        self.opencti = sink.opencti
        self.sink = sink
        self._connector_state = connector_state
        self._started_with = copy.deepcopy(connector_state)
        self._confidence = app.settings["connector.confidence_level"]
        self._pipeline = Pipeline(app, client, factory_kwargs={"confidence": self._confidence})
        self.bundles = 0
        self.objects = 0
        self._features_warned = False

    # -- progress ---------------------------------------------------------------------
    @property
    def checkpoint(self) -> dict[str, Any]:
        value = self._connector_state.get(self.plugin)
        return copy.deepcopy(value) if isinstance(value, dict) else {}

    @property
    def connector_state(self) -> dict[str, Any]:
        return copy.deepcopy(self._started_with)

    def save_checkpoint(self, value: Mapping[str, Any]) -> None:
        # A checkpoint that does not survive JSON would be lost at the first restart: fail now instead.
        self._connector_state[self.plugin] = json.loads(json.dumps(dict(value)))
        self.sink.save_state(self._connector_state)

    # -- output -------------------------------------------------------------------------
    def factory(self, markings: Iterable[str] = ()) -> StixFactory:
        return StixFactory(markings=markings, confidence=self._confidence)

    def send(self, objects: Iterable[Any], subject: str) -> int:
        items = [to_dict(obj) for obj in objects]
        if not items:
            return 0
        used = {ref for item in items for ref in item.get("object_marking_refs") or []}
        definitions = [_SPEC_TLP.get(ref) or TLP_MARKING_BY_ID[ref] for ref in sorted(used) if ref in TLP_MARKING_BY_ID]
        bundle = {"type": "bundle", "id": f"bundle--{uuid.uuid4()}",
                  "objects": dedupe([author_dict(), *definitions, *items])}
        self.sink.send_bundle(bundle)
        self.bundles += 1
        self.objects += len(bundle["objects"])
        self.log.debug("%s: %d STIX objects sent", subject, len(bundle["objects"]))
        return len(bundle["objects"])

    def enrich(
        self, observable: Observable, report: Mapping[str, Any], *, with_owner: bool = False
    ) -> list[dict[str, Any]]:
        if not with_owner and not self._features_warned:
            owners = set(self.app.host.owners.values())
            if not [p for p in self.app.host.implementers("vtf_stix_objects") if p not in owners]:
                # Said once a run: an option asking for feature plugins that are not there does nothing.
                self._features_warned = True
                self.warn(f"{self.plugin}: no loaded feature plugin (malware configurations and the like) adds "
                          "objects to a VirusTotal object; install or enable one, or turn the option off")
        result = self._pipeline.enrich(observable, report=report, with_owner=with_owner)
        for warning in result.warnings:
            self.warn(warning)
        if not result.ok:
            raise VTFrameworkError(result.message)
        return result.objects

    def store_sample(
        self, observable: Observable, *, max_size: int, description: str, name: str | None = None
    ) -> list[dict[str, Any]]:
        stored = store_sample(self.app, self.client, self.sink.artifacts, observable, max_size=max_size,
                              description=description, name=name, factory=self.factory(observable.markings))
        self.log.info("%s", stored.message)
        return stored.objects

    def stopping(self) -> bool:
        return self.sink.stopping()


def run_imports(app: App, client: Any, state: Any, sink: ImportSink,
                log: logging.Logger | None = None) -> RunOutcome:
    """One run: every plugin implementing ``vtf_import``, each in its own error boundary.

    Never raises for a plugin's failure: the outcome says what failed (and
    ``fatal`` holds a failure no later run fixes).
    """
    log = log or logging.getLogger("vtframework.import")
    connector_state = sink.load_state()
    plugins = app.host.implementers(HOOK)
    if not plugins:
        return RunOutcome("no loaded plugin imports anything (enable the notifications plugin)", failed=True)
    messages: list[str] = []
    outcome = RunOutcome("", failed=False)
    interrupted = False
    for plugin in plugins:
        run = ImportRun(app, client, state, sink, plugin, connector_state, log)
        try:
            result = app.host.call_plugin(plugin, HOOK, context=run, settings=app.settings)
            messages.append(str(result) if result else f"{plugin}: nothing new")
        except ImportInterrupted as exc:
            messages.append(f"{plugin}: {exc}")
            interrupted = True
        except (VTFrameworkError, PluginError) as exc:
            outcome.failed = True
            messages.append(f"{plugin} failed: {exc}")
            if isinstance(exc, FATAL):
                outcome.fatal = exc
        finally:
            outcome.bundles += run.bundles
            outcome.objects += run.objects
            outcome.warnings += run.warnings
        if outcome.fatal is not None or interrupted or sink.stopping():
            break
    if not outcome.failed and not interrupted:
        connector_state[LAST_RUN_KEY] = int(time.time())
        try:
            sink.save_state(connector_state)
        except ImportInterrupted as exc:
            messages.append(str(exc))
    outcome.message = "; ".join(messages)
    if outcome.warnings:
        outcome.message += f" ({len(outcome.warnings)} warning(s): {'; '.join(outcome.warnings[:5])}" + (
            "; …)" if len(outcome.warnings) > 5 else ")")
    return outcome
