"""The plugin host: discovery, isolation, allow and deny lists, strict mode."""

from __future__ import annotations

import types

import pytest

from vtframework import ConfigKey, hookimpl
from vtframework.errors import PluginError
from vtframework.host.plugins import DEFAULT_PLUGINS, build_host

BUILTINS = ["file", "ip", "domain", "url", "downloader", "livehunt", "notifications"]


def _plugin(name: str, **hooks) -> types.SimpleNamespace:
    """A plugin object whose hooks are the given functions, marked as implementations."""
    return types.SimpleNamespace(**{hook: hookimpl(fn) for hook, fn in hooks.items()})


def _status(host, name):
    return host.infos[name].status


def test_builtins_load_through_the_entry_point_group():
    host = build_host(env={})
    for name in BUILTINS:
        assert _status(host, name) == "loaded", host.infos[name]
        assert host.infos[name].origin == "builtin"
    assert list(DEFAULT_PLUGINS) == BUILTINS
    assert host.owner_of("StixFile") == "file"
    assert host.owner_of("Hostname") == "domain"
    assert host.owner_of("IPv6-Addr") == "ip"


def test_preset_selects_builtins():
    host = build_host(env={}, preset_plugins=("downloader",))
    assert _status(host, "downloader") == "loaded"
    assert _status(host, "file") == "disabled"
    assert host.owner_of("StixFile") is None


def test_allow_list_loads_only_named_plugins():
    host = build_host(env={"VTF_PLUGINS": "file, url"})
    assert host.loaded == ["file", "url"]
    assert _status(host, "ip") == "disabled"


def test_deny_list_wins_over_preset():
    host = build_host(env={"VTF_DISABLE_PLUGINS": "url,hello"}, preset_plugins=("file", "url"))
    assert host.loaded == ["file"]
    assert _status(host, "url") == "disabled"


def test_plugin_that_raises_in_a_declaration_hook_is_skipped_with_its_name():
    def boom():
        raise RuntimeError("kaboom")

    host = build_host(env={}, extra_plugins=[("broken", _plugin("broken", vtf_config_keys=boom))])
    assert _status(host, "broken").startswith("failed: ")
    assert "kaboom" in _status(host, "broken")
    assert _status(host, "file") == "loaded"


def test_plugin_that_fails_to_import_is_skipped(monkeypatch):
    from vtframework.host import plugins as plugins_module

    real = plugins_module._entry_point_candidates

    def with_broken():
        def load():
            raise ImportError("No module named 'vtf_missing_dependency'")

        return real() + [plugins_module._Candidate("broken", "vtf-broken", "9.9", load)]

    monkeypatch.setattr(plugins_module, "_entry_point_candidates", with_broken)
    host = build_host(env={})
    assert _status(host, "broken") == "failed: import failed: ImportError: No module named 'vtf_missing_dependency'"
    assert host.infos["broken"].origin == "vtf-broken"
    assert host.loaded[: len(BUILTINS)] == BUILTINS

    with pytest.raises(PluginError, match="broken"):
        build_host(env={"VTF_STRICT_PLUGINS": "1"})


def test_misspelled_hook_is_refused():
    plugin = _plugin("typo", vtf_stix_object=lambda: [])
    host = build_host(env={}, extra_plugins=[("typo", plugin)])
    assert _status(host, "typo") == "failed: implements unknown hook(s) vtf_stix_object"
    with pytest.raises(PluginError, match="unknown hook"):
        build_host(env={"VTF_STRICT_PLUGINS": "true"}, extra_plugins=[("typo", plugin)])


def test_type_and_key_clashes_fail_the_late_plugin():
    thief = _plugin("thief", vtf_observable_types=lambda: ["StixFile"])
    dup = _plugin("dup", vtf_config_keys=lambda: [ConfigKey("virustotal.file_import_yara", "bool", True, "x")])
    host = build_host(env={}, extra_plugins=[("thief", thief), ("dup", dup)])
    assert "already handled by 'file'" in _status(host, "thief")
    assert "already declared by 'file'" in _status(host, "dup")
    assert host.owner_of("StixFile") == "file"


def test_hook_errors_are_isolated_at_call_time_and_fatal_in_strict_mode():
    def bad(observable):
        raise ValueError("bad plugin")

    good = _plugin("good", vtf_stix_objects=lambda observable: ["object from good"])
    only = {"VTF_PLUGINS": "bad,good"}
    host = build_host(env=only, extra_plugins=[("bad", _plugin("bad", vtf_stix_objects=bad)), ("good", good)])
    results, failures = host.call_each(
        "vtf_stix_objects", observable=None, report={}, context=None, settings={}
    )
    assert ("good", ["object from good"]) in results
    assert [(f.plugin, str(f.error)) for f in failures] == [("bad", "bad plugin")]

    strict = build_host(env={**only, "VTF_STRICT_PLUGINS": "1"}, extra_plugins=[("bad", _plugin("bad", vtf_stix_objects=bad))])
    with pytest.raises(PluginError, match="plugin 'bad' failed in vtf_stix_objects"):
        strict.call_each("vtf_stix_objects", observable=None, report={}, context=None, settings={})


def test_example_plugin_is_discovered_through_its_entry_point():
    """CI installs examples/vtframework-hello; the host must find it like any third party."""
    host = build_host(env={})
    assert "hello" in host.infos, "install examples/vtframework-hello (see README) to run the tests"
    info = host.infos["hello"]
    assert (info.origin, info.version, info.status) == ("vtframework-hello", "0.1.0", "loaded")
    assert "hello.greeting" in host.keys
