"""Observables from plain values: type detection, validation, STIX form.

Used by the command line (``vtframework enrich VALUE``) and by Indicator
enrichment; OpenCTI messages are turned into observables by the runtime.
A malformed value raises :class:`~vtframework.errors.InputError` naming what
is wrong, before anything is sent to VirusTotal.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import stix2

from vtframework.errors import InputError
from vtframework.policy.markings import TLP_MARKINGS
from vtframework.policy.tlp import normalize_tlp
from vtframework.records import Observable
from vtframework.stix.factory import to_dict
from vtframework.stix.opencti_ids import Hostname

#: Hash names OpenCTI uses, by hex length, in the order VirusTotal prefers them.
HASH_LENGTHS = {64: "SHA-256", 40: "SHA-1", 32: "MD5"}
LOOKUP_HASHES = ("SHA-256", "SHA-1", "MD5")

ENTITY_TYPES = ("StixFile", "Artifact", "IPv4-Addr", "IPv6-Addr", "Domain-Name", "Hostname", "Url")
_TYPE_ALIASES = {t.lower(): t for t in ENTITY_TYPES} | {
    "file": "StixFile", "hash": "StixFile", "ipv4": "IPv4-Addr", "ipv6": "IPv6-Addr", "ip": "IPv4-Addr",
    "domain": "Domain-Name", "hostname": "Hostname", "url": "Url",
}

_HEX = re.compile(r"^[0-9a-fA-F]+$")
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
# No top-level domain is all digits (RFC 3696): such a name is an IP address written wrong.
_NUMERIC = re.compile(r"^[0-9]+$")
_IPV6_LIKE = re.compile(r"^[0-9a-fA-F:.]*:[0-9a-fA-F:.%]*(%.*)?$")
# Public suffixes of two labels common enough that "example.co.uk" is a domain, not a host.
_TWO_LABEL_SUFFIXES = {
    "co.uk", "org.uk", "ac.uk", "gov.uk", "com.au", "net.au", "org.au", "co.jp", "ne.jp", "or.jp",
    "com.br", "com.cn", "com.tr", "co.nz", "co.za", "co.in", "co.kr", "com.mx", "com.ar", "com.ru",
}


def entity_type_name(text: str) -> str:
    """Canonical OpenCTI type for a user-given ``--type`` (``ipv4`` -> ``IPv4-Addr``)."""
    try:
        return _TYPE_ALIASES[text.strip().lower()]
    except KeyError:
        raise InputError(f"unknown type {text!r}: expected one of {', '.join(ENTITY_TYPES)}") from None


def detect_type(value: str) -> str:
    """Guess the observable type of a plain value.

    A value that looks like an IP address but is not one (``256.1.1.1``,
    ``1.2.3``, ``01.02.03.004``) is refused, never taken for a hostname.
    """
    text = value.strip()
    if _HEX.match(text) and len(text) in (32, 40, 64, 128):
        return "StixFile"
    if "://" in text:
        return "Url"
    if "%" in text and _IPV6_LIKE.match(text):
        raise InputError(f"{value!r} carries an IPv6 zone id (%…), which only means something on one host: "
                         "give the address without it")
    try:
        address = ipaddress.ip_address(text)
        return "IPv4-Addr" if address.version == 4 else "IPv6-Addr"
    except ValueError:
        pass
    _refuse_ip_like(value, text)
    if "." in text and " " not in text and "/" not in text:
        labels = text.rstrip(".").lower().split(".")
        if len(labels) == 2 or (len(labels) == 3 and ".".join(labels[1:]) in _TWO_LABEL_SUFFIXES):
            return "Domain-Name"
        return "Hostname"
    raise InputError(f"cannot tell what {value!r} is: give --type (hash, IPv4/IPv6, domain, hostname or URL)")


def _refuse_ip_like(value: str, text: str) -> None:
    labels = text.rstrip(".").split(".")
    if len(labels) > 1 and all(_NUMERIC.match(label) for label in labels):
        raise InputError(
            f"{value!r} looks like an IPv4 address but is not one (four numbers from 0 to 255, without "
            "leading zeros)"
        )
    if len(labels) > 1 and _NUMERIC.match(labels[-1]):
        raise InputError(f"{value!r} is neither an IP address nor a domain name (no domain ends in a number)")
    if ":" in text and _IPV6_LIKE.match(text):
        raise InputError(f"{value!r} looks like an IPv6 address but is not a valid one")


def ascii_domain(name: str) -> str:
    """The name VirusTotal is asked by: IDNA 2008 (punycode) for an internationalised domain.

    :raises InputError: when the name is not a valid domain name.
    """
    text = name.strip().rstrip(".").lower()
    if text.isascii():
        return text
    import idna

    try:
        return idna.encode(text, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise InputError(f"{name!r} is not a valid internationalised domain name ({exc})") from None


def hash_name(value: str) -> str:
    """The OpenCTI hash name of a hex digest, or an :class:`InputError` saying why not."""
    text = value.strip()
    if not _HEX.match(text):
        raise InputError(f"{value!r} is not a hash: expected hexadecimal MD5, SHA-1 or SHA-256")
    if len(text) == 128:
        raise InputError(f"{text[:16]}… is a SHA-512: VirusTotal looks files up by MD5, SHA-1 or SHA-256")
    if len(text) not in HASH_LENGTHS:
        raise InputError(f"{value!r} is not a hash: {len(text)} hex digits, expected 32 (MD5), 40 (SHA-1) or 64 (SHA-256)")
    return HASH_LENGTHS[len(text)]


def best_hash(hashes: Mapping[str, str]) -> tuple[str, str] | None:
    """SHA-256, else SHA-1, else MD5 (names compared loosely: ``sha256``, ``SHA-256``).

    A value that is not a digest of its algorithm (wrong length, not hexadecimal)
    is passed over: it must never reach a VirusTotal path.
    """
    normalized = {
        re.sub(r"[^a-z0-9]", "", str(name).lower()): value for name, value in hashes.items() if isinstance(value, str)
    }
    lengths = {name: length for length, name in HASH_LENGTHS.items()}
    for name in LOOKUP_HASHES:
        value = (normalized.get(re.sub(r"[^a-z0-9]", "", name.lower())) or "").strip().lower()
        if value and len(value) == lengths[name] and _HEX.match(value):
            return name, value
    return None


def lookup_hash(observable: Observable, purpose: str = "be looked up") -> tuple[str, str]:
    """The hash VirusTotal is asked by: SHA-256, else SHA-1, else MD5 — never a display value.

    :raises InputError: naming the observable when it has none of them.
    """
    hashes = observable.hashes or observable.stix.get("hashes") or {}
    found = best_hash(hashes if isinstance(hashes, Mapping) else {})
    if found is None:
        bad = [str(name)[:20] for name in (hashes if isinstance(hashes, Mapping) else {})
               if re.sub(r"[^a-z0-9]", "", str(name).lower()) in ("sha256", "sha1", "md5")]
        raise InputError(
            f"{observable.entity_type} {(observable.value or observable.id)[:80]}: cannot {purpose}, "
            "it has no SHA-256, SHA-1 or MD5 hash"
            + (f" ({', '.join(bad)} not a valid hexadecimal digest)" if bad else "")
        )
    return found


def validate_value(entity_type: str, value: str) -> str:
    """Check one value of a type; return it normalised or raise :class:`InputError`."""
    text = value.strip()
    if not text:
        raise InputError(f"empty {entity_type} value")
    if entity_type in ("StixFile", "Artifact"):
        hash_name(text)
        return text.lower()
    if entity_type in ("IPv4-Addr", "IPv6-Addr"):
        if "%" in text:
            raise InputError(f"{value!r} carries an IPv6 zone id (%…), which only means something on one host: "
                             "give the address without it")
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            raise InputError(f"{value!r} is not a valid IP address") from None
        expected = 4 if entity_type == "IPv4-Addr" else 6
        if address.version != expected:
            raise InputError(f"{value!r} is an IPv{address.version} address, not {entity_type}")
        return str(address)
    if entity_type in ("Domain-Name", "Hostname"):
        name = text.rstrip(".").lower()
        ascii_name = ascii_domain(name)
        labels = ascii_name.split(".")
        if len(labels) < 2 or not all(_LABEL.match(label) for label in labels) or len(ascii_name) > 253:
            raise InputError(f"{value!r} is not a valid domain name")
        if _NUMERIC.match(labels[-1]):
            raise InputError(f"{value!r} is not a valid domain name: no domain ends in a number")
        # STIX keeps the name as people write it (Unicode); VirusTotal is asked by ascii_domain().
        return name
    if entity_type == "Url":
        parts = urlsplit(text)
        if parts.scheme.lower() not in ("http", "https", "ftp", "ftps") or not parts.netloc:
            raise InputError(f"{value!r} is not a URL VirusTotal can analyse: expected http(s)://host/…")
        return text
    raise InputError(f"{entity_type} cannot be enriched from a plain value")


def stix_for(entity_type: str, value: str) -> dict[str, Any]:
    """The STIX 2.1 SCO of a plain value (deterministic id)."""
    if entity_type == "StixFile":
        obj: Any = stix2.File(hashes={hash_name(value): value})
    elif entity_type == "IPv4-Addr":
        obj = stix2.IPv4Address(value=value)
    elif entity_type == "IPv6-Addr":
        obj = stix2.IPv6Address(value=value)
    elif entity_type == "Domain-Name":
        obj = stix2.DomainName(value=value)
    elif entity_type == "Hostname":
        obj = Hostname(value=value)
    elif entity_type == "Url":
        obj = stix2.URL(value=value)
    else:
        raise InputError(f"{entity_type} cannot be enriched from a plain value")
    return to_dict(obj)


def from_value(value: str, entity_type: str | None = None, tlp: str = "TLP:CLEAR") -> Observable:
    """An :class:`Observable` for a command-line value, marked with ``tlp``."""
    kind = entity_type_name(entity_type) if entity_type else detect_type(value)
    normalized = validate_value(kind, value)
    stix = stix_for(kind, normalized)
    tlp = normalize_tlp(tlp)
    marking = TLP_MARKINGS[tlp]["id"]
    stix["object_marking_refs"] = [marking]
    hashes = {hash_name(normalized): normalized} if kind == "StixFile" else {}
    return Observable(entity_type=kind, value=normalized, stix=stix, hashes=hashes, markings=(marking,), tlp=tlp)


#: STIX pattern object paths that name an observable we can enrich.
_PATTERN_TYPES = {
    ("ipv4-addr", "value"): "IPv4-Addr",
    ("ipv6-addr", "value"): "IPv6-Addr",
    ("domain-name", "value"): "Domain-Name",
    ("hostname", "value"): "Hostname",
    ("url", "value"): "Url",
}


def _unquote(literal: str) -> str:
    text = literal[1:-1] if len(literal) >= 2 and literal[0] == literal[-1] == "'" else literal
    return re.sub(r"\\(.)", r"\1", text)


def observables_in_pattern(pattern: str) -> list[tuple[str, str]]:
    """The ``(entity type, value)`` pairs a STIX pattern compares with ``=``.

    Only types vtframework enriches are kept; for a file the best hash of
    each observation counts once.
    """
    from stix2patterns.v21.pattern import Pattern

    try:
        comparisons = Pattern(pattern).inspect().comparisons
    except Exception as exc:  # the parser raises its own error types
        raise InputError(f"the indicator pattern does not parse: {exc}") from None
    found: list[tuple[str, str]] = []
    for object_type, terms in comparisons.items():
        file_hashes: dict[str, str] = {}
        for path, operator, literal in terms:
            if operator != "=" or not path:
                continue
            key = (object_type, str(path[0]))
            if key in _PATTERN_TYPES:
                found.append((_PATTERN_TYPES[key], _unquote(literal)))
            elif object_type in ("file", "artifact") and path[0] == "hashes" and len(path) > 1:
                file_hashes[str(path[1])] = _unquote(literal)
        best = best_hash(file_hashes)
        if best:
            found.append(("StixFile", best[1]))
    return list(dict.fromkeys(found))


def observable_for(
    entity_type: str, value: str, markings: Any = (), tlp: str | None = None, marking_details: Any = ()
) -> Observable:
    """An :class:`Observable` with the given marking ids (an Indicator's, an entity's) and what is known of them."""
    from vtframework.policy.egress import most_restrictive_tlp

    normalized = validate_value(entity_type, value)
    marking_ids = tuple(dict.fromkeys(m for m in markings if isinstance(m, str)))
    stix = stix_for(entity_type, normalized)
    if marking_ids:
        stix["object_marking_refs"] = list(marking_ids)
    hashes = {hash_name(normalized): normalized} if entity_type == "StixFile" else {}
    return Observable(
        entity_type=entity_type, value=normalized, stix=stix, hashes=hashes, markings=marking_ids,
        tlp=tlp or most_restrictive_tlp(marking_ids), marking_details=tuple(marking_details or ()),
    )
