"""Configuration keys of the downloader plugin (the original's key, plus a size cap)."""

from vtframework import ConfigKey

KEYS = (
    ConfigKey(
        "virustotal_downloader.api_key",
        "str",
        None,
        "VirusTotal API key with download privilege (premium).",
        secret=True,
    ),
    ConfigKey(
        "virustotal_downloader.max_size",
        "int",
        650 * 1024 * 1024,
        "Largest sample, in bytes, that is downloaded.",
        minimum=1,
    ),
)
