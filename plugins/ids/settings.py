"""Configuration keys of the ids plugin (costs no request: on by default)."""

from vtframework import ConfigKey

KEYS = (
    ConfigKey(
        "virustotal.file_import_ids",
        "bool",
        True,
        "Turn the crowdsourced IDS (Snort/Suricata) rules that fired in VirusTotal's sandboxes into Indicators, "
        "and the traffic they saw into observables of the file. No extra request.",
    ),
    ConfigKey(
        "virustotal.ids_max_rules",
        "int",
        20,
        "Most IDS rules made into Indicators per enrichment, most severe first (the result says when it cuts).",
        minimum=0,
    ),
    ConfigKey(
        "virustotal.ids_max_observables",
        "int",
        20,
        "Most observables (addresses, domains, URLs, traffic, JA3) taken from the alerts per enrichment "
        "(the result says when it cuts).",
        minimum=0,
    ),
)
