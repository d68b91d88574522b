"""What a plugin author (and an analyst) sees when a plugin fails: named, in the result, never silent."""

from __future__ import annotations

import logging
import types

import pytest

from vtframework import ConfigKey, PluginFailure, build_app, hookimpl
from vtframework.cli import main
from vtframework.errors import PluginError
from vtframework.host.plugins import build_host
from vtframework.testing import enrich_offline, notes_by_abstract

MALICIOUS = "4bc00f7d638e042da764e8648c03c0db46700599dd4f08d117e3e9e8b538519b"


def _plugin(**hooks) -> types.SimpleNamespace:
    return types.SimpleNamespace(**{hook: hookimpl(fn) for hook, fn in hooks.items()})


def _raises(observable):
    raise RuntimeError("boom")


def _note(observable, context):
    return [context.factory.note("from good", "content", [context.target_id])]


BAD = _plugin(vtf_stix_objects=_raises)
GOOD = _plugin(vtf_stix_objects=_note)


def _app(*plugins, **env):
    return build_app("virustotal", env=env, config_file=None, external_plugins=False, extra_plugins=plugins)


def test_a_failing_plugin_is_named_in_the_result_and_the_others_still_ship():
    result = enrich_offline(_app(("bad", BAD), ("good", GOOD)), MALICIOUS)
    assert result.ok, result.message
    assert result.plugin_errors == [PluginFailure("bad", "vtf_stix_objects", "RuntimeError: boom")]
    assert "plugin 'bad' failed in vtf_stix_objects: RuntimeError: boom" in result.message
    assert "from good" in notes_by_abstract(result)
    assert "VirusTotal Report" in notes_by_abstract(result)  # the owner's objects are all there
    assert result.warnings == []  # a plugin's failure is not a data warning


def test_strict_makes_a_plugin_failure_fail_the_observable():
    result = enrich_offline(_app(("bad", BAD), ("good", GOOD)), MALICIOUS, strict=True)
    assert not result.ok and result.objects == []
    assert "plugin 'bad' failed in vtf_stix_objects: RuntimeError: boom" in result.message
    assert [f.plugin for f in result.plugin_errors] == ["bad"]


def test_the_owner_failing_fails_the_enrichment_and_names_it():
    def no_query(observable):
        return None

    thief = _plugin(vtf_observable_types=lambda: ["StixFile"], vtf_vt_query=no_query)
    app = _app(("mine", thief), VTF_DISABLE_PLUGINS="file")
    result = enrich_offline(app, MALICIOUS)
    assert not result.ok
    assert result.plugin_errors == [
        PluginFailure("mine", "vtf_vt_query", f"returned NoneType, not a VTQuery, for StixFile {MALICIOUS}")
    ]


def test_a_bad_default_fails_that_plugin_by_name_at_load():
    sloppy = _plugin(vtf_config_keys=lambda: [ConfigKey("sloppy.level", "int", "high", "How loud.")])
    app = _app(("sloppy", sloppy))  # the app starts: one plugin's mistake does not stop it
    status = app.host.infos["sloppy"].status
    assert status == (
        "failed: invalid SLOPPY_LEVEL (sloppy.level) as its declared default: got 'high', expected a whole number"
    )
    assert "sloppy.level" not in app.settings
    assert app.host.infos["file"].status == "loaded"
    with pytest.raises(PluginError, match="plugin 'sloppy'"):
        build_host(env={"VTF_STRICT_PLUGINS": "1"}, extra_plugins=[("sloppy", sloppy)], external=False)


def test_an_unknown_key_type_names_the_valid_types():
    with pytest.raises(ValueError) as caught:
        ConfigKey("mine.enabled", "boolean", True, "On or off.")
    assert str(caught.value) == (
        "config key mine.enabled: unknown type 'boolean'; did you mean 'bool'? "
        "the types are str, int, float, bool, list, tlp, url, path"
    )
    typo = _plugin(vtf_config_keys=lambda: [ConfigKey("mine.enabled", "boolean", True, "On or off.")])
    status = _app(("mine", typo)).host.infos["mine"].status
    assert status.startswith("failed: plugin 'mine' failed in vtf_config_keys: ValueError: ")
    assert "the types are str, int" in status


def test_trace_logs_each_hook_call_with_its_plugin_and_duration(caplog):
    caplog.set_level(logging.INFO, logger="vtframework.plugins.trace")
    app = _app(("good", GOOD), VTF_TRACE_PLUGINS="1")
    caplog.clear()
    assert enrich_offline(app, MALICIOUS).ok
    lines = [record.getMessage() for record in caplog.records if record.name == "vtframework.plugins.trace"]
    assert any(line.startswith("plugin 'file' vtf_vt_query returned in ") and line.endswith(" ms") for line in lines)
    assert any(line.startswith("plugin 'good' vtf_stix_objects returned in ") for line in lines)
    caplog.clear()
    assert enrich_offline(_app(("good", GOOD)), MALICIOUS).ok
    assert not [r for r in caplog.records if r.name == "vtframework.plugins.trace"]


def test_plugins_command_shows_the_hooks_of_each_plugin(capsys, monkeypatch):
    monkeypatch.setenv("VTF_EXTERNAL_PLUGINS", "false")
    assert main(["plugins"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert rows["NAME"].split() == ["NAME", "ORIGIN", "VERSION", "STATUS", "HOOKS"]
    assert rows["ip"].endswith("loaded  vtf_config_keys, vtf_observable_types, vtf_stix_objects, vtf_vt_query")
    assert rows["livehunt"].endswith("vtf_cli_commands, vtf_config_keys, vtf_stream_event")


def _enrich_cli(capsys, *args):
    code = main(["enrich", "--replay", *args, MALICIOUS], app_factory=lambda preset: _app(("bad", BAD)))
    return code, capsys.readouterr().err


def test_enrich_summary_names_the_failed_plugin_and_strict_fails_the_value(capsys):
    code, table = _enrich_cli(capsys)
    assert code == 0
    row = next(line for line in table.splitlines() if line.startswith(MALICIOUS))
    assert row.endswith("ok, plugin(s) failed: bad")
    assert f"plugin error: {MALICIOUS}: plugin 'bad' failed in vtf_stix_objects: RuntimeError: boom" in table

    code, table = _enrich_cli(capsys, "--strict")
    assert code == 1
    row = next(line for line in table.splitlines() if line.startswith(MALICIOUS))
    assert row.endswith("FAILED")
    assert f"failed: StixFile {MALICIOUS}: not enriched, plugins must not fail (strict): plugin 'bad'" in table


def test_not_found_hint_offers_submission_only_for_what_can_be_submitted():
    app = _app()
    unknown_file = enrich_offline(app, "0" * 64)
    assert "submit it for analysis" in unknown_file.message  # the file plugin uploads Artifacts
    unknown_ip = enrich_offline(app, "192.0.2.1")
    assert not unknown_ip.ok and "not found on VirusTotal" in unknown_ip.message
    assert "submit" not in unknown_ip.message
    assert "check the value or skip it" in unknown_ip.message


def test_a_follow_up_for_an_unknown_object_does_not_say_submit():
    def follow_up(observable, context):
        context.client.get("/sigma_rules/0e1d2c3b", subject="Sigma rule 0e1d2c3b")

    result = enrich_offline(_app(("sigmahq", _plugin(vtf_stix_objects=follow_up))), MALICIOUS)
    (failure,) = result.plugin_errors
    assert failure.message.startswith("NotFoundError: Sigma rule 0e1d2c3b: not found on VirusTotal (404 ")
    assert failure.message.endswith("; VirusTotal has no such object; check the value or skip it")
