"""The plugin host: finds, loads and isolates plugins, and calls their hooks.

Built-in plugins are ordinary plugins: they are found through the ``vtframework``
entry-point group like a third party's (with :data:`DEFAULT_PLUGINS` as a
fallback for a source checkout that was not installed). A plugin that fails to
import, registers a hook that has no specification, declares a default that
does not fit its type, or raises in a hook is reported with its name and
skipped; ``VTF_STRICT_PLUGINS=1`` makes it fatal. ``VTF_EXTERNAL_PLUGINS=false``
loads the built-ins only; ``VTF_TRACE_PLUGINS=1`` logs every hook call with its
plugin and duration.
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any, Callable, Iterable, Mapping

import pluggy

from vtframework import hookspecs
from vtframework.errors import PluginError, VTFrameworkError
from vtframework.host.config import default_problem, parse_list
from vtframework.records import CliCommand, ConfigKey, PluginFailure, PluginInfo

log = logging.getLogger("vtframework.plugins")
#: Where ``VTF_TRACE_PLUGINS=1`` writes one line per hook call.
trace_log = logging.getLogger("vtframework.plugins.trace")

ENTRY_POINT_GROUP = "vtframework"

#: Built-in plugins by name, in load order.
DEFAULT_PLUGINS: dict[str, str] = {
    "file": "vtframework_plugins.file",
    "ip": "vtframework_plugins.ip",
    "domain": "vtframework_plugins.domain",
    "url": "vtframework_plugins.url",
    "downloader": "vtframework_plugins.downloader",
    "livehunt": "vtframework_plugins.livehunt",
    "sigma": "vtframework_plugins.sigma",
    "ids": "vtframework_plugins.ids",
    "malware_config": "vtframework_plugins.malware_config",
    "classification": "vtframework_plugins.classification",
    "crowdsourced_context": "vtframework_plugins.crowdsourced_context",
    "community": "vtframework_plugins.community",
    "gti": "vtframework_plugins.gti",
    "explain": "vtframework_plugins.explain",
    "notifications": "vtframework_plugins.notifications",
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass
class HookFailure:
    plugin: str
    hook: str
    error: BaseException

    def __str__(self) -> str:
        return f"plugin {self.plugin!r} failed in {self.hook}: {self.reason}"

    def as_error(self) -> VTFrameworkError:
        """What to raise when the caller cannot do without this plugin's part."""
        if isinstance(self.error, VTFrameworkError):
            return self.error
        return PluginError(str(self), plugin=self.plugin, hook=self.hook, reason=self.reason)

    @property
    def reason(self) -> str:
        return f"{type(self.error).__name__}: {self.error}"

    def record(self) -> PluginFailure:
        """The failure as an enrichment result reports it."""
        return PluginFailure(self.plugin, self.hook, self.reason)


@dataclass
class _Candidate:
    name: str
    origin: str
    version: str
    load: Callable[[], Any]


@dataclass
class PluginHost:
    """A loaded set of plugins and the way the core calls them."""

    pm: pluggy.PluginManager
    strict: bool = False
    #: Log every hook call with its plugin and duration (``VTF_TRACE_PLUGINS``).
    trace: bool = False
    infos: dict[str, PluginInfo] = field(default_factory=dict)
    #: The plugins that failed to load, in load order; every enrichment result reports them.
    failures: list[PluginFailure] = field(default_factory=list)
    #: OpenCTI entity type -> owning plugin name.
    owners: dict[str, str] = field(default_factory=dict)
    keys: dict[str, ConfigKey] = field(default_factory=dict)
    key_owner: dict[str, str] = field(default_factory=dict)
    commands: dict[str, CliCommand] = field(default_factory=dict)

    # -- what is loaded -------------------------------------------------
    @property
    def loaded(self) -> list[str]:
        return [name for name, info in self.infos.items() if info.status == "loaded"]

    def owner_of(self, entity_type: str) -> str | None:
        return self.owners.get(entity_type)

    def implements(self, plugin: str, hook: str) -> bool:
        info = self.infos.get(plugin)
        return info is not None and hook in info.hooks
    def implementers(self, hook: str) -> list[str]:
        """The loaded plugins that implement ``hook``, in load order."""
        return [self.pm.get_name(impl.plugin) or "?" for impl in reversed(getattr(self.pm.hook, hook).get_hookimpls())]

    # -- calling hooks inside error boundaries ---------------------------
    def call_each(
        self, hook: str, exclude: Iterable[str] = (), **kwargs: Any
    ) -> tuple[list[tuple[str, Any]], list[HookFailure]]:
        """Call ``hook`` on every plugin (but ``exclude``), each inside its own error boundary.

        :return: ``(plugin, result)`` pairs of the implementations that
            returned something other than ``None``, and the failures.
        """
        results: list[tuple[str, Any]] = []
        failures: list[HookFailure] = []
        caller = getattr(self.pm.hook, hook)
        # pluggy lists implementations last-registered first; call in load order.
        for impl in reversed(caller.get_hookimpls()):
            name = self.pm.get_name(impl.plugin) or "?"
            if name in exclude:
                continue
            outcome = self._call_impl(name, hook, impl, kwargs)
            if isinstance(outcome, HookFailure):
                failures.append(outcome)
            elif outcome is not None:
                results.append((name, outcome))
        return results, failures

    def call_plugin(self, plugin: str, hook: str, **kwargs: Any) -> Any:
        """Call ``hook`` on one plugin only; ``None`` when it does not implement it.

        :raises PluginError: when the plugin raises (always: the caller decides
            whether the work fails).
        """
        module = self.pm.get_plugin(plugin)
        if module is None:
            raise PluginError(f"plugin {plugin!r} is not loaded", plugin=plugin)
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            if impl.plugin is module:
                outcome = self._call_impl(plugin, hook, impl, kwargs, isolate=False)
                return outcome
        return None

    def _call_impl(
        self, name: str, hook: str, impl: Any, kwargs: Mapping[str, Any], isolate: bool = True
    ) -> Any:
        args = [kwargs[arg] for arg in impl.argnames]
        started = time.perf_counter()
        outcome = "returned"
        try:
            return impl.function(*args)
        except PluginError:
            outcome = "raised"
            raise
        except VTFrameworkError as exc:
            outcome = "raised"
            # A refusal on purpose (TLP, bad input, VirusTotal error) already says what happened.
            if self.strict or not isolate:
                raise
            failure = HookFailure(name, hook, exc)
            log.warning("%s", failure)
            return failure
        except Exception as exc:  # a plugin's bug must not take the host down
            outcome = "raised"
            failure = HookFailure(name, hook, exc)
            if self.strict or not isolate:
                raise failure.as_error() from exc
            log.error("%s", failure, exc_info=exc)
            return failure
        finally:
            if self.trace:
                elapsed = (time.perf_counter() - started) * 1000
                trace_log.info("plugin %r %s %s in %.1f ms", name, hook, outcome, elapsed)


def _entry_point_candidates() -> list[_Candidate]:
    """Every plugin installed under the entry-point group, the built-ins' own included."""
    candidates = []
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else "unknown"
        version = dist.version if dist is not None else "unknown"
        origin = "builtin" if dist_name == "vtframework" else dist_name
        candidates.append(_Candidate(ep.name, origin, version, ep.load))
    return candidates


def _builtin_version() -> str:
    try:
        return metadata.version("vtframework")
    except metadata.PackageNotFoundError:
        return "source"


def _candidates(extra: Iterable[tuple[str, Any]], external: bool = True) -> list[_Candidate]:
    found = {c.name: c for c in _entry_point_candidates() if external or c.origin == "builtin"}
    extra = list(extra)
    # A plugin registered explicitly (a test's plugin under test) stands in for the installed one of that name.
    for name, _obj in extra:
        if name in found and found[name].origin != "builtin":
            del found[name]
    ordered: list[_Candidate] = []
    for name, module in DEFAULT_PLUGINS.items():
        if name in found and found[name].origin == "builtin":
            ordered.append(found.pop(name))
        else:
            ordered.append(_Candidate(name, "builtin", _builtin_version(), lambda m=module: importlib.import_module(m)))
    ordered.extend(sorted(found.values(), key=lambda c: c.name))
    for name, obj in extra:
        ordered.append(_Candidate(name, "registered", "-", lambda o=obj: o))
    return ordered


def build_host(
    *,
    preset_plugins: Iterable[str] | None = None,
    env: Mapping[str, str] | None = None,
    extra_plugins: Iterable[tuple[str, Any]] = (),
    allow: Iterable[str] | None = None,
    deny: Iterable[str] | None = None,
    strict: bool | None = None,
    external: bool | None = None,
    trace: bool | None = None,
) -> PluginHost:
    """Find and load the plugins.

    :param preset_plugins: the built-ins a preset selects (``None``: all).
    :param env: where ``VTF_PLUGINS``, ``VTF_DISABLE_PLUGINS``,
        ``VTF_STRICT_PLUGINS``, ``VTF_EXTERNAL_PLUGINS`` and
        ``VTF_TRACE_PLUGINS`` are read when not given explicitly.
    :param extra_plugins: ``(name, plugin object)`` pairs to register as well
        (used by :mod:`vtframework.testing` to add a plugin for one test); one
        stands in for an installed plugin of the same name.
    :param external: load plugins installed by other distributions (entry
        points); ``False`` loads the built-ins and ``extra_plugins`` only.
    :param trace: log every hook call with its plugin and duration.
    """
    env = os.environ if env is None else env
    allow_list = parse_list(env.get("VTF_PLUGINS")) if allow is None else list(allow)
    deny_list = set(parse_list(env.get("VTF_DISABLE_PLUGINS")) if deny is None else deny)
    if strict is None:
        strict = _flag(env, "VTF_STRICT_PLUGINS", False)
    if external is None:
        external = _flag(env, "VTF_EXTERNAL_PLUGINS", True)
    if trace is None:
        trace = _flag(env, "VTF_TRACE_PLUGINS", False)
    if trace and trace_log.level == logging.NOTSET:
        # Asked for explicitly, so shown even when the rest of the log stays at warnings.
        trace_log.setLevel(logging.INFO)
    selected_builtins = set(DEFAULT_PLUGINS) if preset_plugins is None else set(preset_plugins)

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    host = PluginHost(pm=pm, strict=strict, trace=trace)
    for candidate in _candidates(extra_plugins, external):
        if candidate.name in host.infos:
            _fail(host, candidate, f"name clashes with the already loaded plugin {candidate.name!r}", record=False)
            continue
        if _is_disabled(candidate, allow_list, deny_list, selected_builtins):
            host.infos[candidate.name] = PluginInfo(candidate.name, candidate.origin, candidate.version, "disabled")
            continue
        _load(host, candidate)
    pm.check_pending()
    return host


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = env.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return default


def _is_disabled(candidate: _Candidate, allow: list[str], deny: set[str], builtins: set[str]) -> bool:
    if candidate.name in deny:
        return True
    if allow:
        return candidate.name not in allow
    return candidate.origin == "builtin" and candidate.name not in builtins


def _load(host: PluginHost, candidate: _Candidate) -> None:
    try:
        plugin = candidate.load()
    except Exception as exc:
        _fail(host, candidate, f"import failed: {type(exc).__name__}: {exc}", exc)
        return
    unknown = _unknown_hooks(plugin)
    if unknown:
        _fail(host, candidate, f"implements unknown hook(s) {', '.join(unknown)}")
        return
    try:
        host.pm.register(plugin, name=candidate.name)
    except Exception as exc:  # pluggy.PluginValidationError and friends
        _fail(host, candidate, f"registration failed: {exc}", exc)
        return
    error = _collect_declarations(host, candidate.name)
    if error:
        host.pm.unregister(name=candidate.name)
        _fail(host, candidate, error)
        return
    hooks = tuple(sorted(impl_name for impl_name in _impl_names(plugin)))
    host.infos[candidate.name] = PluginInfo(candidate.name, candidate.origin, candidate.version, "loaded", hooks)


def _impl_names(plugin: Any) -> list[str]:
    names = []
    for attr in dir(plugin):
        function = getattr(plugin, attr, None)
        if callable(function) and hasattr(function, hookspecs.PROJECT + "_impl"):
            names.append(attr)
    return names


def _unknown_hooks(plugin: Any) -> list[str]:
    return [name for name in _impl_names(plugin) if not hasattr(hookspecs, name)]


def _collect_declarations(host: PluginHost, name: str) -> str | None:
    """Read a new plugin's config keys, types and commands; refuse clashes."""
    try:
        keys = list(host.call_plugin(name, "vtf_config_keys") or [])
        types = list(host.call_plugin(name, "vtf_observable_types") or [])
        commands = list(host.call_plugin(name, "vtf_cli_commands") or [])
    except PluginError as exc:
        return str(exc)
    for key in keys:
        if not isinstance(key, ConfigKey):
            return f"vtf_config_keys returned {type(key).__name__}, not ConfigKey"
        if key.path in host.keys:
            return f"config key {key.path} is already declared by {host.key_owner[key.path]!r}"
        problem = default_problem(key)
        if problem:
            return problem
    for entity_type in types:
        if entity_type in host.owners:
            return f"entity type {entity_type} is already handled by {host.owners[entity_type]!r}"
    for command in commands:
        if command.name in host.commands or command.name in CORE_COMMANDS:
            return f"command {command.name!r} already exists"
    for key in keys:
        host.keys[key.path] = key
        host.key_owner[key.path] = name
    for entity_type in types:
        host.owners[entity_type] = name
    for command in commands:
        host.commands[command.name] = command
    return None


def _fail(
    host: PluginHost, candidate: _Candidate, reason: str, exc: BaseException | None = None, record: bool = True
) -> None:
    message = f"plugin {candidate.name!r} ({candidate.origin}) skipped: {reason}"
    if host.strict:
        raise PluginError(message, plugin=candidate.name) from exc
    log.warning("%s", message)
    host.failures.append(PluginFailure(candidate.name, None, f"{reason} ({candidate.origin})"))
    if record:
        host.infos[candidate.name] = PluginInfo(candidate.name, candidate.origin, candidate.version, f"failed: {reason}")


#: Sub-command names the core keeps for itself.
CORE_COMMANDS = frozenset({"plugins", "plugin", "config", "enrich", "run"})


def module_plugin(name: str) -> ModuleType:
    """Import a built-in plugin module by its short name (for tests and tools)."""
    return importlib.import_module(DEFAULT_PLUGINS[name])
