"""Configuration keys of the url plugin (names and defaults of the original connector)."""

from vtframework import ConfigKey, indicator_keys

KEYS = (
    *indicator_keys("url", "URL"),
    ConfigKey(
        "virustotal.url_upload_unseen",
        "bool",
        True,
        "Submit URLs VirusTotal has never seen (only when their TLP allows sharing).",
    ),
    ConfigKey(
        "virustotal.url_upload_poll_attempts",
        "int",
        10,
        "Times the analysis of a submitted URL is polled before giving up.",
        minimum=1,
    ),
    ConfigKey(
        "virustotal.url_upload_poll_interval",
        "float",
        5.0,
        "Seconds between two polls of a submitted URL's analysis.",
        minimum=0,
    ),
)
