"""What our Livehunt ruleset for an indicator looks like: marker, name and attributes.

Every ruleset we create starts with one comment line naming its indicator::

    // vtframework: indicator--8e2e2d2b-17d4-4f0f-8a3c-5b1f8fa0bd3e vtf8e2e2d2b17d44f0f8a3c5b1f8fa0bd3e

The STIX id lets anyone (and ``livehunt sync``) tell which indicator a ruleset
belongs to; the last word is a single alphanumeric token, so VirusTotal's
``rules:<token>`` listing filter (whole words only) finds the ruleset without
scanning every page. The mapping therefore survives a lost state, a replayed
stream and a second replica.
"""

from __future__ import annotations

import hashlib
from typing import Any, Mapping

from vtframework import is_ruleset_marker, marked_indicator, ruleset_marker, ruleset_marker_token

from vtframework_plugins.livehunt.indicator import YaraIndicator

#: Longest part of the indicator name kept in the ruleset name.
MAX_NAME = 100

# The marker format is the core's (vtframework.stix.yara): the notifications importer reads it too.
token = ruleset_marker_token
marker_line = ruleset_marker
indicator_of = marked_indicator


def marked_rules(indicator_id: str, pattern: str) -> str:
    """The rules text we send: our marker line, then the pattern (without any older marker)."""
    lines = pattern.strip("\n").split("\n")
    while lines and is_ruleset_marker(lines[0]):
        lines.pop(0)
    return marker_line(indicator_id) + "\n" + "\n".join(lines)


def ruleset_name(indicator: YaraIndicator) -> str:
    """The indicator's name plus a short piece of its id: unique, and readable in VirusTotal's UI."""
    base = indicator.name[:MAX_NAME].strip() or "OpenCTI YARA indicator"
    return f"{base} [{token(indicator.id)[3:11]}]"


def digest(rules: str) -> str:
    return hashlib.sha256(rules.strip().encode()).hexdigest()


def parse_owner(owner: str) -> dict[str, str]:
    """``group:name`` -> a group, ``user:name`` or ``name`` -> a user (VirusTotal's editor descriptor)."""
    kind, sep, name = owner.strip().partition(":")
    if sep and kind.lower() in ("user", "group") and name.strip():
        return {"type": kind.lower(), "id": name.strip()}
    return {"type": "user", "id": owner.strip()}


def desired_attributes(indicator: YaraIndicator, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes the ruleset of a hunted indicator must have."""
    return {
        "name": ruleset_name(indicator),
        "rules": marked_rules(indicator.id, indicator.pattern),
        "enabled": True,
        "limit": settings["virustotal_livehunt.limit"],
        "notification_emails": list(settings["virustotal_livehunt.notification_emails"]),
    }


def differences(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes of ``wanted`` that ``current`` (a VirusTotal ruleset's attributes) lacks."""
    changed = {}
    for key, value in wanted.items():
        have = current.get(key)
        if key == "rules":
            same = isinstance(have, str) and digest(have) == digest(value)
        elif key == "notification_emails":
            same = sorted(have or []) == sorted(value)
        else:
            same = have == value
        if not same:
            changed[key] = value
    return changed
