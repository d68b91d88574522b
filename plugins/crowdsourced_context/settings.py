"""Configuration keys of the crowdsourced_context plugin (costs no request: on by default)."""

from vtframework import ConfigKey

KEYS = (
    ConfigKey(
        "virustotal.crowdsourced_context_max_entries",
        "int",
        20,
        "Most crowdsourced context entries (threat feeds naming the IP, domain, URL or file) put in the note, "
        "newest first; 0 turns the note off. No extra request.",
        minimum=0,
    ),
)
