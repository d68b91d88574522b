"""One Livehunt notification as STIX: the matched entity, the alert, and how they tie to the rule that hunted them.

Objects (all through the core's factory: VirusTotal author, the configured
TLP marking, deterministic ids):

- the matched file (hashes, size, names, score, detection summary, tags) or
  URL / domain / IP address;
- the alert: an Incident of type ``alert`` whose ``created`` is the
  notification's date, so its id is the one OpenCTI computes (name +
  created), ``related-to`` the matched entity;
- for a ruleset vtframework made: ``indicates`` from the hunting indicator to
  the alert and ``related-to`` from the entity to the indicator (the Sighting
  itself is sent when the sweep ends, see :mod:`.sightings`);
- for any other ruleset: a YARA Indicator of the matched rule (by its rule
  name), ``indicates`` the alert, the entity ``related-to`` it;
- optionally a SHA-256 (or URL, domain, IP) Indicator ``based-on`` the entity.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vtframework import AUTHOR_ID, STIX_EXT_OCTI_SCO, blocks, from_value, pattern_for
from vtframework.errors import (
    AuthenticationError,
    ConnectionFailed,
    InputError,
    QuotaExceededError,
    RequestTimeout,
    TooManyRequestsError,
    TransientError,
)

from vtframework_plugins.notifications.rulesets import Ruleset, Rulesets
from vtframework_plugins.notifications.settings import Options, option_env
from vtframework_plugins.notifications.source import BadItem, Notification

#: How alert names and messages call each entity type.
KINDS = {"file": "file", "url": "url", "domain": "domain", "ip_address": "ip"}
#: STIX observable types -> OpenCTI's, for indicators of extracted observables.
OPENCTI_TYPES = {"domain-name": "Domain-Name", "hostname": "Hostname", "ipv4-addr": "IPv4-Addr",
                 "ipv6-addr": "IPv6-Addr", "url": "Url"}
MAX_NAME = 250
#: Labels put on one object: a file tagged a thousand times is not a thousand labels.
MAX_LABELS = 50
SNIPPET_LINES, SNIPPET_CHARS = 40, 4000


def normalise(text: str) -> str:
    """The original connector's label form: lower case, every other character ``_``."""
    return re.sub(r"[^a-z0-9]", "_", text.lower())


@dataclass
class Built:
    """What one notification becomes."""

    objects: list[Any] = field(default_factory=list)
    #: How the matched entity is named in Sightings and messages (``file 843bdd…``).
    label: str = ""
    #: One key per matched entity (``file:<sha256>``), whatever its name: a Sighting per indicator and key.
    subject: str = ""
    #: The OpenCTI YARA indicator that hunted this match (vtframework's rulesets only).
    hunting_indicator: str | None = None
    warnings: list[str] = field(default_factory=list)


# -- filters -------------------------------------------------------------------------
def skip_reason(n: Notification, opts: Options, now: int) -> str | None:
    """Why the notification is not imported (the original connector's filters), or None."""
    if not n.ruleset_id or not n.rule_name:
        return f"{n.subject}: not a Livehunt match (no hunting ruleset or rule named)"
    attrs = n.attributes
    label = f"{KINDS[n.entity_type]} {n.entity_id}"
    if opts.extensions:
        extension = str(attrs.get("type_extension") or "").lower()
        if n.entity_type != "file" or extension not in opts.extensions:
            return (f"{n.subject}: {label} is not one of {option_env('extensions')}="
                    f"{','.join(sorted(opts.extensions))}")
    if opts.min_positives:
        if not blocks.has_stats(attrs):
            return f"{n.subject}: {label} has no detection statistics ({option_env('min_positives')}={opts.min_positives})"
        malicious = blocks.stats(attrs)["malicious"]
        if malicious < opts.min_positives:
            return (f"{n.subject}: {malicious} engine(s) flag {label}, fewer than "
                    f"{option_env('min_positives')}={opts.min_positives}")
    if n.entity_type != "file":
        return None
    size = attrs.get("size")
    if isinstance(size, int) and not isinstance(size, bool):
        if opts.min_file_size and size < opts.min_file_size:
            return f"{n.subject}: {label} is {size} bytes, below {option_env('min_file_size')}={opts.min_file_size}"
        if opts.max_file_size and size > opts.max_file_size:
            return f"{n.subject}: {label} is {size} bytes, above {option_env('max_file_size')}={opts.max_file_size}"
    first = attrs.get("first_submission_date")
    if opts.max_age_days and isinstance(first, int) and not isinstance(first, bool):
        if now - first >= opts.max_age_days * 86400:
            return (f"{n.subject}: {label} was first submitted {blocks.date_text(first)}, "
                    f"{option_env('max_age_days')}={opts.max_age_days} days ago or more")
    return None


# -- the matched entity ----------------------------------------------------------------------
def entity_observable(n: Notification, opts: Options) -> Any:
    """The matched entity as an observable marked with the configured TLP; :class:`BadItem` when malformed."""
    attrs = n.attributes
    try:
        if n.entity_type == "file":
            sha256 = attrs.get("sha256") if isinstance(attrs.get("sha256"), str) else n.entity_id
            if not re.fullmatch(r"[0-9a-fA-F]{64}", sha256 or ""):
                raise InputError(f"no SHA-256 (id {n.entity_id!r})")
            return from_value(sha256.lower(), "StixFile", tlp=opts.tlp)
        if n.entity_type == "url":
            url = attrs.get("url") or attrs.get("last_final_url")
            if not isinstance(url, str):
                raise InputError("the URL notification does not carry the URL")
            return from_value(url, "Url", tlp=opts.tlp)
        if n.entity_type == "domain":
            return from_value(n.entity_id, "Domain-Name", tlp=opts.tlp)
        version = ipaddress.ip_address(n.entity_id).version
        return from_value(n.entity_id, "IPv4-Addr" if version == 4 else "IPv6-Addr", tlp=opts.tlp)
    except (InputError, ValueError) as exc:
        raise BadItem(f"{n.subject}: the matched {KINDS[n.entity_type]} cannot be imported: {exc}", n.id, n.date) from None


def fill_observable(stix: dict[str, Any], n: Notification, opts: Options) -> None:
    """What VirusTotal says of the matched entity, on its STIX object (OpenCTI's extension)."""
    attrs = n.attributes
    ext = STIX_EXT_OCTI_SCO
    stix["x_opencti_created_by_ref"] = AUTHOR_ID
    if n.entity_type == "file":
        hashes = stix.setdefault("hashes", {})
        for field_name, hash_name in (("md5", "MD5"), ("sha1", "SHA-1"), ("sha256", "SHA-256")):
            if isinstance(attrs.get(field_name), str) and re.fullmatch(r"[0-9a-fA-F]+", attrs[field_name]):
                hashes[hash_name] = attrs[field_name].lower()
        if isinstance(attrs.get("size"), int) and not isinstance(attrs["size"], bool) and attrs["size"] >= 0:
            stix["size"] = attrs["size"]
        # VirusTotal lists names like "." too: a name without a letter or digit names nothing.
        names = [name.strip() for name in attrs.get("names") or [] if isinstance(name, str) and _names_something(name)]
        main = attrs.get("meaningful_name") if isinstance(attrs.get("meaningful_name"), str) else None
        main = (main if main and _names_something(main) else (names[0] if names else "")).strip()
        if main:
            stix["name"] = main[:MAX_NAME]
        for name in names[:50]:
            if name != main:
                blocks.put_extension(stix, ext, "additional_names", name[:MAX_NAME], multiple=True)
        tags = [*_strings(attrs.get("type_tags")), *_strings(attrs.get("tags"))]
        for tag in list(dict.fromkeys(tags))[:MAX_LABELS]:
            blocks.put_extension(stix, ext, "labels", opts.livehunt_tag_prefix + normalise(tag), multiple=True)
    score = blocks.vt_score(attrs)
    if score is not None:
        blocks.put_extension(stix, ext, "score", score)
    blocks.put_extension(stix, ext, "description", detection_summary(n, opts))
    link = blocks.gui_link(n.report)
    if link:
        blocks.put_extension(stix, ext, "external_references", {
            "source_name": "VirusTotal", "url": link, "description": "VirusTotal Report"}, multiple=True)


def _names_something(name: str) -> bool:
    return any(char.isalnum() for char in name)


def detection_summary(n: Notification, opts: Options) -> str:
    attrs = n.attributes
    kind = KINDS[n.entity_type]
    if blocks.has_stats(attrs):
        counts = blocks.stats(attrs)
        results = attrs.get("last_analysis_results")
        total = len(results) if isinstance(results, Mapping) and results else sum(counts.values())
        text = f"VirusTotal: {counts['malicious']} of {total} engines flag this {kind} as malicious"
        if counts["suspicious"]:
            text += f", {counts['suspicious']} as suspicious"
        text += f" (last analysed {blocks.date_text(attrs.get('last_analysis_date'))})."
    else:
        text = f"VirusTotal: no detection statistics for this {kind}."
    score = blocks.vt_score(attrs)
    if score is not None:
        text += f" Score {score}."
    lines = [text]
    results = attrs.get("last_analysis_results") if isinstance(attrs.get("last_analysis_results"), Mapping) else {}
    for engine in opts.av_list:
        verdict = results.get(engine) if isinstance(results.get(engine), Mapping) else {}
        lines.append(f"- **{blocks.cell(engine)}**: {blocks.cell(verdict.get('result') or 'no verdict')}")
    return "\n".join(lines)


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str) and v.strip()] if isinstance(value, list) else []


# -- the alert ---------------------------------------------------------------------------------
def alert_name(n: Notification, opts: Options, value: str) -> str:
    """``VT <rule> file=<sha256>``: the original connector's name, without its double space."""
    name = " ".join(part for part in (opts.alert_prefix, n.rule_name or "", f"{KINDS[n.entity_type]}={value}") if part)
    return name if len(name) <= MAX_NAME else name[: MAX_NAME - 1] + "…"


def alert_labels(n: Notification, opts: Options, ruleset_name: str | None = None) -> list[str]:
    """The notification's tags, with the rule and the ruleset turned into the configured prefixed labels."""
    drop = {n.entity_id.lower()}
    if opts.filter_with_tag:
        drop.add(opts.filter_with_tag.lower())
    rule = normalise(n.rule_name or "")
    ruleset = normalise(n.ruleset_name or ruleset_name or "")
    if opts.enable_label_enrichment:
        drop |= {rule, ruleset}
    labels = [t for t in n.tags if t.strip() and t.lower() not in drop]
    if opts.enable_label_enrichment:
        if rule:
            labels.append(opts.yara_label_prefix + rule)
        if ruleset:
            labels.append(opts.livehunt_label_prefix + ruleset)
    return list(dict.fromkeys(labels))[:MAX_LABELS]


def alert_description(n: Notification, ruleset: Ruleset | None, label: str) -> str:
    name = (ruleset.name if ruleset and ruleset.name else None) or n.ruleset_name or "unknown"
    parts = [
        f"VirusTotal Livehunt rule **{blocks.cell(n.rule_name)}** of ruleset **{blocks.cell(name)}** "
        f"(`{blocks.cell(n.ruleset_id)}`) matched {blocks.cell(label)} on {blocks.date_text(n.date)}.",
        blocks.table(("Notification", "Rule tags", "Source country", "Match in a sub-file"), [
            (n.id, list(n.rule_tags), n.source_country, "yes" if n.match_in_subfile else "no"),
        ]),
    ]
    if n.snippet:
        lines = n.snippet.replace("```", "'''").split("\n")[:SNIPPET_LINES]
        text = "\n".join(lines)[:SNIPPET_CHARS]
        text = text.replace("*begin_highlight*", "«").replace("*end_highlight*", "»")
        parts.append(f"Matched bytes (« » around the match):\n\n```\n{text}\n```")
    return "\n\n".join(parts)


# -- everything --------------------------------------------------------------------------------
def notification_objects(context: Any, n: Notification, opts: Options, rulesets: Rulesets) -> Built:
    """The objects of one notification that passed the filters.

    :raises BadItem: when the matched entity cannot be imported at all.
    """
    observable = entity_observable(n, opts)
    stix = dict(observable.stix)
    fill_observable(stix, n, opts)
    observable = dataclasses.replace(observable, stix=stix)
    factory = context.factory([opts.marking])
    built = Built(label=f"{KINDS[n.entity_type]} {observable.value}", subject=f"{n.entity_type}:{observable.value}")
    with_entity = n.entity_type != "file" or opts.create_file
    entity_id = stix["id"]
    objects: list[Any] = [stix] if with_entity else []
    ruleset = rulesets.get(n.ruleset_id or "")

    alert = None
    if opts.create_alert:
        alert = factory.incident(
            name=alert_name(n, opts, observable.value), created=n.moment, incident_type="alert",
            source="hunting_notification", first_seen=n.moment, last_seen=n.moment,
            description=alert_description(n, ruleset, built.label), labels=alert_labels(n, opts, ruleset.name),
            external_references=_notification_reference(n),
        )
        objects.append(alert)
        if with_entity:
            objects.append(factory.relationship("related-to", alert.id, entity_id))

    indicator_id = _rule_indicator(n, opts, ruleset, rulesets, factory, objects, built)
    if indicator_id is not None:
        if alert is not None:
            objects.append(factory.relationship("indicates", indicator_id, alert.id))
        if with_entity:
            objects.append(factory.relationship("related-to", entity_id, indicator_id))

    if with_entity and observable.entity_type in opts.indicators:
        objects += _based_on(factory, observable.entity_type, observable.value, entity_id, n,
                             f"{built.label} matched Livehunt rule {n.rule_name}", alert)
    if with_entity and (opts.get_malware_config or opts.enrich_file):
        objects = _enriched(context, n, opts, observable, objects, factory, alert, built)
    if with_entity and opts.upload_artifact and n.entity_type == "file":
        objects += _sample(context, n, opts, observable, built)
    built.objects = objects
    return built


def _notification_reference(n: Notification) -> list[dict[str, str]]:
    # OpenCTI keys an external reference by its URL when it has one: the notification's own reference has
    # none, or every alert of one file would share the first notification's.
    references = [{"source_name": "VirusTotal Livehunt", "external_id": n.id,
                   "description": f"Livehunt notification of rule {n.rule_name} (ruleset {n.ruleset_id})"}]
    link = blocks.gui_link(n.report)
    if link:
        references.append({"source_name": "VirusTotal", "url": link, "description": "VirusTotal Report"})
    return references


def _rule_indicator(n: Notification, opts: Options, ruleset: Ruleset, rulesets: Rulesets, factory: Any,
                    objects: list[Any], built: Built) -> str | None:
    """The indicator of the matched rule: vtframework's hunting indicator, or a YARA Indicator of the rule."""
    if ruleset.indicator_id:
        if rulesets.indicator_exists(ruleset.indicator_id):
            built.hunting_indicator = ruleset.indicator_id
            return ruleset.indicator_id
        built.warnings.append(f"{n.subject}: indicator {ruleset.indicator_id} of Livehunt ruleset {ruleset.id} is no "
                              "longer in OpenCTI; no Sighting")
        return None
    if not opts.create_yara_rule:
        return None
    text, description, problem = rulesets.rule(ruleset, n.rule_name or "")
    if text is None:
        built.warnings.append(f"{n.subject}: no YARA Indicator for rule {n.rule_name}: {problem}")
        return None
    created = ruleset.created or n.date
    indicator = factory.indicator(
        pattern=text, pattern_type="yara", name=n.rule_name or "YARA rule",
        description=description or f"YARA rule {n.rule_name} of VirusTotal Livehunt ruleset "
                                   f"{ruleset.name or n.ruleset_name or ruleset.id} ({ruleset.id}).",
        valid_from=dt.datetime.fromtimestamp(created, dt.timezone.utc),
        # No detection flag: the rule already hunts on VirusTotal, another ruleset for it would be a duplicate.
        main_observable_type="StixFile",
    )
    objects.append(indicator)
    return indicator.id


def _based_on(factory: Any, entity_type: str, value: str, entity_id: str, n: Notification, why: str,
              alert: Any) -> list[Any]:
    hash_name = "SHA-256" if entity_type == "StixFile" else None
    indicator = factory.indicator(
        pattern=pattern_for(entity_type, value, hash_name), name=value,
        description=f"{why} (VirusTotal Livehunt).", valid_from=n.moment, main_observable_type=entity_type,
    )
    made = [indicator, factory.relationship("based-on", indicator.id, entity_id)]
    if alert is not None:
        made.append(factory.relationship("indicates", indicator.id, alert.id))
    return made


def _enriched(context: Any, n: Notification, opts: Options, observable: Any, objects: list[Any], factory: Any,
              alert: Any, built: Built) -> list[Any]:
    """The other plugins' objects for the file object in hand (malware configuration, the file plugin)."""
    try:
        extra = context.enrich(observable, n.report, with_owner=opts.enrich_file)
    except Exception as exc:  # one plugin's failure costs its objects, never the notification
        if stops_the_run(exc):
            raise
        built.warnings.append(f"{n.subject}: the enrichment of {built.label} failed: {exc}")
        return objects
    merged = {obj["id"] if isinstance(obj, dict) else obj.id: obj for obj in objects}
    for obj in extra:
        merged[obj["id"]] = obj  # the enriched version of the entity wins
    result = list(merged.values())
    entity_id = observable.stix["id"]
    for obj in extra:
        kind = OPENCTI_TYPES.get(obj.get("type", ""))
        if kind is None or obj["id"] == entity_id or not isinstance(obj.get("value"), str):
            continue
        if alert is not None:
            result.append(factory.relationship("related-to", alert.id, obj["id"]))
        if kind in opts.indicators:
            result += _based_on(factory, kind, obj["value"], obj["id"], n,
                                f"{obj['value']} is in the malware configuration of {built.label}", alert)
    return result


def _sample(context: Any, n: Notification, opts: Options, observable: Any, built: Built) -> list[Any]:
    cap = opts.max_file_size or (context.settings["virustotal_downloader.max_size"]
                                 if "virustotal_downloader.max_size" in context.settings else 650 << 20)
    try:
        return context.store_sample(observable, max_size=cap, name=observable.stix.get("name"),
                                    description=f"Downloaded from VirusTotal (Livehunt notification {n.id}).")
    except Exception as exc:  # a sample that cannot be stored costs the Artifact only
        if stops_the_run(exc):
            raise
        built.warnings.append(f"{n.subject}: sample of {built.label} not stored: {exc}")
        return []


#: Failures that are not the notification's: the run stops and the next one tries the same notification again.
STOP_THE_RUN = (AuthenticationError, ConnectionFailed, QuotaExceededError, RequestTimeout, TooManyRequestsError,
                TransientError)


def stops_the_run(exc: BaseException) -> bool:
    return isinstance(exc, STOP_THE_RUN)
