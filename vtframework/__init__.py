"""vtframework: one pluggable VirusTotal integration for OpenCTI.

This module is the public API: everything a plugin, a test or a script needs is
importable from here (``from vtframework import hookimpl, ConfigKey, VTQuery``).
Plugins implement the hooks of :mod:`vtframework.hookspecs` with the
:data:`hookimpl` marker, return the records of :mod:`vtframework.records` and
raise the errors of :mod:`vtframework.errors`.

Only the plugin contract is imported eagerly; every other name is loaded on
first use, so ``import vtframework`` stays cheap and pulls in neither the HTTP
client nor pycti. ``docs/architecture.md`` says where each name lives.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import pluggy

from vtframework.hookspecs import PROJECT
from vtframework.records import (
    CONFIG_TYPES,
    CliCommand,
    ConfigKey,
    Observable,
    PluginFailure,
    PluginInfo,
    ScoreReason,
    StreamEvent,
    VTQuery,
)

#: Marks a function as the implementation of a vtframework hook.
hookimpl = pluggy.HookimplMarker(PROJECT)

#: Public name -> the module that defines it, imported when the name is first used.
_LAZY: dict[str, str] = {
    # What hooks are handed
    "EnrichmentContext": "vtframework.context",
    "EnrichmentResult": "vtframework.context",
    "ImportContext": "vtframework.context",
    "StreamContext": "vtframework.context",
    "STIX_EXT_OCTI": "vtframework.context",
    "STIX_EXT_OCTI_SCO": "vtframework.context",
    "subject_of": "vtframework.context",
    # Egress policy
    "EgressRefused": "vtframework.policy.egress",
    "check_lookup": "vtframework.policy.egress",
    "EgressPolicy": "vtframework.policy.egress",
    "Marked": "vtframework.policy.egress",
    "most_restrictive_tlp": "vtframework.policy.egress",
    "normalize_tlp": "vtframework.policy.tlp",
    "TLP_MARKINGS": "vtframework.policy.markings",
    # VirusTotal client
    "VTClient": "vtframework.vt.client",
    "BoundClient": "vtframework.vt.egress",
    "ClientConfig": "vtframework.vt.client",
    "url_id": "vtframework.vt.client",
    "extract_malware_configs": "vtframework.vt.malware_config",
    "MalwareConfigs": "vtframework.vt.malware_config",
    "C2Address": "vtframework.vt.malware_config",
    # STIX
    "StixFactory": "vtframework.stix.factory",
    "AUTHOR_ID": "vtframework.stix.factory",
    "pattern_for": "vtframework.stix.factory",
    "from_value": "vtframework.stix.observables",
    "ascii_domain": "vtframework.stix.observables",
    "lookup_hash": "vtframework.stix.observables",
    "observables_in_pattern": "vtframework.stix.observables",
    "extract_yara_rule": "vtframework.stix.yara",
    "is_ruleset_marker": "vtframework.stix.yara",
    "marked_indicator": "vtframework.stix.yara",
    "ruleset_marker": "vtframework.stix.yara",
    "ruleset_marker_token": "vtframework.stix.yara",
    # State
    "StateStore": "vtframework.state",
    "SQLiteState": "vtframework.state",
    "open_state": "vtframework.state",
    # Host
    "App": "vtframework.host.app",
    "build_app": "vtframework.host.app",
    "Settings": "vtframework.host.config",
    "indicator_keys": "vtframework.host.core_keys",
    "open_app_state": "vtframework.host.services",
    "open_client": "vtframework.host.services",
    # Flows
    "Pipeline": "vtframework.pipeline.enrich",
    "bundle": "vtframework.pipeline.enrich",
    "fetch_sample": "vtframework.pipeline.download",
    "save_sample": "vtframework.pipeline.download",
}
#: Public sub-modules reachable as attributes (``from vtframework import blocks``).
_LAZY_MODULES: dict[str, str] = {
    "addons": "vtframework.pipeline.addons",
    "blocks": "vtframework.pipeline.blocks",
    "errors": "vtframework.errors",
    "hookspecs": "vtframework.hookspecs",
    "records": "vtframework.records",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        value: Any = importlib.import_module(_LAZY_MODULES[name])
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'vtframework' has no attribute {name!r}")
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_LAZY_MODULES})


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from vtframework import errors, hookspecs, records
    from vtframework.context import (
        STIX_EXT_OCTI,
        STIX_EXT_OCTI_SCO,
        EnrichmentContext,
        EnrichmentResult,
        ImportContext,
        StreamContext,
        subject_of,
    )
    from vtframework.host.app import App, build_app
    from vtframework.host.config import Settings
    from vtframework.host.core_keys import indicator_keys
    from vtframework.host.services import open_app_state, open_client
    from vtframework.pipeline import addons, blocks
    from vtframework.pipeline.download import fetch_sample, save_sample
    from vtframework.pipeline.enrich import Pipeline, bundle
    from vtframework.policy.egress import EgressPolicy, EgressRefused, Marked, check_lookup, most_restrictive_tlp
    from vtframework.policy.markings import TLP_MARKINGS
    from vtframework.policy.tlp import normalize_tlp
    from vtframework.state import SQLiteState, StateStore, open_state
    from vtframework.stix.factory import AUTHOR_ID, StixFactory, pattern_for
    from vtframework.stix.observables import ascii_domain, from_value, lookup_hash, observables_in_pattern
    from vtframework.stix.yara import (
        extract_yara_rule,
        is_ruleset_marker,
        marked_indicator,
        ruleset_marker,
        ruleset_marker_token,
    )
    from vtframework.vt.client import ClientConfig, VTClient, url_id
    from vtframework.vt.malware_config import C2Address, MalwareConfigs, extract_malware_configs
    from vtframework.vt.egress import BoundClient

__all__ = [
    "hookimpl",
    "CONFIG_TYPES",
    "CliCommand",
    "ConfigKey",
    "Observable",
    "PluginFailure",
    "PluginInfo",
    "ScoreReason",
    "StreamEvent",
    "VTQuery",
    *_LAZY,
    *_LAZY_MODULES,
]
