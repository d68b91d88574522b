"""Configuration keys of the ip plugin (names and defaults of the original connector)."""

from vtframework import ConfigKey, indicator_keys

KEYS = (
    *indicator_keys("ip", "IP address"),
    ConfigKey(
        "virustotal.ip_add_relationships",
        "bool",
        False,
        "Add the Autonomous System (belongs-to) and the country (located-at).",
    ),
)
