"""The egress policy: what may leave for VirusTotal about an observable.

Looking an observable up sends its value to VirusTotal; downloading its sample
names it; uploading a sample, submitting a URL or pushing a Livehunt rule
sends its content. Each of these egress paths is decided by every marking the
observable carries:

- TLP, the most restrictive one wins: lookups, downloads and Livehunt rules
  up to ``VIRUSTOTAL_MAX_TLP``, uploads and URL submissions (shared with the
  VirusTotal community) up to ``VIRUSTOTAL_UPLOAD_MAX_TLP`` as well;
- PAP (FIRST PAP 2.0, as OpenCTI ships it): PAP:RED forbids every request
  about the observable; PAP:AMBER and below leave the decision to TLP;
- any marking this module cannot place (a TLP value it does not know such as
  ``TLP:EXTERNAL``, a statement, an id it has never seen) counts as the most
  restrictive of all until ``VIRUSTOTAL_MARKING_MAP`` maps it to a TLP or PAP
  level. The policy fails closed.

Everything here is a pure function of the markings and the settings; the
VirusTotal client enforces it on every request (see :mod:`vtframework.vt.egress`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Iterable

from vtframework.errors import VTFrameworkError
from vtframework.policy.markings import PAP_MARKINGS, PAP_WHITE_ID, TLP_MARKINGS
from vtframework.policy.pap import normalize_pap, pap_rank
from vtframework.policy.tlp import TLP_ORDER, normalize_tlp, tlp_rank

#: The TLP marking-definition ids of STIX 2.1 and OpenCTI -> canonical name.
TLP_MARKING_IDS = {marking["id"]: name for name, marking in TLP_MARKINGS.items()}
#: OpenCTI's PAP marking-definition ids -> canonical name.
PAP_MARKING_IDS = {marking["id"]: name for name, marking in PAP_MARKINGS.items()} | {PAP_WHITE_ID: "PAP:CLEAR"}

#: Every egress path, and the settings that gate it besides PAP and unknown markings.
EGRESS_PATHS: dict[str, tuple[str, ...]] = {
    "lookup": ("VIRUSTOTAL_MAX_TLP",),
    "download": ("VIRUSTOTAL_MAX_TLP",),
    "livehunt": ("VIRUSTOTAL_MAX_TLP",),
    "upload": ("VIRUSTOTAL_MAX_TLP", "VIRUSTOTAL_UPLOAD_MAX_TLP"),
    "submission": ("VIRUSTOTAL_MAX_TLP", "VIRUSTOTAL_UPLOAD_MAX_TLP"),
}
#: Paths that share the observable with the VirusTotal community.
SHARING_PATHS = ("upload", "submission")
MARKING_MAP_SETTING = "VIRUSTOTAL_MARKING_MAP"

_WHAT = {
    "lookup": "looked up on",
    "download": "downloaded from",
    "livehunt": "pushed to Livehunt on",
    "upload": "uploaded to",
    "submission": "submitted to",
}


class EgressRefused(VTFrameworkError):
    """The observable's markings forbid this request to VirusTotal; nothing was sent."""


@dataclass(frozen=True)
class MarkingReading:
    """What an observable's markings say, once each is placed on the TLP and PAP scales."""

    #: The most restrictive TLP (``TLP:CLEAR`` when none).
    tlp: str = TLP_ORDER[0]
    #: The most restrictive PAP, or None when none.
    pap: str | None = None
    #: Markings that could not be placed, as they are named in messages.
    unknown: tuple[str, ...] = ()


@dataclass(frozen=True)
class Marked:
    """What a request is about: how messages name it and every marking it carries.

    ``markings`` holds marking-definition ids, names (``TLP:RED``) or
    marking objects (OpenCTI's ``objectMarking`` entries, STIX
    marking-definitions), in any mix.
    """

    subject: str
    markings: tuple[Any, ...] = ()

    @classmethod
    def of(cls, subject: str, ids: Iterable[Any] = (), details: Iterable[Any] = ()) -> "Marked":
        """From marking ids (``object_marking_refs``) and what is known of them (OpenCTI's ``objectMarking``)."""
        return cls(subject, marking_items(ids, details))


def marking_items(ids: Iterable[Any], details: Iterable[Any] = ()) -> tuple[Any, ...]:
    """Marking ids and marking objects as one list, each marking once (its object when known)."""
    objects = [d for d in details if isinstance(d, Mapping)]
    described = {str(d.get(k)) for d in objects for k in ("standard_id", "id") if d.get(k)}
    loose = [m for m in ids if not (isinstance(m, str) and m in described)]
    return tuple([*objects, *dict.fromkeys(m for m in loose if isinstance(m, (str, Mapping)))])


def parse_marking_map(entries: Iterable[str]) -> dict[str, str]:
    """``["TLP:EXTERNAL=TLP:AMBER", "marking-definition--…=PAP:RED"]`` -> {casefolded name or id: level}.

    :raises ValueError: naming the entry that is not ``NAME=LEVEL`` with a TLP or PAP level.
    """
    mapping: dict[str, str] = {}
    for entry in entries:
        name, sep, level = str(entry).rpartition("=")
        if not sep or not name.strip():
            raise ValueError(f"{entry!r} is not NAME=LEVEL (a marking name or id, '=', a TLP or PAP level)")
        mapping[name.strip().casefold()] = _level(level, entry)
    return mapping


def _level(text: str, entry: str) -> str:
    for normalize in (_tlp, _pap):
        found = normalize(text)
        if found:
            return found
    raise ValueError(f"{entry!r}: {text.strip()!r} is not a TLP or PAP level (TLP:CLEAR … TLP:RED, PAP:CLEAR … PAP:RED)")


def _tlp(text: Any) -> str | None:
    if not isinstance(text, str) or not text.strip().upper().startswith("TLP:"):
        return None
    try:
        return normalize_tlp(text)
    except ValueError:
        return None


def _pap(text: Any) -> str | None:
    if not isinstance(text, str):
        return None
    try:
        return normalize_pap(text)
    except ValueError:
        return None


def _place(marking: Any, mapping: Mapping[str, str]) -> tuple[str | None, str]:
    """``(level, name)``: the TLP or PAP level of one marking (None when unknown) and its name."""
    if isinstance(marking, str):
        ident = marking.strip()
        level = TLP_MARKING_IDS.get(ident) or PAP_MARKING_IDS.get(ident) or _tlp(ident) or _pap(ident)
        return level or mapping.get(ident.casefold()), ident
    if not isinstance(marking, Mapping):
        return None, repr(marking)[:80]
    ids = [str(marking[k]) for k in ("standard_id", "id") if marking.get(k)]
    for ident in ids:
        if ident in TLP_MARKING_IDS or ident in PAP_MARKING_IDS:
            return TLP_MARKING_IDS.get(ident) or PAP_MARKING_IDS[ident], ident
    kind, definition = _definition(marking)
    name = definition or str(marking.get("name") or "") or (ids[0] if ids else "an unnamed marking")
    if kind == "TLP":
        level = _tlp(definition if definition.upper().startswith("TLP:") else f"TLP:{definition}")
    elif kind == "PAP":
        level = _pap(definition)
    else:
        level = None
    if level is None:
        for key in (definition, str(marking.get("name") or ""), *ids):
            if key and key.casefold() in mapping:
                return mapping[key.casefold()], name
    return level, name


def _definition(marking: Mapping[str, Any]) -> tuple[str, str]:
    """``(definition type, definition)`` of an OpenCTI or STIX marking, upper-cased type."""
    kind = str(marking.get("x_opencti_definition_type") or marking.get("definition_type") or "").upper()
    definition = marking.get("x_opencti_definition") or marking.get("definition")
    if isinstance(definition, Mapping):  # STIX: {"tlp": "amber"} or {"statement": "..."}
        definition = definition.get("tlp") or definition.get("statement")
    return kind, str(definition or "").strip()


def read_markings(markings: Iterable[Any], mapping: Mapping[str, str] | None = None) -> MarkingReading:
    """Place every marking on the TLP and PAP scales; what cannot be placed is listed as unknown."""
    tlps, paps, unknown = [], [], []
    for marking in markings:
        level, name = _place(marking, mapping or {})
        if level is None:
            unknown.append(name)
        elif level.startswith("TLP:"):
            tlps.append(level)
        else:
            paps.append(level)
    return MarkingReading(
        tlp=max(tlps, key=tlp_rank) if tlps else TLP_ORDER[0],
        pap=max(paps, key=pap_rank) if paps else None,
        unknown=tuple(dict.fromkeys(unknown)),
    )


@dataclass(frozen=True)
class EgressPolicy:
    """The egress settings, and the decision for one request about a marked observable."""

    max_tlp: str = "TLP:AMBER"
    upload_max_tlp: str = "TLP:GREEN"
    #: Markings this module cannot place, mapped to a level (see :func:`parse_marking_map`).
    marking_map: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> "EgressPolicy":
        """The policy of validated settings.

        :raises ValueError: when ``VIRUSTOTAL_MARKING_MAP`` holds an entry that is not ``NAME=LEVEL``.
        """
        entries = settings.get("virustotal.marking_map") if hasattr(settings, "get") else None
        return cls(
            max_tlp=normalize_tlp(settings["virustotal.max_tlp"]),
            upload_max_tlp=normalize_tlp(settings["virustotal.upload_max_tlp"]),
            marking_map=parse_marking_map(entries or []),
        )

    def read(self, markings: Iterable[Any]) -> MarkingReading:
        return read_markings(markings, self.marking_map)

    def refusal(self, marked: Marked, path: str) -> str | None:
        """Why ``path`` may not be taken for ``marked`` (a message naming the marking and the setting), or None."""
        if path not in EGRESS_PATHS:
            raise ValueError(f"unknown egress path {path!r}")
        subject = marked.subject or "the observable"
        reading = self.read(marked.markings)
        if reading.unknown:
            name = reading.unknown[0]
            return (
                f"{subject} carries the marking {name!r}, which vtframework cannot place on the TLP or PAP scale; "
                f"it counts as the most restrictive, so nothing was sent to VirusTotal "
                f"(map it in {MARKING_MAP_SETTING}, e.g. {name}=TLP:AMBER)"
            )
        if reading.pap == "PAP:RED":
            return f"{subject} is PAP:RED, which allows no request to VirusTotal about it: nothing was sent to VirusTotal"
        if tlp_rank(reading.tlp) > tlp_rank(self.max_tlp):
            return f"{subject} is {reading.tlp}, above VIRUSTOTAL_MAX_TLP={self.max_tlp}: nothing was sent to VirusTotal"
        if path in SHARING_PATHS and tlp_rank(reading.tlp) > tlp_rank(self.upload_max_tlp):
            return (
                f"{subject} was not {_WHAT[path]} VirusTotal: its {reading.tlp} marking is above "
                f"VIRUSTOTAL_UPLOAD_MAX_TLP={self.upload_max_tlp} (uploads are shared with the VirusTotal community)"
            )
        return None

    def check(self, marked: Marked, path: str) -> None:
        """Raise :class:`EgressRefused` when :meth:`refusal` gives a reason."""
        reason = self.refusal(marked, path)
        if reason:
            raise EgressRefused(reason)


def most_restrictive_tlp(markings: Iterable[Any]) -> str:
    """The most restrictive TLP among the markings that are TLP (``TLP:CLEAR`` when there is none).

    Accepts OpenCTI marking dicts (``definition_type``/``definition``), STIX
    marking-definition objects or bare marking ids and names. It reads TLP
    only: what may leave is decided by :class:`EgressPolicy`, which also
    weighs PAP and markings it cannot place.
    """
    return read_markings(markings).tlp


def check_lookup(tlp: str, settings: Mapping[str, Any], subject: str) -> None:
    """Refuse a VirusTotal lookup of an observable whose TLP is above ``VIRUSTOTAL_MAX_TLP``."""
    EgressPolicy(max_tlp=normalize_tlp(settings["virustotal.max_tlp"])).check(Marked(subject, (tlp,)), "lookup")


def upload_allowed(tlp: str, settings: Mapping[str, Any]) -> bool:
    """May a sample or URL with this TLP be shared with the VirusTotal community?"""
    limit = settings["virustotal.upload_max_tlp"]
    return tlp_rank(normalize_tlp(tlp)) <= min(tlp_rank(limit), tlp_rank(settings["virustotal.max_tlp"]))
