"""Configuration keys of the livehunt plugin (names of the original stream connector)."""

from vtframework import ConfigKey

KEYS = (
    ConfigKey(
        "virustotal_livehunt.token",
        "str",
        None,
        "VirusTotal API key with Livehunt access (premium).",
        secret=True,
    ),
    ConfigKey(
        "virustotal_livehunt.notification_emails",
        "list",
        [],
        "E-mail addresses notified when a ruleset matches (comma-separated or JSON list).",
    ),
    ConfigKey(
        "virustotal_livehunt.shared_owners",
        "list",
        [],
        "VirusTotal users or groups given edit rights on each ruleset (comma-separated or JSON list); "
        "write a group as group:<name>, a user as user:<name> or just <name>.",
    ),
    ConfigKey(
        "virustotal_livehunt.limit",
        "int",
        100,
        "Most notifications a ruleset sends in 24 hours.",
        minimum=1,
    ),
    ConfigKey(
        "virustotal_livehunt.on_detection_false",
        "str",
        "delete",
        "What happens to a ruleset when its indicator's detection flag is turned off: delete it "
        "(the original connector's behaviour) or disable it (keeps its id and notification history).",
        choices=("delete", "disable"),
    ),
)
