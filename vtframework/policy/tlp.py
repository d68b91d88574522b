"""The TLP scale: canonical names and their order, least to most restrictive."""

from __future__ import annotations

#: TLP levels from least to most restrictive. WHITE is TLP 1.0's name for CLEAR.
TLP_ORDER = ("TLP:CLEAR", "TLP:GREEN", "TLP:AMBER", "TLP:AMBER+STRICT", "TLP:RED")
_TLP_ALIASES = {"TLP:WHITE": "TLP:CLEAR"}


def normalize_tlp(value: str) -> str:
    """Return the canonical ``TLP:X`` name for ``value`` or raise ``ValueError``."""
    text = str(value).strip().upper().replace(" ", "")
    if not text.startswith("TLP:"):
        text = "TLP:" + text
    text = _TLP_ALIASES.get(text, text)
    if text not in TLP_ORDER:
        raise ValueError(value)
    return text


def tlp_rank(value: str) -> int:
    """Position of a TLP in :data:`TLP_ORDER` (higher is more restrictive)."""
    return TLP_ORDER.index(normalize_tlp(value))
