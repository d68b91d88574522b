"""External imports in the core: the run, its checkpoints, its bundles; the preset and the schedule."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import types

import pytest
from pycti import Incident, StixSightingRelationship

from vtframework import AUTHOR_ID, TLP_MARKINGS, SQLiteState, StixFactory, build_app, hookimpl, open_client
from vtframework.errors import BadRequestError, ConfigError
from vtframework.host.presets import detect_preset
from vtframework.opencti.importer import run_period
from vtframework.pipeline.importing import LAST_RUN_KEY
from vtframework.testing import FakeVirusTotal, MemoryOpenCTI, assert_valid_bundle, import_offline

PRESET = "virustotal-livehunt-notifications"
AMBER = TLP_MARKINGS["TLP:AMBER"]["id"]


def plugin(**hooks):
    return types.SimpleNamespace(**{name: hookimpl(fn) for name, fn in hooks.items()})


def counting(context):
    """An import plugin that sends one Note per run and counts its runs in its checkpoint."""
    runs = context.checkpoint.get("runs", 0) + 1
    note = context.factory([AMBER]).note("count", f"run {runs}", [AUTHOR_ID])
    context.send([note], f"run {runs}")
    context.save_checkpoint({"runs": runs})
    return f"run {runs}"


@pytest.fixture
def run(tmp_path):
    state = SQLiteState(str(tmp_path / "state.sqlite3"))
    platform = MemoryOpenCTI()

    def go(*plugins, **env):
        # The enrichment preset: no built-in import plugin, only the test's.
        app = build_app("virustotal", env={"VTF_EXTERNAL_PLUGINS": "false", "VIRUSTOTAL_DETECT_QUOTA": "false", **env},
                        config_file=None, extra_plugins=list(plugins))
        with open_client(app, state) as client:
            return import_offline(app, client, state, platform)

    go.platform = platform
    yield go
    state.close()


def test_each_plugin_keeps_its_own_checkpoint_and_one_failure_spares_the_others(run):
    def failing(context):
        raise BadRequestError("no such listing", status=400, subject="the feed")

    first = run(("counter", plugin(vtf_import=counting)), ("broken", plugin(vtf_import=failing)))

    assert first.failed and "broken failed: the feed" in first.message and "run 1" in first.message
    assert run.platform.state["counter"] == {"runs": 1} and "broken" not in run.platform.state
    assert LAST_RUN_KEY not in run.platform.state  # a failed run is not a successful one
    (bundle,) = run.platform.bundles
    assert [o["type"] for o in bundle["objects"]] == ["identity", "marking-definition", "note"]
    assert_valid_bundle(bundle)

    second = run(("counter", plugin(vtf_import=counting)))
    assert not second.failed and second.message == "run 2"
    assert run.platform.state["counter"] == {"runs": 2}
    assert isinstance(run.platform.state[LAST_RUN_KEY], int)


def test_a_checkpoint_that_would_not_survive_a_restart_is_refused_at_once(run):
    def sloppy(context):
        context.save_checkpoint({"seen": {"a", "b"}})

    outcome = run(("sloppy", plugin(vtf_import=sloppy)))
    assert outcome.failed and "set is not JSON serializable" in outcome.message
    assert run.platform.state == {}


def test_a_state_reset_in_opencti_stops_the_run_without_failing_it(run):
    class ResetOpenCTI(MemoryOpenCTI):
        def send_bundle(self, bundle):
            super().send_bundle(bundle)
            self.reset_state()  # the analyst resets the state while the run sends

    run.platform.__class__ = ResetOpenCTI
    reached = []

    def two_steps(context):
        counting(context)
        reached.append("after the reset")

    outcome = run(("counter", plugin(vtf_import=two_steps)))
    assert not outcome.failed and "reset in OpenCTI" in outcome.message
    assert reached == [] and run.platform.state == {}


def test_no_import_plugin_is_a_clear_failure(run):
    outcome = run()
    assert outcome.failed and "no loaded plugin imports anything" in outcome.message


def test_the_original_services_environment_selects_the_notifications_connector():
    assert detect_preset({"VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_API_KEY": "k"}) == PRESET
    assert detect_preset({"CONNECTOR_TYPE": "EXTERNAL_IMPORT"}) == PRESET
    # The livehunt stream connector's variables stay the stream connector's.
    assert detect_preset({"VIRUSTOTAL_LIVEHUNT_TOKEN": "k"}) == "virustotal-livehunt"
    settings = build_app(PRESET, env={}, config_file=None).settings
    assert (settings["connector.type"], settings["connector.name"]) == ("EXTERNAL_IMPORT",
                                                                        "VirusTotal Livehunt Notifications")
    assert settings["connector.scope"] == ["StixFile", "Indicator", "Incident", "Domain-Name", "Url", "IPv4-Addr",
                                           "IPv6-Addr"]


@pytest.mark.parametrize("env, seconds", [
    ({}, 300),
    ({"CONNECTOR_DURATION_PERIOD": "PT1H"}, 3600),
    ({"CONNECTOR_DURATION_PERIOD": "0"}, 0),
    ({"VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_INTERVAL_SEC": "120"}, 120),
    ({"VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_INTERVAL_SEC": "120", "CONNECTOR_DURATION_PERIOD": "PT10M"}, 600),
])
def test_the_run_period_keeps_the_original_names(env, seconds):
    assert run_period(build_app(PRESET, env=env, config_file=None)) == seconds


def test_a_run_period_that_is_not_a_duration_names_its_variable():
    app = build_app(PRESET, env={"CONNECTOR_DURATION_PERIOD": "5 minutes"}, config_file=None)
    with pytest.raises(ConfigError, match="CONNECTOR_DURATION_PERIOD.*'5 minutes'.*ISO 8601"):
        run_period(app)


@pytest.fixture(scope="module")
def platform():
    """The user's OpenCTI (``run --check`` reads its version), of the version the installed pycti needs."""
    from vtframework.testing.fakeopencti import FakeOpenCTI

    with FakeOpenCTI() as fake:
        yield fake


def test_run_check_names_the_fourth_connector(tmp_path, platform):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "VTF_EXTERNAL_PLUGINS": "false",
           "OPENCTI_URL": platform.url, "OPENCTI_TOKEN": "5bd8e0ba-6a8a-4b8f-9b5c-0e6a2b1b1f9e",
           "VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_API_KEY": "k"}
    done = subprocess.run([sys.executable, "-m", "vtframework", "run", "--check"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("notifications connector (preset virustotal-livehunt-notifications)")
    assert "id 325cbb22-ee42-4898-9d99-302ca216671b" in done.stdout


def test_an_enrichment_of_a_report_in_hand_asks_virustotal_nothing(tmp_path):
    calls = []

    def feature(observable, report):
        calls.append(report["data"]["id"])
        return []

    # The file plugin and the feature under test only: the built-in features add notes of their own.
    app = build_app("virustotal", env={"VTF_PLUGINS": "file,feature", "VIRUSTOTAL_DETECT_QUOTA": "false"},
                    config_file=None, extra_plugins=[("feature", plugin(vtf_stix_objects=feature))])
    from vtframework import Pipeline, from_value

    with FakeVirusTotal() as vt:
        state = SQLiteState(str(tmp_path / "s.sqlite3"))
        with open_client(app, state, base_url=vt.base_url) as client:
            observable = from_value("a" * 64, "StixFile")
            report = {"data": {"type": "file", "id": "a" * 64, "attributes": {"sha256": "a" * 64}}}
            only_features = Pipeline(app, client).enrich(observable, report=report, with_owner=False)
            with_owner = Pipeline(app, client).enrich(observable, report=report)
        state.close()
        assert vt.requests == []
    assert only_features.ok and with_owner.ok and calls == ["a" * 64, "a" * 64]
    assert not any(o["type"] == "note" for o in only_features.objects)  # the file plugin did not run


def test_incidents_carry_the_id_opencti_computes_and_sightings_one_id_per_subject():
    factory = StixFactory(markings=[AMBER])
    moment = dt.datetime(2021, 3, 29, 13, 40, 54, tzinfo=dt.timezone.utc)
    incident = factory.incident(name="VT CyberGate file=843b", created=moment, incident_type="alert")
    assert incident.id == Incident.generate_id("VT CyberGate file=843b", "2021-03-29T13:40:54.000Z")
    later = moment + dt.timedelta(days=1)
    plain = factory.sighting(sighting_of="indicator--8e2e2d2b-17d4-4f0f-8a3c-5b1f8fa0bd3e",
                             where_sighted=[AUTHOR_ID], first_seen=moment, last_seen=later)
    assert plain.id == StixSightingRelationship.generate_id(
        "indicator--8e2e2d2b-17d4-4f0f-8a3c-5b1f8fa0bd3e", [AUTHOR_ID], "2021-03-29T13:40:54.000Z",
        "2021-03-30T13:40:54.000Z")
    kwargs = dict(sighting_of="indicator--8e2e2d2b-17d4-4f0f-8a3c-5b1f8fa0bd3e", where_sighted=[AUTHOR_ID])
    one = factory.sighting(first_seen=moment, last_seen=moment, subject="file:843b", **kwargs)
    two = factory.sighting(first_seen=later, last_seen=later, count=2, subject="file:843b", **kwargs)
    other = factory.sighting(first_seen=moment, last_seen=moment, subject="file:0000", **kwargs)
    assert one.id == two.id != other.id


ORIGINAL_CONFIG = """
opencti:
  url: 'http://localhost:8080'
  token: '5bd8e0ba-6a8a-4b8f-9b5c-0e6a2b1b1f9e'
connector:
  id: 'virustotal_livehunt_notifications'
  type: 'EXTERNAL_IMPORT'
  name: 'VirusTotal Livehunt Notifications'
  scope: 'StixFile,Indicator,Incident'
  create_indicator: False
  log_level: 'info'
virustotal_livehunt_notifications:
  api_key: 'my-livehunt-key'
  interval_sec: 300
  create_alert: True
  extensions: 'exe,dll'
  min_file_size: 1000
  max_file_size: 52428800
  max_old_days: 7
  min_positives: 5
  create_file: True
  upload_artifact: False
  create_yara_rule: True
"""


def test_the_original_config_yml_is_read_and_names_its_connector(tmp_path, platform):
    (tmp_path / "config.yml").write_text(ORIGINAL_CONFIG)
    app = build_app(PRESET, env={}, cwd=tmp_path)
    assert app.api_key == "my-livehunt-key" and run_period(app) == 300
    from vtframework_plugins.notifications.settings import Options

    options = Options.from_settings(app.settings)
    assert (options.max_age_days, options.min_positives, sorted(options.extensions)) == (7, 5, ["dll", "exe"])
    # The platform of config.yml stands for the user's: the environment points at the fake one.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "VTF_EXTERNAL_PLUGINS": "false",
           "OPENCTI_URL": platform.url}
    done = subprocess.run([sys.executable, "-m", "vtframework", "run", "--check"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("notifications connector") and "virustotal_livehunt_notifications" in done.stdout
