"""``vtframework run notifications``: an OpenCTI external-import connector on pycti's scheduler.

pycti runs the schedule: a first run at start, then one every
``CONNECTOR_DURATION_PERIOD`` (a run is skipped while the connector's queue in
OpenCTI holds more than ``CONNECTOR_QUEUE_THRESHOLD`` MB), or a single run with
``CONNECTOR_RUN_AND_TERMINATE=true`` or a period of 0. Each run is one OpenCTI
work, opened when the first bundle goes out (or to report a failure) and
closed with what the run did. Progress is kept in the connector's state in
OpenCTI and pushed there the moment a plugin saves it, so a crash between two
items repeats at most the one in flight; a state reset from OpenCTI's UI
stops the run in progress, and the next run starts from the reset state.

Uses only pycti calls present on both the 6.x and 7.x lines
(``schedule_process``, ``get_state``/``set_state``/``force_ping``,
``api.work.initiate_work``/``to_processed``, ``send_stix2_bundle``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import signal
import threading
from typing import Any

from vtframework.errors import ConfigError, ImportInterrupted
from vtframework.host.app import App
from vtframework.host.services import open_app_state, open_client
from vtframework.opencti.artifacts import OpenCTIArtifacts
from vtframework.opencti.helper import failure_reason, helper_config, start_helper
from vtframework.opencti.metrics import Metrics
from vtframework.pipeline.importing import RunOutcome, run_imports

log = logging.getLogger("vtframework.import")
RESET = "the connector state was reset in OpenCTI: this run stops here, the next one starts from the reset state"


def run_period(app: App) -> float:
    """Seconds between two runs: ``CONNECTOR_DURATION_PERIOD``, else the preset's legacy interval key.

    :raises ConfigError: naming the key when the value is not an ISO 8601 duration.
    """
    settings = app.settings
    entry = settings.entry("connector.duration_period")
    legacy = app.preset.interval_path if app.preset else None
    if legacy and entry.source in ("default", "preset") and settings[legacy] is not None:
        return float(settings[legacy])
    text = str(entry.value or "").strip()
    if text == "0":
        return 0.0
    from pydantic import TypeAdapter, ValidationError

    try:
        seconds = TypeAdapter(dt.timedelta).validate_python(text).total_seconds()
    except ValidationError:
        raise ConfigError(
            f"invalid {entry.key.env_name} (connector.duration_period): got {text!r}, expected an ISO 8601 "
            "duration such as PT5M, PT1H or P1D (0 runs once)",
            key="connector.duration_period",
        ) from None
    if seconds < 0:
        raise ConfigError(f"{entry.key.env_name} must not be negative (got {text!r})", key="connector.duration_period")
    return seconds


class OpenCTISink:
    """One run's way into OpenCTI: its work, the queue, the connector state, the Artifacts."""

    def __init__(self, helper: Any, name: str, stop: threading.Event) -> None:
        self.helper = helper
        self.opencti = helper.api
        self.artifacts = OpenCTIArtifacts(helper)
        self.name = name
        self.work_id: str | None = None
        self._stop = stop
        self._written: Any = None

    def load_state(self) -> dict[str, Any]:
        state = self.helper.get_state() or {}
        self._written = _normal(state)
        return dict(state)

    def save_state(self, state: dict[str, Any]) -> None:
        # pycti's ping thread replaces the local state with OpenCTI's when they differ: a reset from the UI.
        if _normal(self.helper.get_state() or {}) != self._written:
            raise ImportInterrupted(RESET)
        self.helper.set_state(state)
        self._written = _normal(state)
        # pycti only tells OpenCTI on its 40-second ping: push it now, so a crash keeps this progress. Not with
        # force_ping(), which answers a pending reset by sending the old state again: a reset must win.
        answer = self.helper.api.connector.ping(self.helper.connector_id, state, self.helper.connector_info.all_details)
        remote = answer.get("connector_state") if isinstance(answer, dict) else None
        remote_state = json.loads(remote) if remote else None
        if _normal(remote_state) != self._written:
            self.helper.set_state(remote_state)
            self._written = _normal(remote_state)
            raise ImportInterrupted(RESET)

    def send_bundle(self, bundle: dict[str, Any]) -> None:
        self._open_work()
        # No cleanup_inconsistent_bundle: a Sighting's indicator lives in OpenCTI, not in the bundle.
        self.helper.send_stix2_bundle(json.dumps(bundle), work_id=self.work_id)
        self.helper.metric.inc("record_send", len(bundle["objects"]))

    def stopping(self) -> bool:
        return self._stop.is_set()

    def finish(self, outcome: RunOutcome) -> None:
        """Close the run's work; a failed run gets a work even when it sent nothing, so it shows in OpenCTI."""
        if self.work_id is None and not outcome.failed:
            return
        self._open_work()
        self.helper.api.work.to_processed(self.work_id, outcome.message, outcome.failed)

    def _open_work(self) -> None:
        if self.work_id is None:
            started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
            self.work_id = self.helper.api.work.initiate_work(self.helper.connect_id, f"{self.name} run @ {started}")


def _normal(state: Any) -> Any:
    return json.loads(json.dumps(state or {}))


class ImportConnector:
    """``vtframework run notifications``: every ``vtf_import`` plugin, once per scheduled run."""

    def __init__(self, app: App, helper: Any = None) -> None:
        self.app = app
        self.period = run_period(app)
        if helper is None:
            config = helper_config(app)
            # pycti decides from the period whether to ping; give it the one actually used.
            config["connector"]["duration_period"] = "0" if self.period == 0 else f"PT{int(self.period)}S"
            helper = start_helper(app, config)
        self.helper = helper
        self.state = open_app_state(app)
        self.client = open_client(app, self.state)
        self.metrics = Metrics(bool(app.settings["connector.expose_metrics"]))
        self._stop = threading.Event()
        self._running = False

    def start(self) -> None:
        self.helper.connector_logger.info(
            "vtframework import connector started",
            {"plugins": ",".join(self.app.host.loaded), "period_seconds": self.period},
        )
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._terminate)
        self.helper.schedule_process(message_callback=self.run, duration_period=self.period)

    def _terminate(self, _signum: int, _frame: Any) -> None:
        """SIGTERM (docker stop): a run in progress ends after its current item; between runs, stop now."""
        self._stop.set()
        if not self._running:
            raise SystemExit(0)

    def run(self) -> None:
        """One scheduled run (pycti calls it); only a failure no later run fixes is raised."""
        self._running = True
        self.helper.metric.inc("run_count")
        self.helper.metric.state("running")
        sink = OpenCTISink(self.helper, str(self.app.settings["connector.name"]), self._stop)
        try:
            outcome = run_imports(self.app, self.client, self.state, sink, log)
            sink.finish(outcome)
            if outcome.failed:
                self.helper.metric.inc("error_count")
                self.metrics.failure(failure_reason(outcome.message))
                self.helper.connector_logger.error(outcome.message)
            elif outcome.warnings:
                self.helper.connector_logger.warning(outcome.message)
            else:
                self.helper.connector_logger.info(outcome.message)
            if outcome.fatal is not None:
                raise outcome.fatal
        finally:
            self.metrics.client_stats(self.client.stats)
            self.helper.metric.state("idle")
            self._running = False
        if self._stop.is_set():
            raise SystemExit(0)
