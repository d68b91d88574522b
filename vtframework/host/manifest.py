"""The connector manifest and configuration JSON Schema of a preset, from its declared keys.

OpenCTI's connector manager deploys a connector from its
``__metadata__/connector_manifest.json`` (what it is, which image) and
``connector_config_schema.json`` (the environment it takes). Both are
generated here from the preset and every loaded plugin's declared keys, so a
third-party plugin's keys appear as soon as it is installed; the files shipped
in the repository and the image are these, kept in step by a test.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from vtframework.host.app import App
from vtframework.policy.tlp import TLP_ORDER
from vtframework.records import ConfigKey

#: Image the manager starts (one image, four connectors told apart by VTF_PRESET).
CONTAINER_IMAGE = "vtframework"
JSON_SCHEMA = "https://json-schema.org/draft/2020-12/schema"

#: What the catalog shows for each preset (the original connectors' catalog entries, for vtframework).
CATALOG: dict[str, dict[str, Any]] = {
    "virustotal": {
        "title": "VirusTotal (vtframework)",
        "description": "Enriches files, artifacts, IP addresses, domains, hostnames, URLs and indicators with "
        "VirusTotal: detection statistics and score, notes, indicators, YARA rules, autonomous systems, "
        "countries and resolutions. VirusTotal quota is shared and never wasted, and nothing above the "
        "configured TLP is sent to VirusTotal.",
        "use_cases": ["Infrastructure & Attack Surface Visibility"],
        "solution_categories": ["Enrichment & Reputation", "Malware Analysis & Sandbox"],
        "playbook_supported": True,
        "manager_supported": True,
        "max_confidence_level": 60,
    },
    "virustotal-downloader": {
        "title": "VirusTotal Downloader (vtframework)",
        "description": "Downloads the sample of a file observable from VirusTotal (SHA-256, SHA-1 or MD5), "
        "verifies it, and stores it in OpenCTI as an Artifact linked to the file, byte for byte.",
        "use_cases": ["Detection & Response Enablement"],
        "solution_categories": ["Malware Analysis & Sandbox", "Enrichment & Reputation"],
        "playbook_supported": True,
        "manager_supported": True,
        "max_confidence_level": 70,
    },
    "virustotal-livehunt": {
        "title": "VirusTotal Livehunt Rules (vtframework)",
        "description": "Keeps VirusTotal Livehunt rulesets in step with the YARA indicators of an OpenCTI "
        "live stream: a ruleset per hunted indicator, edited in place, never duplicated.",
        "use_cases": ["Detection & Response Enablement"],
        "solution_categories": ["Malware Analysis & Sandbox"],
        "playbook_supported": False,
        "manager_supported": False,
        "max_confidence_level": 50,
    },
    "virustotal-livehunt-notifications": {
        "title": "VirusTotal Livehunt Notifications (vtframework)",
        "description": "Imports the files VirusTotal Livehunt rulesets matched: the file, the alert, and a "
        "Sighting of the very YARA indicator that hunted it when the ruleset came from OpenCTI; runs on a "
        "schedule, never skips nor repeats a notification across a restart.",
        "use_cases": ["Detection & Response Enablement"],
        "solution_categories": ["Malware Analysis & Sandbox"],
        "playbook_supported": False,
        "manager_supported": True,
        "max_confidence_level": 50,
    },
}


def version() -> str:
    try:
        return metadata.version("vtframework")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def slug(app: App) -> str:
    return f"vtframework-{_preset(app)}"


def _preset(app: App) -> str:
    if app.preset is None:
        raise ValueError("a manifest is per preset")
    return app.preset.name


def connector_manifest(app: App) -> dict[str, Any]:
    """``connector_manifest.json`` of the app's preset."""
    preset = _preset(app)
    entry = CATALOG[preset]
    return {
        "title": entry["title"],
        "slug": slug(app),
        "description": entry["description"],
        "short_description": app.preset.description if app.preset else "",
        "use_cases": entry["use_cases"],
        "solution_categories": entry["solution_categories"],
        "license_type": "Free",
        "contact": None,
        "verified": False,
        "last_verified_date": None,
        "playbook_supported": entry["playbook_supported"],
        "max_confidence_level": entry["max_confidence_level"],
        "support_version": ">=6.9.0",
        "subscription_link": "https://www.virustotal.com",
        "source_code": None,
        "manager_supported": entry["manager_supported"],
        "container_version": version(),
        "container_image": CONTAINER_IMAGE,
        "container_type": app.settings["connector.type"],
    }


def _property(key: ConfigKey, default: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"description": key.description}
    if key.type == "bool":
        schema["type"] = "boolean"
    elif key.type in ("int", "float"):
        schema["type"] = "integer" if key.type == "int" else "number"
        if key.minimum is not None:
            schema["minimum"] = key.minimum if key.type == "float" else int(key.minimum)
    elif key.type == "list":
        schema.update(type="array", items={"type": "string"})
    else:
        schema["type"] = "string"
        if key.type == "url":
            schema["format"] = "uri"
        elif key.type == "tlp":
            schema["enum"] = [*TLP_ORDER, "TLP:WHITE"]
    if key.choices:
        schema["enum"] = list(key.choices)
    if key.secret:
        schema.update(format="password", writeOnly=True)
    elif default is not None:
        schema["default"] = default
    return schema


def config_schema(app: App) -> dict[str, Any]:
    """``connector_config_schema.json`` of the app's preset: one property per environment variable."""
    preset = _preset(app)
    defaults = app.preset.defaults if app.preset else {}
    # Defaults are the keys' and the preset's, whatever this process's environment says.
    properties = {entry.key.env_name: _property(entry.key, defaults.get(entry.key.path, entry.key.default))
                  for entry in app.settings.entries()}
    # The manager deploys the one image; the preset tells it which connector to be.
    properties["VTF_PRESET"].update(const=preset, default=preset)
    properties["CONNECTOR_TYPE"].update(const=app.settings["connector.type"], default=app.settings["connector.type"])
    required = ["OPENCTI_URL", "OPENCTI_TOKEN", app.settings.entry(app.preset.api_key_path).key.env_name]
    required += [e.key.env_name for e in app.settings.entries() if e.key.required and e.key.env_name not in required]
    return {
        "$schema": JSON_SCHEMA,
        "$id": f"urn:vtframework:{preset}:connector-config",
        "type": "object",
        "properties": properties,
        "required": required,
        # pycti's own variables (MQ_*, CONNECTOR_QUEUE_THRESHOLD...) pass through.
        "additionalProperties": True,
    }
