"""Presets: one install, three connectors.

A preset picks the built-in plugins and puts back the original connector's
defaults (id, name, scope, type, log level), so a service that ran one of the
original images runs on ours with its environment unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

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
    )
}

#: ``vtframework run <mode>`` names.
RUN_MODES = {"enrichment": "virustotal", "downloader": "virustotal-downloader", "livehunt": "virustotal-livehunt"}


def get_preset(name: str | None) -> Preset | None:
    if not name:
        return None
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown preset {name!r} (VTF_PRESET): expected one of {', '.join(PRESETS)}", key="vtf.preset"
        ) from None


def detect_preset(env: Mapping[str, str]) -> str:
    """Guess the preset of an unchanged original docker-compose service.

    Each original connector is told apart by its own API key variable (and
    CONNECTOR_TYPE=STREAM for the livehunt one); ``VTF_PRESET`` overrides.
    """
    if env.get("VTF_PRESET"):
        return env["VTF_PRESET"]
    if env.get("VIRUSTOTAL_LIVEHUNT_TOKEN") or env.get("CONNECTOR_TYPE", "").upper() == "STREAM":
        return "virustotal-livehunt"
    if env.get("VIRUSTOTAL_DOWNLOADER_API_KEY") and not env.get("VIRUSTOTAL_TOKEN"):
        return "virustotal-downloader"
    return "virustotal"
