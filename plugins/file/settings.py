"""Configuration keys of the file plugin (names and defaults of the original connector)."""

from vtframework import ConfigKey, indicator_keys

KEYS = (
    ConfigKey(
        "virustotal.file_create_note_full_report",
        "bool",
        True,
        "Add a note with the full VirusTotal report (per-engine results).",
    ),
    ConfigKey(
        "virustotal.file_upload_unseen_artifacts",
        "bool",
        True,
        "Upload Artifacts VirusTotal has never seen (only when their TLP allows sharing).",
    ),
    ConfigKey("virustotal.file_import_yara", "bool", True, "Import the crowdsourced YARA rules that matched."),
    *indicator_keys("file", "file"),
    ConfigKey(
        "virustotal.file_upload_poll_attempts",
        "int",
        10,
        "Times the analysis of an uploaded Artifact is polled before giving up.",
        minimum=1,
    ),
    ConfigKey(
        "virustotal.file_upload_poll_interval",
        "float",
        30.0,
        "Seconds between two polls of an uploaded Artifact's analysis.",
        minimum=0,
    ),
)
