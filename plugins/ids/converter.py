"""Crowdsourced IDS results as STIX: one Indicator per rule, the alerts' traffic as observables, a note."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import stix2

from vtframework import addons, blocks, from_value
from vtframework.errors import InputError

#: Longest rule text kept as an Indicator pattern.
MAX_RULE_CHARS = 20_000
#: References kept per rule.
MAX_REFERENCES = 10
_HEADER = re.compile(r"^\s*(?:alert|drop|reject|pass|log|sdrop)\s+([a-z0-9-]+)\s", re.IGNORECASE)
#: Protocol keywords of a rule header that name a real protocol (``ip`` and ``any`` say nothing).
_PROTOCOLS = frozenset({
    "tcp", "udp", "icmp", "http", "http2", "dns", "tls", "ssl", "smtp", "ftp", "ssh", "smb", "dcerpc", "quic",
    "dhcp", "ntp", "krb5", "snmp", "sip", "rdp", "imap", "pop3", "mqtt", "modbus", "dnp3", "enip", "nfs", "tftp",
})
_JA3 = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class _Seen:
    """One observable the alerts saw, with the rules that saw it."""

    kind: str
    value: Any
    rules: list[str] = field(default_factory=list)
    protocols: set[str] = field(default_factory=set)


def ids_objects(context: Any, report: Mapping[str, Any]) -> list[Any]:
    if not addons.is_file_report(report):
        return []
    attrs = blocks.attributes(report)
    rules = addons.matched_rules(
        context, attrs, "crowdsourced_ids_results", "IDS rule", ("rule_id", "rule_msg"), "alert_severity"
    )
    kept = addons.capped(context, rules, "virustotal.ids_max_rules", "crowdsourced IDS rules fired")
    objects: list[Any] = []
    seen: dict[tuple[str, str], _Seen] = {}
    for rule in kept:
        objects += _rule_indicator(context, rule)
        _collect(context, rule, seen)
    objects += _observables(context, list(seen.values()))
    objects += _note(context, attrs, kept)
    return objects


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _name(rule: Mapping[str, Any]) -> str:
    """How messages name a rule: ``1:2023883 (ET DNS Query to a *.top domain - Likely Hostile)``."""
    rule_id, message = _text(rule.get("rule_id")), _text(rule.get("rule_msg"))
    return f"{rule_id} ({message})" if rule_id and message else rule_id or message


def pattern_type(source: Any) -> str:
    """``snort`` for Snort's own rulesets, ``suricata`` for the others VirusTotal runs (ET Open, abuse.ch)."""
    return "snort" if "snort" in _text(source).lower() else "suricata"


def _rule_indicator(context: Any, rule: Mapping[str, Any]) -> list[Any]:
    raw = _text(rule.get("rule_raw"))
    if not raw:
        context.warn(f"IDS rule {_name(rule)}: no rule text, no Indicator")
        return []
    if len(raw) > MAX_RULE_CHARS:
        context.warn(f"IDS rule {_name(rule)}: rule text of {len(raw)} characters, no Indicator")
        return []
    severity = _text(rule.get("alert_severity")).lower() or "unknown"
    source = _text(rule.get("rule_source")) or "an unnamed ruleset"
    category = _text(rule.get("rule_category"))
    description = (
        f"Crowdsourced IDS rule {_text(rule.get('rule_id')) or '(no id)'} from {source}, alert severity {severity}"
        + (f", category {category}" if category else "")
        + ". It fired on the traffic of a file VirusTotal's sandboxes ran."
    )
    references = [
        {"source_name": source, "url": url}
        for url in _urls([rule.get("rule_url"), *(rule.get("rule_references") or [])])[:MAX_REFERENCES]
    ]
    indicator = context.factory.indicator(
        pattern=raw,
        pattern_type=pattern_type(rule.get("rule_source")),
        name=_text(rule.get("rule_msg")) or _text(rule.get("rule_id")),
        description=description,
        score=addons.severity_score(severity),
        main_observable_type="StixFile",
        external_references=references,
    )
    return [indicator, addons.from_enriched(context, "related-to", indicator.id)]


def _urls(values: list[Any]) -> list[str]:
    found = []
    for value in values:
        text = _text(value)
        if text.startswith(("http://", "https://")) and text not in found:
            found.append(text)
    return found


def _collect(context: Any, rule: Mapping[str, Any], seen: dict[tuple[str, str], _Seen]) -> None:
    """What one rule's alerts saw, added to ``seen`` (in the order met)."""
    alerts = rule.get("alert_context")
    if alerts is None:
        return
    if not isinstance(alerts, list):
        context.warn(f"IDS rule {_name(rule)}: alert_context is not a list, its traffic skipped")
        return
    header = _HEADER.match(_text(rule.get("rule_raw")))
    protocol = header.group(1).lower() if header and header.group(1).lower() in _PROTOCOLS else None
    label = f"{_text(rule.get('alert_severity')) or 'unknown'}: {_name(rule)}"
    for alert in alerts:
        if not isinstance(alert, Mapping):
            context.warn(f"IDS rule {_name(rule)}: an alert that is not an object was skipped")
            continue
        for side in ("dest", "src"):
            address = _public_ip(alert.get(f"{side}_ip"))
            if address is None:
                continue
            _see(seen, "ip", address, label)
            port = _port(alert.get(f"{side}_port"))
            if port is not None:
                traffic = _see(seen, "traffic", (side, address, port), label)
                traffic.protocols.add(f"ipv{ipaddress.ip_address(address).version}")
                traffic.protocols |= {protocol} if protocol else set()
        for key, entity_type in (("hostname", "Domain-Name"), ("url", "Url")):
            value = _valid(entity_type, alert.get(key))
            if value is not None:
                _see(seen, entity_type, value, label)
        for key in ("ja3", "ja3s"):
            values = alert.get(key)
            for value in values if isinstance(values, list) else [values]:
                if isinstance(value, str) and _JA3.match(value.strip().lower()):
                    _see(seen, key, value.strip().lower(), label)


def _see(seen: dict[tuple[str, str], _Seen], kind: str, value: Any, label: str) -> _Seen:
    entry = seen.setdefault((kind, repr(value)), _Seen(kind, value))
    if label not in entry.rules:
        entry.rules.append(label)
    return entry


def _public_ip(value: Any) -> str | None:
    """The address when it is a public one: the sandbox's own side of the traffic is left out."""
    try:
        address = ipaddress.ip_address(_text(value))
    except ValueError:
        return None
    return str(address) if address.is_global else None


def _port(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 < value < 65536 else None


def _valid(entity_type: str, value: Any) -> str | None:
    if not _text(value):
        return None
    try:
        return from_value(_text(value), entity_type).value
    except InputError:
        return None


def _observables(context: Any, seen: list[_Seen]) -> list[Any]:
    factory = context.factory
    kept = addons.capped(context, seen, "virustotal.ids_max_observables", "observables in the IDS alerts")
    addresses: dict[str, Any] = {}
    objects: list[Any] = []
    # Addresses first: the traffic refers to them.
    for entry in sorted(kept, key=lambda item: item.kind != "ip"):
        why = {"description": addons.clip("Seen by IDS rule(s) " + "; ".join(entry.rules), 2000)}
        if entry.kind == "ip":
            version = ipaddress.ip_address(entry.value).version
            sco = factory.value_observable(f"IPv{version}-Addr", entry.value)
            addresses[entry.value] = sco
            relationship = addons.from_enriched(context, "communicates-with", sco.id, **why)
        elif entry.kind == "traffic":
            side, address, port = entry.value
            if address not in addresses:  # its address was cut by the cap
                continue
            ref = "dst" if side == "dest" else "src"
            sco = factory.observable(
                stix2.NetworkTraffic,
                **{f"{ref}_ref": addresses[address].id, f"{ref}_port": port},
                protocols=sorted(entry.protocols),
            )
            relationship = addons.from_enriched(context, "related-to", sco.id, **why)
        elif entry.kind == "Domain-Name":
            sco = factory.value_observable("Domain-Name", entry.value)
            relationship = addons.from_enriched(context, "communicates-with", sco.id, **why)
        elif entry.kind == "Url":
            sco = factory.value_observable("Url", entry.value)
            relationship = addons.from_enriched(context, "related-to", sco.id, **why)
        else:  # ja3, ja3s: OpenCTI has no fingerprint observable; a labelled Text keeps it searchable
            sco = factory.value_observable(
                "Text", entry.value, labels=[entry.kind],
                description=f"{entry.kind.upper()} TLS fingerprint seen by a crowdsourced IDS rule",
            )
            relationship = addons.from_enriched(context, "related-to", sco.id, **why)
        objects += [sco, relationship]
    return objects


def _note(context: Any, attrs: Mapping[str, Any], rules: list[Mapping[str, Any]]) -> list[Any]:
    if not rules:
        return []
    stats = attrs.get("crowdsourced_ids_stats")
    counts = ", ".join(
        f"{name} {blocks.as_int(stats.get(name))}" for name in ("high", "medium", "low", "info")
    ) if isinstance(stats, Mapping) else "N/A"
    rows = [
        (rule.get("alert_severity"), rule.get("rule_id"), rule.get("rule_msg"), rule.get("rule_source"),
         rule.get("rule_category"), _alerts_text(rule.get("alert_context")))
        for rule in rules
    ]
    content = (
        f"{len(rules)} crowdsourced IDS rule(s) fired on the sandbox traffic (VirusTotal's counts: {counts}).\n\n"
        + blocks.table(("Severity", "Rule", "Message", "Source", "Category", "Alerts"), rows)
    )
    return [context.factory.note("VirusTotal Crowdsourced IDS Rules", content, [context.target_id])]


def _alerts_text(alerts: Any, limit: int = 5) -> str:
    if not isinstance(alerts, list):
        return ""
    shown = []
    for alert in alerts[:limit]:
        if not isinstance(alert, Mapping):
            continue
        parts = []
        for side, arrow in (("src", "from"), ("dest", "to")):
            if alert.get(f"{side}_ip"):
                port = alert.get(f"{side}_port")
                parts.append(f"{arrow} {alert[f'{side}_ip']}" + (f":{port}" if port is not None else ""))
        parts += [f"{key} {addons.clip(alert[key], 120)}" for key in ("hostname", "url") if alert.get(key)]
        for key in ("ja3", "ja3s"):
            if isinstance(alert.get(key), list) and alert[key]:
                parts.append(f"{key} {', '.join(str(v) for v in alert[key][:3])}")
        shown.append(" ".join(parts))
    more = f" (+{len(alerts) - limit} more)" if len(alerts) > limit else ""
    return "; ".join(shown) + more
