"""Configuration keys of the notifications plugin: the original connector's names, meanings and defaults.

Every ``VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_*`` variable of the original
external-import connector keeps its name and default; ``max_old_days`` (the
name before ``max_age_days``) is still accepted. :class:`Options` reads them
once per run, forgiving the shapes docker-compose files give them (quotes
around a list, a dot before an extension).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vtframework import TLP_MARKINGS, ConfigKey

NS = "virustotal_livehunt_notifications"
SOURCES = ("ioc_stream", "hunting_notification_files", "hunting_notifications")

KEYS = (
    ConfigKey(f"{NS}.api_key", "str", None, "VirusTotal Premium API key (with Livehunt access).", secret=True),
    ConfigKey(
        f"{NS}.source", "str", "ioc_stream",
        "Where notifications are read, ioc_stream (VirusTotal's IoC stream, as the original connector; files, "
        "URLs, domains, IP addresses), hunting_notification_files (the legacy Livehunt listing; files only) or "
        "hunting_notifications (the legacy notifications; files only, each file read once more).",
        choices=SOURCES,
    ),
    ConfigKey(f"{NS}.tlp_level", "tlp", "TLP:CLEAR",
              "TLP marking of everything imported (clear, white, green, amber, amber+strict, red)."),
    ConfigKey(f"{NS}.create_alert", "bool", True, "Create an Incident (type alert) for each notification."),
    ConfigKey(f"{NS}.alert_prefix", "str", "VT ", "Prefix of the alert names."),
    ConfigKey(f"{NS}.delete_notification", "bool", False,
              "Delete each notification from VirusTotal once it is imported (by its notification id)."),
    ConfigKey(f"{NS}.filter_with_tag", "str", None, "Only import the notifications carrying this tag."),
    ConfigKey(f"{NS}.create_file", "bool", True, "Create the matched file (StixFile) of each file notification."),
    ConfigKey(f"{NS}.extensions", "list", [],
              "Only import files with one of these extensions (comma-separated, e.g. exe,dll)."),
    ConfigKey(f"{NS}.max_age_days", "int", 3,
              "Skip files first submitted to VirusTotal this many days ago or more (0 for no limit).", minimum=0),
    ConfigKey(f"{NS}.max_old_days", "int", None,
              "Former name of max_age_days, still accepted (max_age_days wins when both are set).", minimum=0),
    ConfigKey(f"{NS}.min_file_size", "int", 1000, "Skip files smaller than this many bytes (0 for no limit).", minimum=0),
    ConfigKey(f"{NS}.max_file_size", "int", 52428800,
              "Skip files larger than this many bytes; no sample larger than this is ever downloaded (0 for no limit).",
              minimum=0),
    ConfigKey(f"{NS}.min_positives", "int", 1,
              "Skip what fewer engines than this flag as malicious (0 for no limit).", minimum=0),
    ConfigKey(f"{NS}.upload_artifact", "bool", False,
              "Download each matched file and store it in OpenCTI as an Artifact linked to the file."),
    ConfigKey(f"{NS}.create_yara_rule", "bool", True,
              "Create a YARA Indicator of the matched rule when its ruleset was not made by vtframework (the rules "
              "vtframework hunts already are OpenCTI indicators, which get a Sighting instead)."),
    ConfigKey(f"{NS}.av_list", "list", [],
              "Engines whose verdicts are listed in the file's description (comma-separated, e.g. Kaspersky,Symantec)."),
    ConfigKey(f"{NS}.livehunt_tag_prefix", "str", "", "Prefix of the labels made from the file's VirusTotal tags."),
    ConfigKey(f"{NS}.yara_label_prefix", "str", "vt:yara:", "Prefix of the alert's label naming the matched YARA rule."),
    ConfigKey(f"{NS}.livehunt_label_prefix", "str", "vt:lh:",
              "Prefix of the alert's label naming the Livehunt ruleset."),
    ConfigKey(f"{NS}.enable_label_enrichment", "bool", True, "Label the alert with its ruleset and its matched rule."),
    ConfigKey(f"{NS}.get_malware_config", "bool", False,
              "Add the C2 infrastructure the loaded feature plugins extract from the file's malware configuration "
              "(read from the notification's file object, no extra request)."),
    ConfigKey(f"{NS}.create_file_indicators", "bool", False,
              "Create a SHA-256 Indicator for each matched file."),
    ConfigKey(f"{NS}.create_domain_name_indicators", "bool", False,
              "Create an Indicator for each matched domain and each domain of a malware configuration."),
    ConfigKey(f"{NS}.create_ip_indicators", "bool", False,
              "Create an Indicator for each matched IP address and each IP address of a malware configuration."),
    ConfigKey(f"{NS}.create_url_indicators", "bool", False,
              "Create an Indicator for each matched URL and each URL of a malware configuration."),
    ConfigKey(f"{NS}.limit", "int", None,
              "Most notifications handled per run (all when unset); the others wait for the next runs.", minimum=1),
    ConfigKey(f"{NS}.interval_sec", "int", None,
              "Deprecated, seconds between two runs; CONNECTOR_DURATION_PERIOD wins when both are set.", minimum=0),
    ConfigKey(f"{NS}.enrich_file", "bool", False,
              "Also enrich each matched file with the file plugin (report note, indicator, crowdsourced YARA), "
              "from the notification's own file object."),
)

#: Indicator switch per notified or extracted observable type.
INDICATOR_SWITCHES = {
    "StixFile": "create_file_indicators",
    "Domain-Name": "create_domain_name_indicators",
    "Hostname": "create_domain_name_indicators",
    "IPv4-Addr": "create_ip_indicators",
    "IPv6-Addr": "create_ip_indicators",
    "Url": "create_url_indicators",
}


def _unquoted(text: str) -> str:
    # A compose list entry written as - VAR='exe,dll' keeps its quotes in the value.
    return text.strip().strip("'\"").strip()


@dataclass(frozen=True)
class Options:
    """The settings of one run, checked and normalised."""

    source: str
    tlp: str
    marking: str
    create_alert: bool
    alert_prefix: str
    delete_notification: bool
    filter_with_tag: str | None
    create_file: bool
    extensions: frozenset[str]
    max_age_days: int
    min_file_size: int
    max_file_size: int
    min_positives: int
    upload_artifact: bool
    create_yara_rule: bool
    av_list: tuple[str, ...]
    livehunt_tag_prefix: str
    yara_label_prefix: str
    livehunt_label_prefix: str
    enable_label_enrichment: bool
    get_malware_config: bool
    indicators: frozenset[str]
    limit: int | None
    enrich_file: bool

    @classmethod
    def from_settings(cls, settings: Any) -> "Options":
        def get(key: str) -> Any:
            return settings[f"{NS}.{key}"]

        max_age = get("max_age_days")
        if get("max_old_days") is not None and _source(settings, f"{NS}.max_age_days") == "default":
            max_age = get("max_old_days")
        tag = _unquoted(get("filter_with_tag") or "") or None
        tlp = get("tlp_level")
        return cls(
            source=get("source"),
            tlp=tlp,
            marking=TLP_MARKINGS[tlp]["id"],
            create_alert=get("create_alert"),
            alert_prefix=_unquoted(get("alert_prefix") or ""),
            delete_notification=get("delete_notification"),
            filter_with_tag=tag,
            create_file=get("create_file"),
            extensions=frozenset(e for e in (_unquoted(x).lstrip(".").lower() for x in get("extensions")) if e),
            max_age_days=max_age,
            min_file_size=get("min_file_size"),
            max_file_size=get("max_file_size"),
            min_positives=get("min_positives"),
            upload_artifact=get("upload_artifact"),
            create_yara_rule=get("create_yara_rule"),
            av_list=tuple(a for a in (_unquoted(x) for x in get("av_list")) if a),
            livehunt_tag_prefix=get("livehunt_tag_prefix") or "",
            yara_label_prefix=get("yara_label_prefix") or "",
            livehunt_label_prefix=get("livehunt_label_prefix") or "",
            enable_label_enrichment=get("enable_label_enrichment"),
            get_malware_config=get("get_malware_config"),
            indicators=frozenset(kind for kind, key in INDICATOR_SWITCHES.items() if get(key)),
            limit=get("limit"),
            enrich_file=get("enrich_file"),
        )


def _source(settings: Any, path: str) -> str:
    """Where a setting came from (``default`` when the settings object cannot say)."""
    entry = getattr(settings, "entry", None)
    return entry(path).source if callable(entry) else "default"


def option_env(key: str) -> str:
    """The environment variable of one of this plugin's keys, for messages."""
    return f"{NS}_{key}".upper()
