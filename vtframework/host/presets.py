"""Presets: one install, four connectors.

A preset picks the built-in plugins and puts back the original connector's
defaults (id, name, scope, type, log level), so a service that ran one of the
original images runs on ours with its environment unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vtframework.errors import ConfigError


@dataclass(frozen=True)
class Preset:
    name: str
    #: Built-in plugins the preset loads (third-party plugins load unless denied).
    plugins: tuple[str, ...]
    #: Config key holding the VirusTotal API key for this preset.
    api_key_path: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    #: The original connector's run interval key in seconds, if it had one (deprecated there in
    #: favour of CONNECTOR_DURATION_PERIOD, which wins when both are set).
    interval_path: str | None = None


#: Typeless features the enrichment preset adds to every file, IP, domain and URL; those
#: that cost VirusTotal requests are off until their own switch turns them on.
FEATURES = (
    "sigma", "ids", "malware_config", "classification", "crowdsourced_context", "community", "gti", "explain",
)

PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            "virustotal",
            ("file", "ip", "domain", "url", *FEATURES),
            "virustotal.token",
            {
                "connector.id": "virustotal--9b7842f4-078f-4cec-8550-1c586d075a77",
                "connector.name": "VirusTotal",
                "connector.type": "INTERNAL_ENRICHMENT",
                "connector.log_level": "error",
            },
            "Enrichment of files, artifacts, IPs, domains, hostnames, URLs and indicators.",
        ),
        Preset(
            "virustotal-downloader",
            ("downloader",),
            "virustotal_downloader.api_key",
            {
                "connector.id": "virustotaldownloader--0c1ac73d-f173-4349-9580-322c22fa7768",
                "connector.name": "VirusTotal Downloader",
                "connector.type": "INTERNAL_ENRICHMENT",
                "connector.scope": ["StixFile"],
                "connector.log_level": "error",
            },
            "Downloads samples by hash into OpenCTI Artifacts.",
        ),
        Preset(
            "virustotal-livehunt",
            ("livehunt",),
            "virustotal_livehunt.token",
            {
                "connector.name": "VirusTotal LiveHunts",
                "connector.type": "STREAM",
                "connector.scope": ["yara"],
                "connector.log_level": "info",
                "connector.confidence_level": 80,
            },
            "Keeps VirusTotal Livehunt rulesets in step with OpenCTI YARA indicators.",
        ),
        Preset(
            "virustotal-livehunt-notifications",
            ("notifications", "downloader", "file", "malware_config"),
            "virustotal_livehunt_notifications.api_key",
            {
                "connector.id": "325cbb22-ee42-4898-9d99-302ca216671b",
                "connector.name": "VirusTotal Livehunt Notifications",
                "connector.type": "EXTERNAL_IMPORT",
                "connector.scope": ["StixFile", "Indicator", "Incident", "Domain-Name", "Url", "IPv4-Addr", "IPv6-Addr"],
                "connector.log_level": "error",
                "connector.duration_period": "PT5M",
            },
            "Imports what Livehunt rulesets matched: alerts, the matched files, Sightings of the hunting indicators.",
            interval_path="virustotal_livehunt_notifications.interval_sec",
        ),
    )
}

#: ``vtframework run <mode>`` names.
RUN_MODES = {
    "enrichment": "virustotal",
    "downloader": "virustotal-downloader",
    "livehunt": "virustotal-livehunt",
    "notifications": "virustotal-livehunt-notifications",
}


def get_preset(name: str | None) -> Preset | None:
    if not name:
        return None
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown preset {name!r} (VTF_PRESET): expected one of {', '.join(PRESETS)}", key="vtf.preset"
        ) from None


def detect_preset(env: Mapping[str, str], config: Mapping[str, Any] | None = None) -> str:
    """Guess the preset of an unchanged original docker-compose service (or ``config.yml``).

    Each original connector is told apart by its own API key (and
    CONNECTOR_TYPE=STREAM for the livehunt one, EXTERNAL_IMPORT for the
    notifications one); ``VTF_PRESET`` overrides. The environment is read
    first; a ``config.yml`` (``config``, as read) says the same with the
    section of its key and ``connector.type``.
    """
    if env.get("VTF_PRESET"):
        return env["VTF_PRESET"]
    found = _detect(env.get("CONNECTOR_TYPE"), [bool(env.get(name)) for name in _KEY_VARIABLES])
    if found is None and config:
        connector = config.get("connector")
        kind = connector.get("type") if isinstance(connector, Mapping) else None
        found = _detect(kind, [isinstance(config.get(section), Mapping) for section in _KEY_SECTIONS])
    return found or "virustotal"


#: Where each original connector's API key lives: its variable and its config.yml section (same order).
_KEY_VARIABLES = ("VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_API_KEY", "VIRUSTOTAL_LIVEHUNT_TOKEN",
                  "VIRUSTOTAL_DOWNLOADER_API_KEY", "VIRUSTOTAL_TOKEN")
_KEY_SECTIONS = ("virustotal_livehunt_notifications", "virustotal_livehunt", "virustotal_downloader", "virustotal")


def _detect(kind: Any, keys: list[bool]) -> str | None:
    notifications, livehunt, downloader, enrichment = keys
    kind = str(kind or "").upper()
    if notifications or kind == "EXTERNAL_IMPORT":
        return "virustotal-livehunt-notifications"
    if livehunt or kind == "STREAM":
        return "virustotal-livehunt"
    if downloader and not enrichment:
        return "virustotal-downloader"
    return "virustotal" if enrichment else None
