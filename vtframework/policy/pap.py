"""The PAP scale (FIRST PAP 2.0): canonical names and their order, least to most restrictive."""

from __future__ import annotations

#: PAP levels from least to most restrictive. WHITE is PAP 1.0's name for CLEAR.
PAP_ORDER = ("PAP:CLEAR", "PAP:GREEN", "PAP:AMBER", "PAP:RED")
_PAP_ALIASES = {"PAP:WHITE": "PAP:CLEAR"}


def normalize_pap(value: str) -> str:
    """Return the canonical ``PAP:X`` name for ``value`` or raise ``ValueError``."""
    text = str(value).strip().upper().replace(" ", "")
    text = _PAP_ALIASES.get(text, text)
    if text not in PAP_ORDER:
        raise ValueError(value)
    return text


def pap_rank(value: str) -> int:
    """Position of a PAP in :data:`PAP_ORDER` (higher is more restrictive)."""
    return PAP_ORDER.index(normalize_pap(value))
