"""Configuration keys of the domain plugin (names and defaults of the original connector)."""

from vtframework import ConfigKey, indicator_keys

KEYS = (
    *indicator_keys("domain", "domain"),
    ConfigKey(
        "virustotal.domain_add_relationships",
        "bool",
        False,
        "Add resolves-to relationships to the addresses of the A and AAAA records.",
    ),
)
