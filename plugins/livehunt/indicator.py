"""What the livehunt plugin reads from an OpenCTI YARA indicator (stream data or API listing)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vtframework import STIX_EXT_OCTI, Marked, most_restrictive_tlp
from vtframework.errors import InputError


@dataclass(frozen=True)
class YaraIndicator:
    id: str
    name: str
    pattern: str
    detection: bool
    revoked: bool
    #: The most restrictive TLP among the indicator's markings.
    tlp: str
    #: When OpenCTI last changed it (``modified``); "" when the event does not say.
    version: str = ""
    #: Every marking it carries (ids, or OpenCTI's description of them): what decides if its rule may leave.
    markings: tuple[Any, ...] = ()

    @property
    def hunted(self) -> bool:
        """Should a Livehunt ruleset run for it (before the TLP check)?"""
        return self.detection and not self.revoked

    @property
    def label(self) -> str:
        """How log lines name the indicator."""
        return f'indicator {self.id} ("{self.name}")' if self.name else f"indicator {self.id}"

    @property
    def marked(self) -> Marked:
        """What requests about this indicator's rule are about, for the client's egress check."""
        return Marked(self.label, self.markings or (self.tlp,))


def is_yara_indicator(data: Mapping[str, Any]) -> bool:
    """Cheap test made before anything else: is this event about a YARA indicator?"""
    return data.get("type") == "indicator" and str(data.get("pattern_type") or "").lower() == "yara"


def detection_of(data: Mapping[str, Any]) -> bool:
    """OpenCTI's detection flag: in its STIX extension on stream data, flat on older exports."""
    extensions = data.get("extensions")
    ext = extensions.get(STIX_EXT_OCTI) if isinstance(extensions, Mapping) else None
    if isinstance(ext, Mapping) and "detection" in ext:
        value = ext["detection"]
    else:
        value = data.get("x_opencti_detection", False)
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return value is True


def parse_indicator(data: Mapping[str, Any]) -> YaraIndicator:
    """The YARA indicator in ``data``; ``InputError`` naming what is missing when malformed."""
    ident = data.get("id")
    if not isinstance(ident, str) or not ident.startswith("indicator--"):
        raise InputError(f"YARA indicator without a STIX id (name {data.get('name')!r}): skipped")
    pattern = data.get("pattern")
    if not isinstance(pattern, str) or not pattern.strip():
        raise InputError(f"YARA indicator {ident} has no pattern: skipped")
    markings = data.get("object_marking_refs") or []
    markings = markings if isinstance(markings, list) else []
    details = data.get("objectMarking") if isinstance(data.get("objectMarking"), list) else []
    return YaraIndicator(
        id=ident,
        name=" ".join(str(data.get("name") or "").split()),
        pattern=pattern,
        detection=detection_of(data),
        revoked=data.get("revoked") is True,
        tlp=most_restrictive_tlp(markings),
        version=version_of(data),
        markings=Marked.of("", markings, details).markings,
    )


def version_of(data: Mapping[str, Any]) -> str:
    """The indicator's ``modified`` time (OpenCTI's ``updated_at`` when absent)."""
    extensions = data.get("extensions")
    ext = extensions.get(STIX_EXT_OCTI) if isinstance(extensions, Mapping) else None
    value = data.get("modified") or (ext.get("updated_at") if isinstance(ext, Mapping) else None)
    return str(value) if value else ""


def older(version: str, than: str) -> bool:
    """Is ``version`` strictly older than ``than``? Unknown or unreadable times are never older."""
    if not version or not than:
        return False
    try:
        return dt.datetime.fromisoformat(version) < dt.datetime.fromisoformat(than)
    except (TypeError, ValueError):
        return False
