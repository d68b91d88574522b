"""Start-up: configuration file, plugins and validated settings, in that order."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from vtframework.host.config import Settings, find_config_file, load_settings, read_config_file
from vtframework.host.core_keys import CORE_KEYS
from vtframework.host.plugins import PluginHost, build_host
from vtframework.host.presets import Preset, get_preset
from vtframework.state.base import secret_of_url
from vtframework.vt.redaction import install as install_redaction
from vtframework.vt.redaction import register_secret


@dataclass
class App:
    """Everything a command or a connector runtime needs, built once."""

    host: PluginHost
    settings: Settings
    preset: Preset | None
    env: Mapping[str, str]
    #: What plugins keep for as long as the app runs (``EnrichmentContext.process_memo``).
    memo: dict[Any, Any] = dataclasses.field(default_factory=dict)

    @property
    def api_key(self) -> str | None:
        """The VirusTotal key of the active preset (``virustotal.token`` otherwise)."""
        path = self.preset.api_key_path if self.preset else "virustotal.token"
        return self.settings[path] or self.settings["virustotal.token"]

    @property
    def api_key_env(self) -> str:
        path = self.preset.api_key_path if self.preset else "virustotal.token"
        return self.settings.entry(path).key.env_name


def build_app(
    preset: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    extra_plugins: Iterable[tuple[str, Any]] = (),
    cwd: Path | None = None,
    config_file: Path | None | bool = True,
    external_plugins: bool | None = None,
) -> App:
    """Read configuration, load the plugins, validate every key.

    The core keys are read first because they choose the plugins
    (``VTF_PLUGINS``, ``VTF_DISABLE_PLUGINS``, ``VTF_PRESET``); the plugins then
    declare their own keys and everything is validated together.

    :param config_file: a ``config.yml`` to read; ``True`` (default) looks for
        ``VTF_CONFIG_FILE`` or ``config.yml`` in ``cwd``; ``None`` reads none.
    :param external_plugins: load the plugins other distributions install;
        ``None`` (default) follows ``VTF_EXTERNAL_PLUGINS``.
    :raises ConfigError: for an invalid value or an unknown preset.
    :raises PluginError: for a failing plugin in strict mode.
    """
    env = dict(os.environ if env is None else env)
    if config_file is True:
        config_file = find_config_file(env, cwd)
    raw = read_config_file(config_file)
    core = load_settings(CORE_KEYS, env=env, raw=raw)
    chosen = get_preset(preset or core["vtf.preset"])
    host = build_host(
        preset_plugins=chosen.plugins if chosen else None,
        env=env,
        extra_plugins=extra_plugins,
        allow=core["vtf.plugins"],
        deny=core["vtf.disable_plugins"],
        strict=core["vtf.strict_plugins"],
        external=core["vtf.external_plugins"] if external_plugins is None else external_plugins,
        trace=core["vtf.trace_plugins"],
    )
    settings = load_settings(
        [*CORE_KEYS, *host.keys.values()],
        env=env,
        raw=raw,
        preset_defaults=dict(chosen.defaults) if chosen else None,
    )
    settings.config_file = config_file
    _protect_secrets(settings)
    return App(host=host, settings=settings, preset=chosen, env=env)


def with_paid_features(app: App, source: str = "replay") -> App:
    """The app with every switch that costs VirusTotal requests turned on, unless the user set it.

    For ``enrich --replay``: recorded answers cost no quota, so the features
    that are off by default to save it are shown too.
    """
    switches = {
        entry.key.path: True
        for entry in app.settings.entries()
        if entry.key.costs_requests and entry.key.type == "bool" and entry.source in ("default", "preset")
    }
    return dataclasses.replace(app, settings=app.settings.overridden(switches, source))


def _protect_secrets(settings: Settings) -> None:
    """No secret of these settings (keys, tokens, passwords in URLs) may appear in any log record."""
    install_redaction()
    for entry in settings.entries():
        if entry.key.secret and isinstance(entry.value, str):
            register_secret(entry.value)
        elif isinstance(entry.value, str) and "://" in entry.value:
            register_secret(secret_of_url(entry.value))
