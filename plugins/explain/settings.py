"""Configuration keys of the explain plugin (costs no request: on by default)."""

from vtframework import ConfigKey

KEYS = (
    ConfigKey(
        "virustotal.explain_score",
        "bool",
        True,
        "Add a short note to every enrichment that says what made the score (the engines and their verdicts, "
        "the GTI assessment, the rules that matched, the sandboxes, the indicator threshold). No extra request.",
    ),
)
