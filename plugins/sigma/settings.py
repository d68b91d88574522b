"""Configuration keys of the sigma plugin.

The note of matched rules is read from the file report (free); the Indicators
need each rule's body (``GET /sigma_rules/{id}``), so they are off by default.
"""

from vtframework import ConfigKey

LEVELS = ("low", "medium", "high", "critical")

KEYS = (
    ConfigKey(
        "virustotal.file_import_sigma",
        "bool",
        False,
        "Turn the crowdsourced Sigma rules that matched a file into Indicators (the rule rebuilt as Sigma YAML, "
        "its ATT&CK techniques as Attack-Patterns); costs one request per rule not cached.",
        costs_requests=True,
    ),
    ConfigKey(
        "virustotal.sigma_max_rules",
        "int",
        20,
        "Most Sigma rules made into Indicators (and requested) per enrichment, highest level first "
        "(the result says when it cuts).",
        minimum=0,
    ),
    ConfigKey(
        "virustotal.sigma_min_level",
        "str",
        "low",
        "Lowest rule level made into an Indicator (low, medium, high, critical); lower ones stay in the note only.",
        choices=LEVELS,
    ),
)
