"""``vtframework livehunt sync``: the drift between OpenCTI and VirusTotal, shown and fixed."""

from __future__ import annotations

import json

import pytest
from test_livehunt import (
    AMBER,
    EMOTET,
    EMOTET_V2,
    QAKBOT,
    RED,
    Runtime,
    changed,
    event,
    make_settings,
    ruleset_of,
    vt_client,
    yara_indicator,
)

from vtframework import build_app, cli

from vtframework_plugins.livehunt import command
from vtframework_plugins.livehunt.handler import NS
from vtframework_plugins.livehunt.indicator import parse_indicator
from vtframework_plugins.livehunt.ruleset import desired_attributes, indicator_of, marked_rules
from vtframework_plugins.livehunt.sync import apply, compare
from vtframework_plugins.livehunt.vtapi import HuntingRulesets

FOREIGN = 'rule someone_elses {\n  strings:\n    $s = "mine"\n  condition:\n    $s\n}'


def ours(data, settings, **override):
    """The attributes vtframework gives the ruleset of ``data``, with ``override`` applied."""
    return {**desired_attributes(parse_indicator(data), settings), **override}


class Drifted:
    """A set of indicators and rulesets covering every kind of drift."""

    def __init__(self, settings):
        self.in_sync = yara_indicator(name="In sync")
        self.missing = yara_indicator(name="Missing", pattern=QAKBOT)
        self.new_rule = yara_indicator(name="Rule changed", pattern=EMOTET_V2)
        self.renamed = yara_indicator(name="Renamed in OpenCTI")
        self.off = yara_indicator(name="Detection off", detection=False)
        self.red = yara_indicator(name="Now red", markings=(AMBER, RED))
        self.doubled = yara_indicator(name="Doubled")
        self.legacy = yara_indicator(name="Made by the original connector", pattern=QAKBOT)
        self.deleted_id = "indicator--0b1c3a52-93a4-4d7b-9a1e-1f0c0f8a7e11"
        self.indicators = [self.in_sync, self.missing, self.new_rule, self.renamed, self.off, self.red,
                           self.doubled, self.legacy]
        s = settings
        self.rulesets = [  # (name, rules, extra attributes) as they sit in VirusTotal
            ours(self.in_sync, s),
            ours(self.new_rule, s, rules=marked_rules(self.new_rule["id"], EMOTET)),
            ours(self.renamed, s, name="Old name [00000000]"),
            ours(self.off, s),
            ours(self.red, s),
            ours(self.doubled, s),
            ours(self.doubled, s),
            {"name": "Deleted one", "rules": marked_rules(self.deleted_id, EMOTET), "enabled": True},
            {"name": "Made by the original connector", "rules": QAKBOT, "enabled": True, "limit": 100},
            {"name": "Someone else's", "rules": FOREIGN, "enabled": True},
        ]


def as_vt_objects(rulesets):
    return [{"type": "hunting_ruleset", "id": str(5551558908215296 + i), "attributes": attrs}
            for i, attrs in enumerate(rulesets)]


def test_compare_finds_every_kind_of_drift():
    settings = make_settings()
    d = Drifted(settings)
    comparison = compare(d.indicators, as_vt_objects(d.rulesets), settings)

    found = {(drift.kind, drift.indicator_id): drift for drift in comparison.drifts}
    assert set(found) == {
        ("missing", d.missing["id"]),
        ("legacy", d.legacy["id"]),
        ("differs", d.new_rule["id"]),
        ("differs", d.renamed["id"]),
        ("duplicate", d.doubled["id"]),
        ("orphaned", d.off["id"]),
        ("orphaned", d.red["id"]),
        ("orphaned", d.deleted_id),
    }
    assert found[("differs", d.new_rule["id"])].changes.keys() == {"rules"}
    assert found[("differs", d.renamed["id"])].changes == {"name": ours(d.renamed, settings)["name"]}
    assert found[("duplicate", d.doubled["id"])].ruleset_id == "5551558908215302"  # the later id goes
    assert "TLP:RED" in found[("orphaned", d.red["id"])].detail
    assert "detection is off" in found[("orphaned", d.off["id"])].detail
    assert found[("legacy", d.legacy["id"])].ruleset_id == "5551558908215304"
    assert set(comparison.in_sync) == {d.in_sync["id"], d.doubled["id"]}  # the first of the two is right
    # The ruleset nobody marked is somebody else's: never reported, never touched.
    assert all(drift.ruleset_id != "5551558908215305" for drift in comparison.drifts)


def test_compare_in_disable_mode_expects_a_disabled_ruleset_for_detection_off():
    settings = make_settings(VIRUSTOTAL_LIVEHUNT_ON_DETECTION_FALSE="disable")
    off = yara_indicator(detection=False)
    enabled = compare([off], as_vt_objects([ours(off, settings)]), settings)
    assert [(d.kind, dict(d.changes)) for d in enabled.drifts] == [("differs", {"enabled": False})]
    disabled = compare([off], as_vt_objects([ours(off, settings, enabled=False)]), settings)
    assert disabled.drifts == [] and list(disabled.in_sync) == [off["id"]]


def seed(fake, rulesets, foreign=45):
    """Put the rulesets into the fake VirusTotal behind a page and more of other people's."""
    for i in range(foreign):
        fake.add_hunting_ruleset(f"team rule {i}", FOREIGN.replace("someone_elses", f"team_{i}"), enabled=True)
    return [fake.add_hunting_ruleset(**attrs) for attrs in rulesets]


def test_apply_fixes_the_drift_in_virustotal_and_the_state(vt, store):
    settings = make_settings()
    d = Drifted(settings)
    ids = seed(vt, d.rulesets)
    store.kv_set(NS, d.deleted_id, {"ruleset_id": ids[7], "version": ""})
    client = vt_client(vt, store)
    api = HuntingRulesets(client)

    comparison = compare(d.indicators, list(api.iter_all()), settings)
    assert len(comparison.drifts) == 8  # found although our rulesets sit behind 45 others, on page 2
    outcomes = apply(comparison, api, store, settings)

    assert [o.error for o in outcomes] == [None] * 8
    assert compare(d.indicators, list(api.iter_all()), settings).drifts == []
    left = vt.hunting_rulesets
    # 46 rulesets of other people, plus ours: in sync, created, rule changed, renamed, doubled once, legacy
    assert len(left) == 46 + 6
    assert ids[9] in left and ids[8] in left  # someone else's ruleset untouched; the legacy one adopted in place
    assert indicator_of(left[ids[8]]["attributes"]["rules"]) == d.legacy["id"]
    assert ruleset_of(store, d.legacy["id"]) == ids[8]
    assert ruleset_of(store, d.deleted_id) is None
    assert {k for k, v in store.kv_items(NS).items() if v["ruleset_id"]} == {
        i["id"] for i in (d.in_sync, d.missing, d.new_rule, d.renamed, d.doubled, d.legacy)}

    # The stream picks up where sync left off: an unchanged indicator costs no request.
    vt.clear_log()
    rt = Runtime(vt, store, settings)
    rt.send(event("update", changed(d.renamed, description="reviewed")))
    assert vt.requests == []
    client.close()


def test_a_rejected_fix_is_reported_and_the_others_still_apply(vt, sqlite_state):
    settings = make_settings()
    good, bad = yara_indicator(name="Good"), yara_indicator(name="Bad", pattern="rule bad {")
    api = HuntingRulesets(vt_client(vt, sqlite_state))
    outcomes = apply(compare([bad, good], [], settings), api, sqlite_state, settings)
    assert sorted((o.drift.indicator_id, o.error is None) for o in outcomes) == sorted(
        [(good["id"], True), (bad["id"], False)])
    assert len(vt.hunting_rulesets) == 1


# -- the command line -------------------------------------------------------------------
class FakeIndicators:
    """pycti's ``OpenCTIApiClient`` as far as ``fetch_indicators`` uses it."""

    def __init__(self, nodes):
        self.nodes, self.calls = nodes, []
        self.indicator = self

    def list(self, **kwargs):
        self.calls.append(kwargs)
        return self.nodes


def opencti_node(data):
    """An indicator as pycti's listing returns it (OpenCTI's GraphQL shape, not STIX)."""
    ext = next(iter(data["extensions"].values()))
    return {
        "id": ext["id"],
        "standard_id": data["id"],
        "entity_type": "Indicator",
        "name": data["name"],
        "pattern": data["pattern"],
        "pattern_type": "yara",
        "revoked": False,
        "x_opencti_detection": ext["detection"],
        "objectMarking": [{"standard_id": ref, "definition_type": "TLP", "definition": "TLP:?"}
                          for ref in data["object_marking_refs"]],
    }


@pytest.fixture
def sync_cli(vt, tmp_path, monkeypatch):
    env = {
        "OPENCTI_URL": "http://127.0.0.1:9", "OPENCTI_TOKEN": "opencti-token",
        "VIRUSTOTAL_LIVEHUNT_TOKEN": "test-key", "VIRUSTOTAL_BASE_URL": vt.base_url,
        "VIRUSTOTAL_DETECT_QUOTA": "false", "VIRUSTOTAL_REQUESTS_PER_MINUTE": "1000",
        "VIRUSTOTAL_LIVEHUNT_SHARED_OWNERS": "alice", "VTF_STATE_DIR": str(tmp_path / "state"),
    }
    opencti = FakeIndicators([])
    monkeypatch.setattr(command, "open_opencti", lambda app: opencti)

    def run(*argv):
        return cli.main(["livehunt", "sync", *argv], app_factory=lambda preset: build_app(
            preset, env=env, config_file=None))

    run.opencti = opencti
    return run


def test_sync_shows_the_drift_then_apply_fixes_it(sync_cli, vt, capsys):
    hunted, gone = yara_indicator(name="Hunted"), yara_indicator(name="Gone", pattern=QAKBOT)
    vt.add_hunting_ruleset("Gone [x]", marked_rules(gone["id"], QAKBOT), enabled=True)
    vt.add_hunting_ruleset("Someone else's", FOREIGN)
    sync_cli.opencti.nodes = [opencti_node(hunted)]

    assert sync_cli() == 0
    shown = capsys.readouterr().out
    assert f"missing   {hunted['id']}" in shown and f"orphaned  {gone['id']}" in shown
    assert "--apply" in shown
    assert len(vt.hunting_rulesets) == 2  # looking changes nothing
    (call,) = sync_cli.opencti.calls
    assert call["getAll"] is True and json.dumps(call["filters"]).count('"yara"') == 1

    assert sync_cli("--apply") == 0
    assert "fixed 2 of 2 drift(s)" in capsys.readouterr().out
    names = sorted(r["attributes"]["name"] for r in vt.hunting_rulesets.values())
    assert names[0].startswith("Hunted [") and names[1] == "Someone else's"
    (ours_now,) = [r for r in vt.hunting_rulesets.values() if r["attributes"]["name"].startswith("Hunted")]
    assert ours_now["editors"] == [{"type": "user", "id": "alice"}]

    assert sync_cli() == 0
    assert "in sync: 1 ruleset(s)" in capsys.readouterr().out


def test_apply_refuses_to_wipe_everything_when_opencti_returns_nothing(sync_cli, vt, capsys):
    gone = yara_indicator(name="Gone")
    vt.add_hunting_ruleset("Gone [x]", marked_rules(gone["id"], EMOTET), enabled=True)
    assert sync_cli("--apply") == 1
    assert "OPENCTI_TOKEN" in capsys.readouterr().err
    assert len(vt.hunting_rulesets) == 1


def test_sync_without_an_action_is_a_usage_error(capsys):
    assert cli.main(["livehunt"]) == 2
    assert "livehunt" in capsys.readouterr().err
