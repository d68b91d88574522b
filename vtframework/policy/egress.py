"""The TLP egress policy: what may leave for VirusTotal.

Looking an observable up sends its value to VirusTotal; uploading a sample or
submitting a URL shares it with the VirusTotal community. Both are checked
against the observable's MOST restrictive TLP marking before any request.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from vtframework.errors import VTFrameworkError
from vtframework.policy.markings import TLP_MARKINGS
from vtframework.policy.tlp import TLP_ORDER, normalize_tlp, tlp_rank

#: The TLP marking-definition ids of STIX 2.1 and OpenCTI -> canonical name.
TLP_MARKING_IDS = {marking["id"]: name for name, marking in TLP_MARKINGS.items()}


class EgressRefused(VTFrameworkError):
    """The observable's TLP forbids sending it to VirusTotal; nothing was sent."""


def most_restrictive_tlp(markings: Iterable[Any]) -> str:
    """The most restrictive TLP among ``markings`` (``TLP:CLEAR`` when there is none).

    Accepts OpenCTI marking dicts (``definition_type``/``definition``), STIX
    marking-definition objects (``definition_type: tlp`` / ``name``) or bare
    marking ids and names. Non-TLP markings (PAP, statements) are ignored.
    """
    found = [tlp for tlp in (_tlp_of(marking) for marking in markings) if tlp]
    return max(found, key=tlp_rank) if found else TLP_ORDER[0]


def _tlp_of(marking: Any) -> str | None:
    if isinstance(marking, str):
        return TLP_MARKING_IDS.get(marking) or _parse(marking)
    if not isinstance(marking, Mapping):
        return None
    for key in ("standard_id", "id"):
        if marking.get(key) in TLP_MARKING_IDS:
            return TLP_MARKING_IDS[marking[key]]
    if str(marking.get("definition_type", "")).upper() != "TLP":
        return None
    definition = marking.get("definition")
    if isinstance(definition, Mapping):
        definition = definition.get("tlp")
    return _parse(definition or marking.get("name") or "")


def _parse(text: Any) -> str | None:
    if not isinstance(text, str) or not text.upper().startswith("TLP:"):
        return None
    try:
        return normalize_tlp(text)
    except ValueError:
        return None


def check_lookup(tlp: str, settings: Mapping[str, Any], subject: str) -> None:
    """Refuse a VirusTotal lookup of an observable above ``VIRUSTOTAL_MAX_TLP``."""
    limit = settings["virustotal.max_tlp"]
    if tlp_rank(tlp) > tlp_rank(limit):
        raise EgressRefused(
            f"{subject} is {tlp}, above VIRUSTOTAL_MAX_TLP={limit}: nothing was sent to VirusTotal"
        )


def upload_allowed(tlp: str, settings: Mapping[str, Any]) -> bool:
    """May a sample or URL with this TLP be shared with the VirusTotal community?"""
    limit = settings["virustotal.upload_max_tlp"]
    return tlp_rank(normalize_tlp(tlp)) <= min(tlp_rank(limit), tlp_rank(settings["virustotal.max_tlp"]))
