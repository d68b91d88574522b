"""The livehunt plugin against the fake VirusTotal: what an analyst sees in their Livehunt rulesets.

Events are built like OpenCTI's live stream data (STIX indicator plus OpenCTI's
extension) and handed to the plugin's ``vtf_stream_event`` hook directly.
"""

from __future__ import annotations

import itertools
import json
import logging
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from vtframework import (
    STIX_EXT_OCTI,
    TLP_MARKINGS,
    ClientConfig,
    SQLiteState,
    StreamContext,
    StreamEvent,
    VTClient,
    build_app,
)
from vtframework.errors import TransientError
from vtframework.testing import FakeClock

from vtframework_plugins.livehunt import vtf_stream_event
from vtframework_plugins.livehunt.handler import NS
from vtframework_plugins.livehunt.ruleset import indicator_of, token

HUNTING = "/api/v3/intelligence/hunting_rulesets"
RED = TLP_MARKINGS["TLP:RED"]["id"]
AMBER = TLP_MARKINGS["TLP:AMBER"]["id"]
GREEN = TLP_MARKINGS["TLP:GREEN"]["id"]

EMOTET = """rule emotet_loader {
  meta:
    author = "CTI team"
  strings:
    $a = "EmotetLoader" ascii wide
    $b = { 4D 5A 90 00 }
  condition:
    all of them
}"""
EMOTET_V2 = EMOTET.replace("all of them", "$a and $b at 0")
QAKBOT = 'rule qakbot_dll {\n  strings:\n    $s = "qbot" nocase\n  condition:\n    $s\n}'
UNBALANCED = 'rule broken {\n  strings:\n    $s = "x"\n  condition:\n    $s\n'

ENV = {
    "VIRUSTOTAL_LIVEHUNT_NOTIFICATION_EMAILS": "soc@example.com, hunt@example.com",
    "VIRUSTOTAL_LIVEHUNT_SHARED_OWNERS": '["alice", "group:threat-intel"]',
    "VIRUSTOTAL_LIVEHUNT_LIMIT": "50",
}


# -- building OpenCTI stream events --------------------------------------------------
_positions = itertools.count(1)
_edits = itertools.count(1)


def yara_indicator(
    name="Emotet loader", pattern=EMOTET, detection=True, ident=None, markings=(GREEN,), flat=False, **extra
):
    """An indicator as OpenCTI's live stream sends it."""
    data = {
        "id": ident or f"indicator--{uuid.uuid4()}",
        "spec_version": "2.1",
        "type": "indicator",
        "created": "2024-05-02T08:00:00.000Z",
        "modified": "2024-05-02T08:00:00.000Z",
        "name": name,
        "pattern": pattern,
        "pattern_type": "yara",
        "valid_from": "2024-05-02T08:00:00.000Z",
        "object_marking_refs": list(markings),
        "extensions": {
            STIX_EXT_OCTI: {
                "extension_type": "property-extension",
                "id": str(uuid.uuid4()),
                "type": "Indicator",
                "created_at": "2024-05-02T08:00:00.000Z",
                "updated_at": "2024-05-02T08:00:00.000Z",
                "score": 50,
                "main_observable_type": "StixFile",
                **({} if flat else {"detection": detection}),
            }
        },
        **extra,
    }
    if flat:
        data["x_opencti_detection"] = detection
    return data


def changed(data, **fields):
    """The same indicator after an edit in OpenCTI."""
    new = json.loads(json.dumps(data))
    detection = fields.pop("detection", None)
    if detection is not None:
        new["extensions"][STIX_EXT_OCTI]["detection"] = detection
    new.update(fields)
    # Strictly later than every earlier edit, however many tests ran before (a wrap would make it older).
    edited = datetime(2024, 5, 3, 9, tzinfo=timezone.utc) + timedelta(seconds=next(_edits))
    new["modified"] = edited.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return new


def event(kind, data, **context):
    message = {"create": "creates", "update": "updates", "delete": "deletes", "merge": "merges"}[kind]
    if kind == "update" and not context:
        context = {"patch": [{"op": "replace", "path": "/modified", "value": data.get("modified")}],
                   "reverse_patch": []}
    return StreamEvent(type=kind, id=f"{1714636800000 + next(_positions)}-0", data=data, context=context,
                       message=f"{message} a Indicator `{data.get('name')}`")


# -- fixtures ------------------------------------------------------------------------
def make_settings(**env):
    return build_app("virustotal-livehunt", env={**ENV, **env}, config_file=None).settings


def vt_client(fake, state):
    config = ClientConfig(api_key="test-key", base_url=fake.base_url, detect_quota=False,
                          requests_per_minute=10_000, requests_per_day=100_000, max_retries=2)
    return VTClient(config, state, clock=FakeClock())


class Runtime:
    """What the stream runtime hands the plugin, plus helpers to look at the fake VirusTotal."""

    def __init__(self, fake, state, settings=None):
        self.fake, self.state = fake, state
        self.settings = settings or make_settings()
        self.client = vt_client(fake, state)
        self.context = StreamContext(self.client, state, self.settings, logging.getLogger("test.livehunt"))

    def send(self, *events):
        return [vtf_stream_event(event=e, context=self.context, settings=self.settings) for e in events]

    def calls(self):
        return [(r.method, r.path[len(HUNTING):] or "/") for r in self.fake.requests]

    def rulesets(self):
        return self.fake.hunting_rulesets

    def only_ruleset(self):
        (ruleset,) = self.rulesets().values()
        return ruleset


@pytest.fixture
def rt(vt, store):
    runtime = Runtime(vt, store)
    yield runtime
    runtime.client.close()


def methods(calls):
    return [method for method, _ in calls]


def ruleset_of(state, indicator_id):
    """The ruleset id the state holds for an indicator (None: none, or only the version applied)."""
    return (state.kv_get(NS, indicator_id) or {}).get("ruleset_id")


# -- the seed's event table ------------------------------------------------------------
def test_create_with_detection_makes_a_shared_enabled_ruleset(rt):
    data = yara_indicator()
    (message,) = rt.send(event("create", data))

    ruleset = rt.only_ruleset()
    attrs = ruleset["attributes"]
    assert attrs["enabled"] is True
    assert attrs["limit"] == 50
    assert attrs["notification_emails"] == ["soc@example.com", "hunt@example.com"]
    assert attrs["name"] == f"Emotet loader [{token(data['id'])[3:11]}]"
    assert attrs["rules"].endswith(EMOTET)
    assert attrs["rule_names"] == ["emotet_loader"]
    assert indicator_of(attrs["rules"]) == data["id"]
    assert ruleset["editors"] == [{"type": "user", "id": "alice"}, {"type": "group", "id": "threat-intel"}]
    assert ruleset_of(rt.state, data["id"]) == ruleset["id"]
    assert ruleset["id"] in message and data["id"] in message
    assert "PATCH" not in methods(rt.calls()) and "DELETE" not in methods(rt.calls())


def test_owner_that_virustotal_does_not_know_does_not_stop_the_ruleset(rt, caplog):
    first_id = "5551558908215296"  # the fake's first ruleset id
    path = f"/intelligence/hunting_rulesets/{first_id}/relationships/editors"
    rt.fake.add_route("POST", path, 404, {"error": {"code": "NotFoundError", "message": 'User "alice" not found'}})
    with caplog.at_level(logging.WARNING, logger="test.livehunt"):
        rt.send(event("create", yara_indicator()))
    assert rt.only_ruleset()["id"] == first_id
    assert 'User "alice" not found' in caplog.text
    assert ruleset_of(rt.state, rt.only_ruleset()["attributes"]["rules"].split()[2]) == first_id


def test_editors_answer_without_a_body_counts_as_shared(rt):
    rt.fake.add_route("POST", "/intelligence/hunting_rulesets/5551558908215296/relationships/editors", 200, b"")
    data = yara_indicator()
    rt.send(event("create", data))
    assert (rt.state.kv_get(NS, data["id"]) or {})["editors"] == ["alice", "group:threat-intel"]


def test_create_with_detection_false_does_nothing(rt):
    assert rt.send(event("create", yara_indicator(detection=False))) == [None]
    assert rt.fake.requests == []


def test_flat_detection_flag_is_read_too(rt):
    rt.send(event("create", yara_indicator(flat=True)))
    assert len(rt.rulesets()) == 1


def test_update_to_detection_true_creates_the_missing_ruleset(rt):
    data = yara_indicator(detection=False)
    rt.send(event("create", data))
    rt.send(event("update", changed(data, detection=True)))
    assert rt.only_ruleset()["attributes"]["enabled"] is True
    assert ("POST", "/") in rt.calls()


def test_changed_rule_is_patched_in_place(rt):
    data = yara_indicator()
    rt.send(event("create", data))
    before = rt.only_ruleset()
    rt.fake.clear_log()

    rt.send(event("update", changed(data, pattern=EMOTET_V2),
                  patch=[{"op": "replace", "path": "/pattern", "value": EMOTET_V2}]))

    after = rt.only_ruleset()
    assert after["id"] == before["id"]  # notification history and editors stay with the id
    assert after["attributes"]["rules"].endswith(EMOTET_V2)
    assert after["editors"] == before["editors"]
    (request,) = rt.fake.requests
    assert (request.method, request.path) == ("PATCH", f"{HUNTING}/{before['id']}")
    assert json.loads(request.body)["data"]["attributes"].keys() == {"rules"}


def test_update_that_changes_nothing_for_the_ruleset_makes_no_request(rt):
    data = yara_indicator()
    rt.send(event("create", data))
    rt.fake.clear_log()
    # A label, a score decay, a description: nothing the ruleset carries.
    assert rt.send(event("update", changed(data, description="seen in the May campaign"))) == [None]
    assert rt.fake.requests == []


def test_renaming_the_indicator_renames_the_ruleset(rt):
    data = yara_indicator()
    rt.send(event("create", data))
    ruleset_id = rt.only_ruleset()["id"]
    rt.fake.clear_log()

    rt.send(event("update", changed(data, name="Emotet epoch 5 loader")))

    assert rt.calls() == [("PATCH", f"/{ruleset_id}")]
    assert rt.only_ruleset()["attributes"]["name"].startswith("Emotet epoch 5 loader [")


def test_update_to_detection_false_deletes_the_ruleset(rt):
    data = yara_indicator()
    rt.send(event("create", data))
    ruleset_id = rt.only_ruleset()["id"]
    rt.fake.clear_log()

    (message,) = rt.send(event("update", changed(data, detection=False)))

    assert rt.calls() == [("DELETE", f"/{ruleset_id}")]
    assert rt.rulesets() == {}
    assert ruleset_of(rt.state, data["id"]) is None
    assert "detection is off" in message


def test_update_to_detection_false_without_ruleset_does_nothing(rt):
    assert rt.send(event("update", yara_indicator(detection=False))) == [None]
    assert rt.fake.requests == []


def test_disable_mode_keeps_the_ruleset_id_across_detection_off_and_on(vt, sqlite_state):
    rt = Runtime(vt, sqlite_state, make_settings(VIRUSTOTAL_LIVEHUNT_ON_DETECTION_FALSE="disable"))
    data = yara_indicator()
    rt.send(event("create", data))
    ruleset_id = rt.only_ruleset()["id"]

    rt.send(event("update", changed(data, detection=False)))
    assert rt.only_ruleset()["attributes"]["enabled"] is False
    rt.send(event("update", changed(data, detection=True)))

    assert rt.only_ruleset()["id"] == ruleset_id
    assert rt.only_ruleset()["attributes"]["enabled"] is True
    assert "DELETE" not in methods(rt.calls())


def test_deleting_the_indicator_deletes_its_ruleset(rt):
    data = yara_indicator()
    rt.send(event("create", data))
    rt.send(event("delete", data))
    assert rt.rulesets() == {}
    assert ruleset_of(rt.state, data["id"]) is None


def test_delete_events_are_ignored_when_listening_to_deletes_is_off(vt, sqlite_state):
    rt = Runtime(vt, sqlite_state, make_settings(CONNECTOR_LIVE_STREAM_LISTEN_DELETE="false"))
    data = yara_indicator()
    rt.send(event("create", data))
    rt.fake.clear_log()
    assert rt.send(event("delete", data)) == [None]
    assert rt.fake.requests == [] and len(rt.rulesets()) == 1


def test_delete_finds_the_ruleset_in_virustotal_when_the_state_lost_it(vt, sqlite_state, tmp_path):
    data = yara_indicator()
    Runtime(vt, sqlite_state).send(event("create", data))
    fresh = SQLiteState(str(tmp_path / "fresh.sqlite3"))
    Runtime(vt, fresh).send(event("delete", data))
    assert vt.hunting_rulesets == {}
    fresh.close()


def test_merge_deletes_the_absorbed_indicators_ruleset_and_updates_the_survivor(rt):
    keep = yara_indicator(name="Emotet loader")
    gone = yara_indicator(name="Emotet loader (dup)", pattern=QAKBOT)
    rt.send(event("create", keep), event("create", gone))
    gone_ruleset = ruleset_of(rt.state, gone["id"])

    merged = changed(keep, pattern=EMOTET_V2)
    rt.send(event("merge", merged, sources=[gone], deletions=[]))

    (ruleset,) = rt.rulesets().values()
    assert ruleset["id"] != gone_ruleset
    assert ruleset["attributes"]["rules"].endswith(EMOTET_V2)
    assert ruleset_of(rt.state, gone["id"]) is None


# -- idempotence, restarts, replicas ------------------------------------------------------
def stream():
    first, second = yara_indicator(), yara_indicator(name="Qakbot DLL", pattern=QAKBOT)
    off = yara_indicator(name="Test rule", pattern=QAKBOT.replace("qakbot_dll", "test_rule"), detection=False)
    return [
        event("create", first),
        event("create", second),
        event("create", off),
        event("update", changed(first, pattern=EMOTET_V2)),
        event("update", changed(second, name="Qakbot DLL v2")),
        event("update", changed(off, detection=True)),
        event("update", changed(changed(off, detection=True), detection=False)),
    ]


def test_replaying_the_stream_leaves_virustotal_unchanged(rt):
    events = stream()
    rt.send(*events)
    before = rt.rulesets()
    assert len(before) == 2
    rt.fake.clear_log()

    # Twice: older versions are recognised and skipped, the latest ones change nothing.
    rt.send(*events)
    rt.send(*events)

    assert rt.fake.requests == []
    assert rt.rulesets() == before


def latest_versions(events):
    """What OpenCTI sends when a stream starts over (recovery): each object once, as it is now."""
    latest = {}
    for e in events:
        latest[e.data["id"]] = e.data
    return [event("create", data) for data in latest.values()]


def test_restart_with_a_lost_state_adopts_instead_of_duplicating(vt, store, tmp_path):
    events = stream()
    Runtime(vt, store).send(*events)
    before = vt.hunting_rulesets
    empty = SQLiteState(str(tmp_path / "empty.sqlite3"))
    vt.clear_log()
    Runtime(vt, empty).send(*latest_versions(events))

    assert {r.method for r in vt.requests} == {"GET", "POST"}  # lookups, and the owners shared again
    assert not any(r.method == "POST" and r.path == HUNTING for r in vt.requests)
    assert {k: v["attributes"] for k, v in vt.hunting_rulesets.items()} == {
        k: v["attributes"] for k, v in before.items()}
    assert {e["ruleset_id"] for e in empty.kv_items(NS).values() if e["ruleset_id"]} == before.keys()
    empty.close()


class FailsOnce:
    """A state whose first write fails, as when the process dies right after VirusTotal answered."""

    def __init__(self, inner):
        self.inner, self.failed = inner, False

    def kv_set(self, ns, key, value):
        if not self.failed:
            self.failed = True
            raise OSError("disk full")
        self.inner.kv_set(ns, key, value)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_crash_between_create_and_state_save_does_not_duplicate(vt, store):
    data = yara_indicator()
    crashing = Runtime(vt, FailsOnce(store))
    with pytest.raises(OSError):
        crashing.send(event("create", data))
    assert len(vt.hunting_rulesets) == 1
    assert ruleset_of(store, data["id"]) is None

    # Restart: the stream redelivers the event the crash interrupted.
    restarted = Runtime(vt, store)
    restarted.send(event("create", data))

    (ruleset,) = vt.hunting_rulesets.values()
    assert ruleset_of(store, data["id"]) == ruleset["id"]
    assert [(r.method, r.path) for r in vt.requests].count(("POST", HUNTING)) == 1
    assert ruleset["editors"] == [{"type": "user", "id": "alice"}, {"type": "group", "id": "threat-intel"}]


class RacingClient:
    """A client whose first ruleset POST lets another replica handle the same event first."""

    def __init__(self, inner, other):
        self.inner, self.other = inner, other

    def post(self, path, **kw):
        if self.other is not None and path.endswith("hunting_rulesets"):
            other, self.other = self.other, None
            other()
        return self.inner.post(path, **kw)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.mark.services
def test_two_replicas_racing_on_one_event_end_with_one_ruleset(vt, sqlite_state, redis_state):
    data = yara_indicator()
    a, b = Runtime(vt, sqlite_state), Runtime(vt, redis_state)
    b.context.client = RacingClient(b.client, lambda: a.send(event("create", data)))

    b.send(event("create", data))

    (ruleset,) = vt.hunting_rulesets.values()
    assert ruleset_of(sqlite_state, data["id"]) == ruleset["id"]
    assert ruleset_of(redis_state, data["id"]) == ruleset["id"]


def test_two_indicators_with_the_same_name_get_two_rulesets(rt):
    one, two = yara_indicator(name="APT29 dropper"), yara_indicator(name="APT29 dropper", pattern=QAKBOT)
    rt.send(event("create", one), event("create", two))
    names = sorted(r["attributes"]["name"] for r in rt.rulesets().values())
    assert len(names) == 2 and names[0] != names[1]
    assert all(name.startswith("APT29 dropper [") for name in names)
    assert ruleset_of(rt.state, one["id"]) != ruleset_of(rt.state, two["id"])

    rt.send(event("delete", one))
    (left,) = rt.rulesets().values()
    assert indicator_of(left["attributes"]["rules"]) == two["id"]


def test_recreates_a_ruleset_someone_deleted_in_virustotal(rt):
    data = yara_indicator()
    rt.send(event("create", data))
    old_id = rt.only_ruleset()["id"]
    rt.client.delete(f"/intelligence/hunting_rulesets/{old_id}")

    rt.send(event("update", changed(data, pattern=EMOTET_V2)))

    ruleset = rt.only_ruleset()
    assert ruleset["id"] != old_id and ruleset["attributes"]["rules"].endswith(EMOTET_V2)


# -- bad input and failures ---------------------------------------------------------------
def test_rejected_rule_is_reported_and_the_stream_goes_on(rt, caplog):
    bad, good = yara_indicator(name="Broken", pattern=UNBALANCED), yara_indicator()
    with caplog.at_level(logging.WARNING, logger="test.livehunt"):
        rejected, created = rt.send(event("create", bad), event("create", good))

    assert bad["id"] in rejected and "expecting '}'" in rejected
    assert bad["id"] in caplog.text and "expecting '}'" in caplog.text
    assert "created" in created
    assert indicator_of(rt.only_ruleset()["attributes"]["rules"]) == good["id"]
    assert ruleset_of(rt.state, bad["id"]) is None


def test_rejected_change_keeps_the_running_ruleset(rt):
    data = yara_indicator()
    rt.send(event("create", data))
    (message,) = rt.send(event("update", changed(data, pattern="condition: true")))
    assert "rejected" in message
    assert rt.only_ruleset()["attributes"]["rules"].endswith(EMOTET)


@pytest.mark.parametrize("broken", [{"pattern": ""}, {"id": None}])
def test_malformed_event_is_skipped_with_a_message(rt, broken):
    data = {**yara_indicator(), **broken}
    (message,) = rt.send(event("create", data))
    assert "skipped" in message
    assert rt.fake.requests == []


@pytest.mark.parametrize(
    "data",
    [
        {"type": "file", "id": "file--0bc9ed9f-7b31-5a37-a83b-4eb50a4a4f72", "name": "x.exe"},
        {**yara_indicator(), "pattern_type": "stix", "pattern": "[file:name = 'x.exe']"},
    ],
)
def test_events_that_are_not_yara_indicators_are_ignored(rt, data):
    assert rt.send(event("create", data), event("delete", data)) == [None, None]
    assert rt.fake.requests == []


def test_transient_failure_that_persists_is_raised_for_the_runtime(rt):
    rt.fake.inject("503", count=5, path_prefix="/intelligence/hunting_rulesets")
    with pytest.raises(TransientError):
        rt.send(event("create", yara_indicator()))


# -- TLP egress --------------------------------------------------------------------------
def test_tlp_red_indicator_is_never_sent(rt, caplog):
    data = yara_indicator(markings=(RED,))
    with caplog.at_level(logging.WARNING, logger="test.livehunt"):
        (message,) = rt.send(event("create", data))
    assert rt.fake.requests == []
    assert data["id"] in caplog.text and "TLP:RED" in caplog.text and "VIRUSTOTAL_MAX_TLP=TLP:AMBER" in message


def test_indicator_that_became_tlp_red_loses_its_ruleset(rt):
    data = yara_indicator(markings=(AMBER,))
    rt.send(event("create", data))
    ruleset_id = rt.only_ruleset()["id"]
    rt.fake.clear_log()

    (message,) = rt.send(event("update", changed(data, object_marking_refs=[AMBER, RED])))

    assert rt.calls() == [("DELETE", f"/{ruleset_id}")]
    assert "was deleted" in message


def test_max_tlp_setting_is_respected(vt, sqlite_state):
    rt = Runtime(vt, sqlite_state, make_settings(VIRUSTOTAL_MAX_TLP="TLP:GREEN"))
    rt.send(event("create", yara_indicator(markings=(AMBER,))))
    assert vt.requests == []


def test_replayed_rejected_rule_is_not_sent_again(rt):
    data = yara_indicator(pattern=UNBALANCED)
    rt.send(event("create", data))
    rt.send(event("create", data))
    assert methods(rt.calls()) == ["GET", "POST"]  # a marker lookup, one refused attempt; the replay spends nothing
    fixed = changed(data, pattern=EMOTET)
    rt.send(event("update", fixed))
    assert rt.only_ruleset()["attributes"]["rules"].endswith(EMOTET)


def test_replayed_last_update_of_a_deleted_indicator_does_not_recreate_it(rt):
    data = yara_indicator()
    edited = changed(data, pattern=EMOTET_V2)
    rt.send(event("create", data), event("update", edited), event("delete", edited))
    assert rt.rulesets() == {}
    before = len(rt.calls())
    rt.send(event("create", data), event("update", edited), event("delete", edited))
    assert rt.rulesets() == {}
    assert rt.calls()[before:] == []
