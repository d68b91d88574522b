"""Configuration: declared keys, ``config.yml`` plus environment, validated once.

Precedence, lowest to highest: the key's default, the preset's default,
``config.yml``, the environment. Environment names follow OpenCTI's
convention: the name is split after its namespace, so ``OPENCTI_URL`` is
``opencti.url`` and ``VIRUSTOTAL_DOWNLOADER_API_KEY`` is
``virustotal_downloader.api_key`` (the longest known namespace wins).

Every key is declared once, by its owner, as a
:class:`~vtframework.records.ConfigKey`. Values are parsed and checked at
start; the first invalid value stops start-up with one line naming the key,
its environment variable and what was expected. Secrets never appear in
messages or listings.
"""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from vtframework.errors import ConfigError
from vtframework.policy.tlp import TLP_ORDER, normalize_tlp
from vtframework.records import ConfigKey
from vtframework.state.base import redact_url

REDACTED = "****"

_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}

#: Where ``vtframework`` looks for ``config.yml`` when ``VTF_CONFIG_FILE`` is unset.
DEFAULT_CONFIG_FILES = ("config.yml", "config.yaml")


def parse_list(value: Any) -> list[str]:
    """Accept a YAML list, a JSON list, a Python list literal or a comma-separated string."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        items = list(value)
    else:
        text = str(value).strip()
        if not text:
            return []
        if text.startswith("["):
            try:
                items = json.loads(text)
            except json.JSONDecodeError:
                # The original livehunt connector documented Python literals ('["a"]' and "['a']").
                items = ast.literal_eval(text)
            if not isinstance(items, list):
                raise ValueError(value)
        else:
            items = text.split(",")
    return [str(item).strip() for item in items if str(item).strip()]


def _expected(key: ConfigKey) -> str:
    if key.choices:
        return ("a comma-separated list of " if key.type == "list" else "one of ") + ", ".join(key.choices)
    return {
        "str": "a text value",
        "int": "a whole number" + (f" >= {key.minimum:g}" if key.minimum is not None else ""),
        "float": "a number" + (f" >= {key.minimum:g}" if key.minimum is not None else ""),
        "bool": "true or false",
        "list": "a comma-separated list or a JSON list",
        "tlp": "one of " + ", ".join(TLP_ORDER) + " (or TLP:WHITE)",
        "url": "an http:// or https:// URL",
        "path": "a file system path",
    }[key.type]


def _convert(key: ConfigKey, raw: Any) -> Any:
    """Parse one raw value into the key's type; ``ValueError`` when it does not fit."""
    if key.type == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(raw)
    if key.type == "int":
        if isinstance(raw, bool):
            raise ValueError(raw)
        value: Any = int(str(raw).strip())
    elif key.type == "float":
        if isinstance(raw, bool):
            raise ValueError(raw)
        value = float(str(raw).strip())
    elif key.type == "list":
        items = parse_list(raw)
        if key.choices:
            allowed = {c.lower(): c for c in key.choices}
            if any(item.lower() not in allowed for item in items):
                raise ValueError(raw)
            items = list(dict.fromkeys(allowed[item.lower()] for item in items))
        return items
    elif key.type == "tlp":
        return normalize_tlp(raw)
    elif key.type == "url":
        value = str(raw).strip()
        if not value.startswith(("http://", "https://")) or len(value) < 10:
            raise ValueError(raw)
        return value
    else:
        value = str(raw).strip() if not key.secret else str(raw)
    if key.minimum is not None and value < key.minimum:
        raise ValueError(raw)
    if key.choices and str(value).lower() not in {c.lower() for c in key.choices}:
        raise ValueError(raw)
    if key.choices:
        value = next(c for c in key.choices if c.lower() == str(value).lower())
    return value


def env_to_path(name: str, namespaces: Iterable[str]) -> str | None:
    """Map ``VIRUSTOTAL_FILE_IMPORT_YARA`` to ``virustotal.file_import_yara``.

    The longest namespace that prefixes the lower-cased name wins, so
    ``virustotal_downloader`` beats ``virustotal``. Unknown names map to ``None``.
    """
    lowered = name.lower()
    for namespace in sorted(namespaces, key=len, reverse=True):
        if lowered.startswith(namespace + "_") and len(lowered) > len(namespace) + 1:
            return f"{namespace}.{lowered[len(namespace) + 1:]}"
    return None


@dataclass(frozen=True)
class Value:
    """One effective setting and where it came from."""

    key: ConfigKey
    value: Any
    source: str  # default | preset | config.yml | env

    @property
    def shown(self) -> str:
        """The value as it may be printed: secrets masked, lists joined."""
        if self.key.secret and self.value not in (None, ""):
            return REDACTED
        if isinstance(self.value, list):
            return ",".join(self.value)
        if self.value is None:
            return ""
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        text = str(self.value)
        # A URL with credentials (VTF_REDIS_URL, a proxy) shows its user, never its password.
        return redact_url(text) if "://" in text else text


class Settings(Mapping[str, Any]):
    """Validated, frozen settings: ``settings["virustotal.max_tlp"]``."""

    def __init__(self, values: Mapping[str, Value], config_file: Path | None, raw: Mapping[str, Any]):
        self._values = dict(values)
        self.config_file = config_file
        self._raw = raw

    def __getitem__(self, path: str) -> Any:
        try:
            return self._values[path].value
        except KeyError:
            raise KeyError(f"{path} is not a declared configuration key") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        shown = {path: v.shown for path, v in self._values.items()}
        return f"Settings({shown})"

    def entry(self, path: str) -> Value:
        return self._values[path]

    def overridden(self, values: Mapping[str, Any], source: str) -> "Settings":
        """A copy with ``values`` (valid values of declared keys) in place, shown as coming from ``source``."""
        updated = dict(self._values)
        for path, value in values.items():
            updated[path] = Value(self._values[path].key, value, source)
        copy = Settings(updated, self.config_file, self._raw)
        return copy

    def entries(self) -> list[Value]:
        return list(self._values.values())

    def raw_section(self, namespace: str) -> dict[str, Any]:
        """Everything ``config.yml`` holds under ``namespace`` (for pycti pass-through)."""
        section = self._raw.get(namespace) or {}
        return dict(section) if isinstance(section, Mapping) else {}

    def require(self, *paths: str, why: str) -> None:
        """Fail with a :class:`ConfigError` when one of ``paths`` has no value."""
        for path in paths:
            value = self._values[path]
            if value.value in (None, "", []) or value.value == "ChangeMe":
                raise ConfigError(
                    f"{value.key.env_name} ({path}) is required {why}: {value.key.description}",
                    key=path,
                )


def find_config_file(env: Mapping[str, str], cwd: Path | None = None) -> Path | None:
    """``VTF_CONFIG_FILE`` when set, else ``config.yml`` in the working directory."""
    explicit = env.get("VTF_CONFIG_FILE")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"VTF_CONFIG_FILE points to {explicit}, which is not a file", key="vtf.config_file")
        return path
    base = cwd or Path.cwd()
    for name in DEFAULT_CONFIG_FILES:
        if (base / name).is_file():
            return base / name
    return None


def read_config_file(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    from dynaconf import Dynaconf  # only when there is a file to read: commands start without it

    try:
        loaded = Dynaconf(
            settings_files=[str(path)],
            environments=False,
            load_dotenv=False,
            envvar_prefix="VTF_DYNACONF_UNUSED",
            core_loaders=["YAML"],
            loaders=[],
            merge_enabled=True,
        )
        data = loaded.as_dict()
    except Exception as exc:  # dynaconf surfaces YAML errors with many types
        raise ConfigError(f"cannot read {path}: {exc}".splitlines()[0], key=None) from exc
    # dynaconf upper-cases top-level keys; our paths are lower-case.
    return {str(k).lower(): _lower_keys(v) for k, v in data.items()}


def _lower_keys(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k).lower(): _lower_keys(v) for k, v in value.items()}
    return value


def _lookup(data: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    namespace, _, rest = path.partition(".")
    section = data.get(namespace)
    if not isinstance(section, Mapping) or rest not in section:
        return False, None
    return True, section[rest]


def load_settings(
    keys: Iterable[ConfigKey],
    *,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    preset_defaults: Mapping[str, Any] | None = None,
    raw: Mapping[str, Any] | None = None,
) -> Settings:
    """Build validated settings from declared ``keys``.

    :param env: the environment (``os.environ`` when omitted).
    :param config_file: a ``config.yml`` to read (``None``: none).
    :param preset_defaults: defaults a preset puts over the keys' own.
    :param raw: an already-read ``config.yml`` (saves reading it twice).
    :raises ConfigError: on the first invalid value, naming key and variable.
    """
    env = os.environ if env is None else env
    declared: dict[str, ConfigKey] = {}
    for key in keys:
        if key.path in declared:
            raise ConfigError(f"configuration key {key.path} is declared twice", key=key.path)
        declared[key.path] = key
    data = raw if raw is not None else read_config_file(config_file)
    namespaces = {key.namespace for key in declared.values()}
    from_env: dict[str, str] = {}
    explicit_env = {key.env_name: key.path for key in declared.values()}
    for name, value in env.items():
        path = explicit_env.get(name) or env_to_path(name, namespaces)
        # OpenCTI treats an empty variable as unset; so do we.
        if path in declared and value != "":
            from_env[path] = value
    presets = preset_defaults or {}
    values: dict[str, Value] = {}
    for path, key in declared.items():
        source, raw_value = "default", key.default
        if path in presets:
            source, raw_value = "preset", presets[path]
        found, file_value = _lookup(data, path)
        if found and file_value is not None and file_value != "":
            source, raw_value = "config.yml", file_value
        if path in from_env:
            source, raw_value = "env", from_env[path]
        values[path] = Value(key, _checked(key, raw_value, source), source)
    return Settings(values, config_file, data)


def default_problem(key: ConfigKey) -> str | None:
    """Why ``key``'s own default does not fit its type, or None when it does (or is None)."""
    try:
        _checked(key, key.default, "default")
    except ConfigError as exc:
        return str(exc)
    return None


def _checked(key: ConfigKey, raw: Any, source: str) -> Any:
    if raw is None:
        return None
    try:
        return _convert(key, raw)
    except (ValueError, TypeError, SyntaxError):
        shown = REDACTED if key.secret else repr(raw)
        origin = {
            "env": "from the environment", "config.yml": "from config.yml", "default": "as its declared default",
        }.get(source, f"({source})")
        raise ConfigError(
            f"invalid {key.env_name} ({key.path}) {origin}: got {shown}, expected {_expected(key)}",
            key=key.path,
        ) from None
