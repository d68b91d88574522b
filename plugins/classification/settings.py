"""Configuration keys of the classification plugin (costs no request: on by default)."""

from vtframework import ConfigKey

KEYS = (
    ConfigKey(
        "virustotal.file_family_min_share",
        "float",
        0.2,
        "Share (0-1) of the engines that flag a file that must give its most named family before that family "
        "becomes a Malware the file is related-to (above 1 never).",
        minimum=0,
    ),
    ConfigKey(
        "virustotal.file_family_min_votes",
        "int",
        3,
        "Fewest engines that must give the family name before it becomes a Malware.",
        minimum=1,
    ),
    ConfigKey(
        "virustotal.file_sandbox_labels",
        "bool",
        True,
        "Label files with the classifications (rat, stealer, trojan…) of the sandboxes that found them "
        "malicious or suspicious.",
    ),
)
