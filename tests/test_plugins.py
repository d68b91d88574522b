"""The plugin host: discovery, isolation, allow and deny lists, strict mode."""

from __future__ import annotations

import types

import pytest

from vtframework import ConfigKey, hookimpl
from vtframework.errors import PluginError
from vtframework.host.plugins import DEFAULT_PLUGINS, build_host
from vtframework.testing import enrich_offline, plugin_app

BUILTINS = [
    "file", "ip", "domain", "url", "downloader", "livehunt",
    "sigma", "ids", "malware_config", "classification", "crowdsourced_context", "community", "gti", "explain",
    "notifications",
]


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
    host = build_host(env={"VTF_DISABLE_PLUGINS": "url"}, preset_plugins=("file", "url"), external=False)
    assert host.loaded == ["file"]
    assert _status(host, "url") == "disabled"


def test_plugin_that_raises_in_a_declaration_hook_is_skipped_with_its_name():
    def boom():
        raise RuntimeError("kaboom")

    host = build_host(env={}, extra_plugins=[("broken", _plugin("broken", vtf_config_keys=boom))])
    assert _status(host, "broken").startswith("failed: ")
    assert "kaboom" in _status(host, "broken")
    assert _status(host, "file") == "loaded"


def install_broken(monkeypatch, name: str, dist: str, error: Exception) -> None:
    """Make an installed plugin ``name`` (of distribution ``dist``) whose import raises ``error``."""
    from vtframework.host import plugins as plugins_module

    real = plugins_module._entry_point_candidates

    def with_broken():
        def load():
            raise error

        return real() + [plugins_module._Candidate(name, dist, "9.9", load)]

    monkeypatch.setattr(plugins_module, "_entry_point_candidates", with_broken)


def test_plugin_that_fails_to_import_is_skipped(monkeypatch):
    install_broken(monkeypatch, "broken", "vtf-broken", ImportError("No module named 'vtf_missing_dependency'"))
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


def test_a_plugin_that_failed_to_import_is_in_every_result(monkeypatch):
    install_broken(monkeypatch, "sigmahq", "vtframework-sigmahq", ModuleNotFoundError("No module named 'sigma_parser'"))
    with plugin_app(installed=True) as app:
        result = enrich_offline(app, "4bc00f7d638e042da764e8648c03c0db46700599dd4f08d117e3e9e8b538519b")
    assert result.ok
    (failure,) = [f for f in result.plugin_errors if f.plugin == "sigmahq"]
    assert failure.hook is None
    assert str(failure) == (
        "plugin 'sigmahq' failed to load: import failed: ModuleNotFoundError: No module named 'sigma_parser' "
        "(vtframework-sigmahq)"
    )
    assert "plugin 'sigmahq' failed to load" in result.message


def test_isolated_hosts_load_the_builtins_only():
    host = build_host(env={}, external=False)
    assert list(host.infos) == BUILTINS
    assert list(build_host(env={"VTF_EXTERNAL_PLUGINS": "false"}).infos) == BUILTINS
    with plugin_app() as app:
        assert list(app.host.infos) == BUILTINS


def test_a_registered_plugin_stands_in_for_the_installed_one_of_its_name():
    """CI installs examples/vtframework-hello; a test registering it by name gets its own copy, not a clash."""
    mine = _plugin("hello", vtf_config_keys=lambda: [ConfigKey("mine.greeting", "str", "hi", "x")])
    with plugin_app(mine, name="hello", installed=True) as app:
        assert app.host.infos["hello"].status == "loaded"
        assert app.host.infos["hello"].origin == "registered"
        assert "mine.greeting" in app.host.keys and "hello.greeting" not in app.host.keys
        assert not app.host.failures


def test_a_type_plugin_under_test_takes_its_type_over_from_the_builtin():
    owner = _plugin("mine", vtf_observable_types=lambda: ["Url"])
    with plugin_app(owner, name="mine") as app:
        assert app.host.owner_of("Url") == "mine"
        assert app.host.infos["url"].status == "disabled"
        assert app.host.owner_of("StixFile") == "file"
