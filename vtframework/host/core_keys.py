"""Configuration keys the core owns: OpenCTI, the connector, VirusTotal access, state.

Names, meanings and defaults of the original connectors are kept so that an
existing docker-compose file works unchanged. Plugin-specific keys (YARA,
indicator thresholds, livehunt e-mails…) are declared by their plugins.
"""

from __future__ import annotations

from vtframework.records import ConfigKey

LOG_LEVELS = ("debug", "info", "warn", "warning", "error")
CONNECTOR_TYPES = ("INTERNAL_ENRICHMENT", "STREAM", "EXTERNAL_IMPORT")

VIRUSTOTAL_BASE_URL = "https://www.virustotal.com/api/v3"

CORE_KEYS: tuple[ConfigKey, ...] = (
    # OpenCTI
    ConfigKey("opencti.url", "url", None, "URL of the OpenCTI platform."),
    ConfigKey("opencti.token", "str", None, "OpenCTI token of the connector's user.", secret=True),
    ConfigKey("opencti.ssl_verify", "bool", False, "Verify OpenCTI's TLS certificate."),
    ConfigKey("opencti.json_logging", "bool", True, "Log as JSON lines (pycti's format)."),
    # Connector (defaults are the enrichment connector's; presets change them)
    ConfigKey("connector.id", "str", None, "Unique id of this connector instance (UUIDv4)."),
    ConfigKey("connector.name", "str", "VirusTotal", "Name shown in OpenCTI."),
    ConfigKey("connector.type", "str", "INTERNAL_ENRICHMENT", "OpenCTI connector type.", choices=CONNECTOR_TYPES),
    ConfigKey(
        "connector.scope",
        "list",
        ["StixFile", "Artifact", "IPv4-Addr", "IPv6-Addr", "Domain-Name", "Hostname", "Url", "Indicator"],
        "Entity types the connector handles (comma-separated).",
    ),
    ConfigKey("connector.auto", "bool", False, "Enrich automatically on creation or update."),
    ConfigKey("connector.log_level", "str", "error", "Log level.", choices=LOG_LEVELS),
    ConfigKey("connector.listen_protocol", "str", "AMQP",
              "How OpenCTI delivers enrichment and download requests: AMQP (its RabbitMQ queue) or API "
              "(HTTP calls to the connector).", choices=("AMQP", "API")),
    ConfigKey("connector.confidence_level", "int", None, "Default confidence level (0-100).", minimum=0),
    ConfigKey("connector.expose_metrics", "bool", False, "Expose Prometheus metrics."),
    ConfigKey("connector.metrics_port", "int", 9095, "Port of the Prometheus metrics endpoint.", minimum=1),
    ConfigKey(
        "connector.duration_period",
        "str",
        None,
        "Time between two runs of an import connector, as an ISO 8601 duration (PT5M); 0 runs once and stops.",
    ),
    ConfigKey("connector.run_and_terminate", "bool", False, "Run an import connector once, then stop."),
    ConfigKey(
        "connector.queue_threshold",
        "float",
        500.0,
        "Skip a scheduled run while the connector's queue in OpenCTI holds more than this many MB (import connectors).",
        minimum=0,
    ),
    ConfigKey("connector.live_stream_id", "str", None, "Live stream id (stream connectors)."),
    ConfigKey("connector.live_stream_listen_delete", "bool", True, "Listen to delete events (stream connectors)."),
    ConfigKey(
        "connector.live_stream_no_dependencies",
        "bool",
        True,
        "Do not receive referenced objects as extra events (stream connectors).",
    ),
    # VirusTotal access shared by every plugin
    ConfigKey("virustotal.token", "str", None, "VirusTotal API key.", secret=True),
    ConfigKey("virustotal.base_url", "url", VIRUSTOTAL_BASE_URL, "VirusTotal API v3 base URL."),
    ConfigKey(
        "virustotal.max_tlp",
        "tlp",
        "TLP:AMBER",
        "Most restrictive TLP an observable may carry for its value to be sent to VirusTotal.",
    ),
    ConfigKey(
        "virustotal.replace_with_lower_score",
        "bool",
        True,
        "Let VirusTotal's score replace a higher score already on the observable.",
    ),
    ConfigKey(
        "virustotal.include_attributes_in_note",
        "bool",
        False,
        "Append the main VirusTotal attributes to the notes.",
    ),
    ConfigKey(
        "virustotal.upload_max_tlp",
        "tlp",
        "TLP:GREEN",
        "Most restrictive TLP an Artifact or URL may carry to be uploaded (shared with the VirusTotal community).",
    ),
    ConfigKey(
        "virustotal.marking_map",
        "list",
        [],
        "Markings vtframework cannot place on the TLP or PAP scale (a custom TLP, a statement, an unknown id), "
        "mapped to a level: NAME_OR_ID=LEVEL, comma-separated, e.g. TLP:EXTERNAL=TLP:AMBER; an unmapped one "
        "counts as the most restrictive and nothing about its observable is sent to VirusTotal.",
    ),
    ConfigKey("virustotal.requests_per_minute", "int", 4, "Requests per minute the key allows.", minimum=1),
    ConfigKey("virustotal.requests_per_day", "int", 500, "Requests per day the key allows.", minimum=1),
    ConfigKey(
        "virustotal.detect_quota",
        "bool",
        True,
        "Read the key's real quotas from VirusTotal (before the first request) and use them.",
    ),
    ConfigKey("virustotal.connect_timeout", "float", 10.0, "Seconds to wait for a connection.", minimum=0.1),
    ConfigKey("virustotal.read_timeout", "float", 60.0, "Seconds to wait for an answer.", minimum=0.1),
    ConfigKey(
        "virustotal.request_deadline",
        "float",
        120.0,
        "Seconds one answer may take in all (connection, headers and body), however slowly it trickles in.",
        minimum=0.1,
    ),
    ConfigKey(
        "virustotal.download_deadline", "float", 1800.0, "Seconds one sample download may take in all.", minimum=0.1
    ),
    ConfigKey(
        "virustotal.max_answer_size",
        "int",
        64 << 20,
        "Largest VirusTotal answer accepted, in bytes, before and after decompression.",
        minimum=1024,
    ),
    ConfigKey(
        "virustotal.max_related_objects",
        "int",
        1000,
        "Most STIX objects one enrichment adds (resolutions, YARA rules...); the rest is left out with a warning.",
        minimum=1,
    ),
    ConfigKey("virustotal.max_retries", "int", 5, "Retries of a failed request (5xx, 429, timeouts).", minimum=0),
    ConfigKey(
        "virustotal.max_quota_wait",
        "float",
        120.0,
        "Longest wait, in seconds, for quota before a lookup fails.",
        minimum=0,
    ),
    ConfigKey("virustotal.cache_ttl", "int", 86400, "Seconds a VirusTotal answer is reused.", minimum=0),
    ConfigKey("virustotal.not_found_ttl", "int", 3600, "Seconds a 'not found' answer is reused.", minimum=0),
    # Framework
    ConfigKey("vtf.config_file", "path", None, "config.yml to read (default: config.yml in the working directory)."),
    ConfigKey("vtf.state_dir", "path", ".vtframework", "Directory of the embedded state (cache, quota, livehunt map)."),
    ConfigKey("vtf.redis_url", "str", None, "Redis URL to share cache, quota and state between replicas."),
    ConfigKey(
        "vtf.cache_max_mb",
        "int",
        512,
        "Most megabytes the SQLite response cache keeps; the least recently used answers go first.",
        minimum=1,
    ),
    ConfigKey("vtf.plugins", "list", None, "Only load these plugins (comma-separated names)."),
    ConfigKey("vtf.disable_plugins", "list", [], "Never load these plugins (comma-separated names)."),
    ConfigKey("vtf.strict_plugins", "bool", False, "Make a failing plugin fatal (for plugin authors)."),
    ConfigKey(
        "vtf.external_plugins",
        "bool",
        True,
        "Load plugins other packages install (entry points); false loads the built-ins only.",
    ),
    ConfigKey("vtf.trace_plugins", "bool", False, "Log every plugin hook call with its plugin and duration."),
    ConfigKey(
        "vtf.preset",
        "str",
        None,
        "Preset: virustotal, virustotal-downloader, virustotal-livehunt or virustotal-livehunt-notifications.",
    ),
    ConfigKey(
        "vtf.platform_retry_pause",
        "float",
        2.0,
        "First pause, in seconds, before asking an unavailable OpenCTI or RabbitMQ again (it doubles, up to 30 s).",
        minimum=0,
    ),
    ConfigKey(
        "vtf.platform_max_wait",
        "float",
        300.0,
        "Longest wait, in seconds, for OpenCTI or RabbitMQ within one message; then the message goes back to the queue.",
        minimum=0,
    ),
    ConfigKey(
        "vtf.strict_version",
        "bool",
        False,
        "Refuse to start unless the installed pycti's version equals the OpenCTI platform's.",
    ),
)


def indicator_keys(kind: str, label: str) -> tuple[ConfigKey, ...]:
    """The three indicator keys every type plugin declares for itself.

    ``kind`` is the key infix (``file``, ``ip``…), ``label`` what the user reads
    (``file``, ``IP address``…). Names and defaults are the original connector's.
    """
    return (
        ConfigKey(
            f"virustotal.{kind}_indicator_create_positives",
            "int",
            10,
            f"Create an indicator when at least this many engines flag the {label} (0 disables).",
            minimum=0,
        ),
        ConfigKey(
            f"virustotal.{kind}_indicator_valid_minutes",
            "int",
            2880,
            "Minutes the created indicator stays valid.",
            minimum=1,
        ),
        ConfigKey(
            f"virustotal.{kind}_indicator_detect",
            "bool",
            True,
            "Set the detection flag on the created indicator.",
        ),
    )
