"""VirusTotal's side: the listings Livehunt notifications are read from, and how one is deleted.

Three listings show the same notifications, newest first, paged by cursor:

- ``ioc_stream`` (the original connector's, and VirusTotal's current one):
  every entity type, filtered to ``source_type:hunting_ruleset``; its
  notification ids are numeric strings, deleted at
  ``/ioc_stream_notifications/{id}``;
- ``hunting_notification_files`` (the legacy Livehunt listing): files only,
  each with its notification in ``context_attributes``; deleted at
  ``/intelligence/hunting_notifications/{id}``;
- ``hunting_notifications`` (the legacy notifications themselves): the same
  notifications without their files, so each matched file is read once more
  (``/files/{sha256}``, cached); deleted like the previous one.

Each item becomes a :class:`Notification`, or a :class:`BadItem` naming what is
wrong with it: one malformed item never stops the listing.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Iterator

from vtframework.errors import InputError, MalformedResponse

PRIVILEGE = "Livehunt (premium)"
#: Items asked for per page (VirusTotal's collections give at most 40).
PAGE_SIZE = 40
#: VirusTotal's entity types, and OpenCTI's for each.
ENTITY_TYPES = {"file": "StixFile", "url": "Url", "domain": "Domain-Name", "ip_address": "IPv4-Addr"}


@dataclass(frozen=True)
class Notification:
    """One Livehunt notification: which rule of which ruleset matched which entity, and when."""

    id: str
    date: int
    entity_type: str
    entity_id: str
    attributes: Mapping[str, Any]
    ruleset_id: str | None
    ruleset_name: str | None
    rule_name: str | None
    rule_tags: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    snippet: str | None = None
    source_country: str | None = None
    match_in_subfile: bool = False

    @property
    def subject(self) -> str:
        return f"notification {self.id}"

    @property
    def moment(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.date, dt.timezone.utc)

    @property
    def report(self) -> dict[str, Any]:
        """The matched entity as a VirusTotal answer (what enrichment plugins read)."""
        return {"data": {"type": self.entity_type, "id": self.entity_id, "attributes": dict(self.attributes)}}


class BadItem(InputError):
    """A listing item that cannot be imported; ``id`` and ``date`` are set when the item had them."""

    def __init__(self, reason: str, notification_id: str | None = None, date: int | None = None) -> None:
        super().__init__(reason)
        self.id = notification_id
        self.date = date


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _texts(value: Any) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def _date(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and 0 < value < 1 << 40:
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


class Feed:
    """A listing of Livehunt notifications."""

    name = ""
    path = ""

    #: Whether each item lacks the matched entity's attributes (they are read separately).
    needs_entity = False
    #: Filter terms every query carries, the tag filter's name, and other fixed parameters.
    base_terms: tuple[str, ...] = ()
    tag_filter = "tag"
    fixed_params: dict[str, Any] = {}

    def params(self, *, newer_than: int | None, older_than: int | None, tag: str | None, limit: int) -> dict[str, Any]:
        """The query of one listing. ``date`` bounds are widened by a second, because whether VirusTotal's
        ``+``/``-`` include the bound is not documented: the caller filters exactly."""
        terms = list(self.base_terms)
        if newer_than is not None:
            terms.append(f"date:{self.when(newer_than - 1)}+")
        if older_than is not None:
            terms.append(f"date:{self.when(older_than + 1)}-")
        if tag:
            terms.append(f"{self.tag_filter}:{tag}")
        params: dict[str, Any] = {**self.fixed_params, "limit": limit}
        if terms:
            params["filter"] = " ".join(terms)
        return params

    def when(self, moment: int) -> str:
        """A time as the listing's ``date`` filter takes it (UTC timestamps)."""
        return str(max(moment, 0))

    def parse(self, item: Any) -> Notification:
        raise NotImplementedError

    def delete_path(self, notification_id: str) -> str:
        raise NotImplementedError

    def _start(self, item: Any) -> tuple[Mapping[str, Any], str, int]:
        if not isinstance(item, Mapping):
            raise BadItem(f"a {self.name} item that is not an object ({type(item).__name__})")
        context = item.get("context_attributes")
        if not isinstance(context, Mapping):
            raise BadItem(f"{item.get('type')} {item.get('id')}: {self.name} item without context_attributes")
        notification_id = _text(context.get("notification_id")) or (
            str(context["notification_id"]) if isinstance(context.get("notification_id"), int) else None)
        date = _date(context.get("notification_date"))
        if notification_id is None or date is None:
            raise BadItem(f"{item.get('type')} {item.get('id')}: notification without an id or a date",
                          notification_id, date)
        return context, notification_id, date


class IocStream(Feed):
    name = "ioc_stream"
    path = "/ioc_stream"

    base_terms = ("source_type:hunting_ruleset",)
    tag_filter = "notification_tag"
    fixed_params = {"descriptors_only": "false"}

    def when(self, moment: int) -> str:
        # The IoC stream documents ISO times in its date filter.
        return dt.datetime.fromtimestamp(max(moment, 0), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")

    def parse(self, item: Any) -> Notification:
        context, notification_id, date = self._start(item)
        entity_type, entity_id = item.get("type"), _text(item.get("id"))
        if entity_type not in ENTITY_TYPES or entity_id is None:
            raise BadItem(f"notification {notification_id}: a {entity_type!r} entity is not something Livehunt "
                          "matches (file, url, domain, ip_address)", notification_id, date)
        sources = [s for s in context.get("sources") or [] if isinstance(s, Mapping) and s.get("type") == "hunting_ruleset"]
        hunting = context.get("hunting_info") if isinstance(context.get("hunting_info"), Mapping) else {}
        return _notification(
            notification_id, date, entity_type, entity_id, item, hunting, _IOC_KEYS,
            ruleset_id=str(sources[0].get("id") or "") if sources else None,
            ruleset_name=sources[0].get("label") if sources else None,
            tags=context.get("tags"),
        )

    def delete_path(self, notification_id: str) -> str:
        return f"/ioc_stream_notifications/{notification_id}"


class NotificationFiles(Feed):
    name = "hunting_notification_files"
    path = "/intelligence/hunting_notification_files"

    def parse(self, item: Any) -> Notification:
        context, notification_id, date = self._start(item)
        entity_id = _text(item.get("id"))
        if item.get("type") != "file" or entity_id is None:
            raise BadItem(f"notification {notification_id}: not a file", notification_id, date)
        return _notification(
            notification_id, date, "file", entity_id, item, context, _LEGACY_KEYS,
            ruleset_id=str(context.get("ruleset_id") or ""), ruleset_name=context.get("ruleset_name"),
            tags=context.get("notification_tags"),
        )

    def delete_path(self, notification_id: str) -> str:
        return f"/intelligence/hunting_notifications/{notification_id}"


class HuntingNotifications(Feed):
    name = "hunting_notifications"
    path = "/intelligence/hunting_notifications"
    needs_entity = True

    def parse(self, item: Any) -> Notification:
        if not isinstance(item, Mapping):
            raise BadItem(f"a {self.name} item that is not an object ({type(item).__name__})")
        notification_id = _text(item.get("id"))
        attributes = item.get("attributes") if isinstance(item.get("attributes"), Mapping) else {}
        date = _date(attributes.get("date"))
        if notification_id is None or date is None:
            raise BadItem(f"hunting notification {item.get('id')!r} without an id or a date", notification_id, date)
        # The id is <ruleset id>-<32 hex>-<sha256>-<timestamp>; the tags hold the sha256 too.
        parts = notification_id.split("-")
        tags = _texts(attributes.get("tags"))
        sha256 = next((p.lower() for p in (*parts, *tags) if _SHA256.fullmatch(p)), None)
        if sha256 is None or not parts[0].isdigit():
            raise BadItem(f"hunting notification {notification_id}: its id names no ruleset and no file",
                          notification_id, date)
        return _notification(notification_id, date, "file", sha256, {}, attributes, _IOC_KEYS,
                             ruleset_id=parts[0], ruleset_name=None, tags=tags)

    def delete_path(self, notification_id: str) -> str:
        return f"/intelligence/hunting_notifications/{notification_id}"


_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


#: Where each listing keeps the match's details (the IoC stream in ``hunting_info``, the legacy one in the context).
_IOC_KEYS = {"rule_name": "rule_name", "rule_tags": "rule_tags", "snippet": "snippet",
             "source_country": "source_country", "match_in_subfile": "match_in_subfile"}
_LEGACY_KEYS = {"rule_name": "rule_name", "rule_tags": "rule_tags", "snippet": "notification_snippet",
                "source_country": "notification_source_country", "match_in_subfile": "match_in_subfile"}


def _notification(notification_id: str, date: int, entity_type: str, entity_id: str, item: Mapping[str, Any],
                  match: Mapping[str, Any], keys: Mapping[str, str], *, ruleset_id: Any, ruleset_name: Any,
                  tags: Any) -> Notification:
    attributes = item.get("attributes") if isinstance(item.get("attributes"), Mapping) else {}
    return Notification(
        id=notification_id, date=date, entity_type=entity_type, entity_id=entity_id, attributes=attributes,
        ruleset_id=_text(ruleset_id), ruleset_name=_text(ruleset_name),
        rule_name=_text(match.get(keys["rule_name"])),
        rule_tags=_texts(match.get(keys["rule_tags"])),
        tags=_texts(tags),
        snippet=_text(match.get(keys["snippet"])),
        source_country=_text(match.get(keys["source_country"])),
        match_in_subfile=match.get(keys["match_in_subfile"]) is True,
    )


FEEDS: dict[str, type[Feed]] = {"ioc_stream": IocStream, "hunting_notification_files": NotificationFiles,
                                 "hunting_notifications": HuntingNotifications}


def pages(client: Any, feed: Feed, params: Mapping[str, Any]) -> Iterator[list[Any]]:
    """The listing's pages, following the cursor to the end (never from the cache: the listing moves)."""
    params = dict(params)
    seen: set[str] = set()
    while True:
        page = client.get(feed.path, params=params, subject="Livehunt notifications", cache=False, privilege=PRIVILEGE)
        data = page.get("data")
        if not isinstance(data, list):
            raise MalformedResponse(f"{feed.path} answered without a list of notifications", subject="Livehunt notifications")
        yield data
        meta = page.get("meta") if isinstance(page.get("meta"), Mapping) else {}
        cursor = meta.get("cursor")
        if not isinstance(cursor, str) or not cursor or cursor in seen or not data:
            return
        seen.add(cursor)
        params["cursor"] = cursor
