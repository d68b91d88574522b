"""Livehunt notifications in the fake VirusTotal: one store of matches, served the ways VirusTotal serves them.

A test says what matched (``FakeVirusTotal.add_hunting_notification``); the
same notifications then appear, newest first and paged by cursor, in:

- ``GET /intelligence/hunting_notifications``: notification objects, in the
  shape of the recorded ``hunting_notifications_list_cybergate.json``;
- ``GET /intelligence/hunting_notification_files``: the matched files, each
  with its notification in ``context_attributes``, in the shape of the
  recorded ``hunting_notification_files_list_cybergate.json``;
- ``GET /ioc_stream``: the matched entities of any type (files, URLs,
  domains, IP addresses) with the IoC-stream context. No recorded IoC-stream
  page exists; this shape is CONSTRUCTED from VirusTotal's documentation
  (``context_attributes``: ``notification_id``, ``notification_date``,
  ``origin``, ``sources``, ``tags``, ``hunting_info``).

The two legacy listings show file matches only, as they did on VirusTotal.
A notification is deleted by its id in either id space
(``DELETE /intelligence/hunting_notifications/{id}``,
``DELETE /ioc_stream_notifications/{id}``) and is then gone from every
listing. Cursors name the last item returned, like VirusTotal's, so
notifications arriving while a client pages never shift the pages it has not
read yet. Filters the real endpoints do not know are refused with 400.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs

API = "https://www.virustotal.com/api/v3"
LEGACY_PATH = "/intelligence/hunting_notifications"
FILES_PATH = "/intelligence/hunting_notification_files"
STREAM_PATH = "/ioc_stream"
STREAM_NOTIFICATION_PATH = "/ioc_stream_notifications"
#: The user the fake's listing links name (the real answers point at /users/<user>/...).
USER = "vtframework_tests"
#: Page size without ``limit``, and the largest one honoured.
PAGE_DEFAULT, PAGE_MAX = 10, 40
#: What ``meta.count`` counts up to on the legacy listings (their ``count_limit`` default).
COUNT_LIMIT = 200
FIRST_STREAM_ID = 23415549505

#: Filter keys each listing accepts; anything else is refused like VirusTotal refuses it.
LEGACY_FILTERS = {"date", "tag", "owner", "ruleset_id", "ruleset_name", "rule_name"}
STREAM_FILTERS = {"date", "origin", "entity_id", "entity_type", "source_type", "source_id", "notification_tag"}
_COLLECTION = {"file": "files", "url": "urls", "domain": "domains", "ip_address": "ip_addresses"}


def normalized_tag(text: str) -> str:
    """How VirusTotal writes a name as a notification tag: lower case, other characters as ``_``."""
    return re.sub(r"[^a-z0-9]", "_", text.lower())


@dataclass
class HuntingMatch:
    """One Livehunt notification: which rule of which ruleset matched which entity, and when."""

    seq: int
    ruleset_id: str
    ruleset_name: str
    rule_name: str
    entity: dict[str, Any]
    date: int
    legacy_id: str
    stream_id: str
    rule_tags: list[str] = field(default_factory=list)
    #: The legacy listings' tags (rule, entity id, ruleset) and the IoC stream's (ruleset, rule, rule tags).
    tags: list[str] = field(default_factory=list)
    stream_tags: list[str] = field(default_factory=list)
    snippet: str | None = None
    source_country: str | None = None
    source_key: str | None = None
    match_in_subfile: bool = False

    @property
    def key(self) -> tuple[int, int]:
        """Listing order: newest first, then latest added first."""
        return (self.date, self.seq)

    @property
    def entity_type(self) -> str:
        return str(self.entity.get("type"))

    @property
    def entity_id(self) -> str:
        return str(self.entity.get("id"))

    # -- the three shapes -----------------------------------------------------------
    def legacy(self) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "date": self.date, "match_in_subfile": self.match_in_subfile, "rule_name": self.rule_name,
            "rule_tags": list(self.rule_tags), "snippet": self.snippet or "", "tags": list(self.tags),
        }
        if self.source_country is not None:
            attributes["source_country"] = self.source_country
        if self.source_key is not None:
            attributes["source_key"] = self.source_key
        return {"attributes": attributes, "id": self.legacy_id,
                "links": {"self": f"{API}{LEGACY_PATH}/{self.legacy_id}"}, "type": "hunting_notification"}

    def file(self) -> dict[str, Any]:
        item = self._entity()
        item["context_attributes"] = {
            "match_in_subfile": self.match_in_subfile,
            "notification_date": self.date,
            "notification_id": self.legacy_id,
            "notification_snippet": self.snippet or "",
            "notification_source_country": self.source_country,
            "notification_source_key": self.source_key,
            "notification_tags": list(self.tags),
            "rule_name": self.rule_name,
            "rule_tags": list(self.rule_tags),
            "ruleset_id": self.ruleset_id,
            "ruleset_name": self.ruleset_name,
        }
        return item

    def stream(self, descriptors_only: bool = False) -> dict[str, Any]:
        item = {"type": self.entity_type, "id": self.entity_id} if descriptors_only else self._entity()
        item["context_attributes"] = self._stream_context()
        return item

    def stream_notification(self) -> dict[str, Any]:
        context = self._stream_context()
        attributes = {"date": self.date, "entity_type": self.entity_type, "entity_id": self.entity_id,
                      "origin": context["origin"], "hunting_info": context["hunting_info"],
                      "sources": context["sources"], "tags": context["tags"]}
        return {"type": "ioc_stream_notification", "id": self.stream_id, "attributes": attributes,
                "links": {"self": f"{API}{STREAM_NOTIFICATION_PATH}/{self.stream_id}"}}

    def _stream_context(self) -> dict[str, Any]:
        hunting: dict[str, Any] = {"rule_name": self.rule_name, "match_in_subfile": self.match_in_subfile}
        if self.rule_tags:
            hunting["rule_tags"] = list(self.rule_tags)
        for name in ("snippet", "source_country", "source_key"):
            if getattr(self, name) is not None:
                hunting[name] = getattr(self, name)
        return {
            "notification_id": self.stream_id,
            "notification_date": self.date,
            "origin": "hunting",
            "sources": [{"id": self.ruleset_id, "type": "hunting_ruleset", "label": self.ruleset_name}],
            "tags": list(self.stream_tags),
            "hunting_info": hunting,
        }

    def _entity(self) -> dict[str, Any]:
        entity = json.loads(json.dumps(self.entity))
        entity.pop("context_attributes", None)
        entity.setdefault("links", {"self": f"{API}/{_COLLECTION.get(self.entity_type, 'files')}/{self.entity_id}"})
        return entity


class HuntingNotifications:
    """The notification store and its endpoints; :class:`FakeVirusTotal` hands it the requests under its paths.

    :param ruleset_name: looks a ruleset's name up among the fake's own rulesets (``None`` when unknown).
    """

    def __init__(self, ruleset_name: Callable[[str], str | None] | None = None) -> None:
        self._ruleset_name = ruleset_name or (lambda _ruleset_id: None)
        self._matches: dict[int, HuntingMatch] = {}
        self._seq = 0
        self._lock = threading.Lock()

    # -- what tests do -----------------------------------------------------------------
    def add(
        self,
        entity: dict[str, Any],
        *,
        ruleset_id: str,
        rule_name: str,
        ruleset_name: str | None = None,
        date: int | None = None,
        rule_tags: Iterable[str] = (),
        tags: Iterable[str] | None = None,
        snippet: str | None = None,
        source_country: str | None = None,
        source_key: str | None = None,
        match_in_subfile: bool = False,
    ) -> HuntingMatch:
        """Record that ``rule_name`` of ruleset ``ruleset_id`` matched ``entity`` (a VirusTotal object)."""
        entity = dict(entity.get("data", entity))
        rule_tags = list(rule_tags)
        if not entity.get("type") or not entity.get("id"):
            raise ValueError("entity must be a VirusTotal object with a type and an id")
        name = ruleset_name or self._ruleset_name(str(ruleset_id)) or f"ruleset {ruleset_id}"
        when = int(time.time()) if date is None else int(date)
        with self._lock:
            self._seq += 1
            seq = self._seq
            analysed = (entity.get("attributes") or {}).get("last_analysis_date") or when
            # The recorded ids are <ruleset>-<32 hex>-<sha256>-<timestamp>; the hex part's source is not known.
            rule_hex = hashlib.md5(f"{ruleset_id}:{rule_name}".encode()).hexdigest()
            legacy_id = f"{ruleset_id}-{rule_hex}-{entity['id']}-{analysed}"
            if any(m.legacy_id == legacy_id for m in self._matches.values()):
                legacy_id = f"{legacy_id}{seq}"
            default_tags = [normalized_tag(rule_name), str(entity["id"]), normalized_tag(name)]
            stream_tags = [normalized_tag(name), normalized_tag(rule_name), *rule_tags]
            match = HuntingMatch(
                seq=seq, ruleset_id=str(ruleset_id), ruleset_name=name, rule_name=rule_name, entity=entity,
                date=when, legacy_id=legacy_id, stream_id=str(FIRST_STREAM_ID + seq),
                rule_tags=list(rule_tags), tags=list(tags) if tags is not None else list(dict.fromkeys(default_tags)),
                stream_tags=list(tags) if tags is not None else list(dict.fromkeys(stream_tags)),
                snippet=snippet, source_country=source_country, source_key=source_key,
                match_in_subfile=match_in_subfile,
            )
            self._matches[seq] = match
        return match

    @property
    def matches(self) -> list[HuntingMatch]:
        """The notifications not deleted, newest first."""
        with self._lock:
            return sorted(self._matches.values(), key=lambda m: m.key, reverse=True)

    # -- serving -------------------------------------------------------------------------
    @staticmethod
    def handles(method: str, api_path: str) -> bool:
        return api_path in (LEGACY_PATH, FILES_PATH, STREAM_PATH) or api_path.startswith(
            (LEGACY_PATH + "/", STREAM_NOTIFICATION_PATH + "/")
        )

    def answer(self, method: str, api_path: str, query: str) -> tuple[int, Any]:
        """``(status, JSON document or None)`` for one request under the hunting paths."""
        params = parse_qs(query, keep_blank_values=True)
        if api_path.startswith(LEGACY_PATH + "/") or api_path.startswith(STREAM_NOTIFICATION_PATH + "/"):
            return self._one(method, api_path, stream=api_path.startswith(STREAM_NOTIFICATION_PATH))
        if method != "GET":
            return 404, _error("NotFoundError", f"Resource not found: {method} {api_path}")
        if api_path == STREAM_PATH:
            return self._list(params, STREAM_FILTERS, STREAM_PATH, stream=True)
        return self._list(params, LEGACY_FILTERS, api_path, stream=False)

    def _one(self, method: str, api_path: str, stream: bool) -> tuple[int, Any]:
        ident = api_path.rsplit("/", 1)[1]
        with self._lock:
            found = next((m for m in self._matches.values()
                          if (m.stream_id if stream else m.legacy_id) == ident), None)
            if found is None:
                kind = "IoCStreamNotification" if stream else "HuntingNotification"
                return 404, _error("NotFoundError", f'{kind} "{ident}" not found')
            if method == "DELETE":
                del self._matches[found.seq]
                return 200, None
        if method == "GET":
            return 200, {"data": found.stream_notification() if stream else found.legacy()}
        return 405, _error("MethodNotAllowedError", f"{method} is not allowed here")

    def _list(self, params: dict[str, list[str]], allowed: set[str], path: str, stream: bool) -> tuple[int, Any]:
        try:
            limit = int(params.get("limit", [PAGE_DEFAULT])[0])
            count_limit = int(params.get("count_limit", [COUNT_LIMIT])[0])
        except ValueError:
            return 400, _error("InvalidArgumentError", "limit and count_limit must be integers")
        limit = min(max(limit, 1), PAGE_MAX)
        order = params.get("order", ["date-"])[0]
        if order not in ("date-", "date+") or (order == "date+" and not stream):
            return 400, _error("InvalidArgumentError", f"Invalid order: {order}")
        try:
            keep = _filter(params.get("filter", [""])[0], allowed, stream)
            after = _cursor(params.get("cursor", [""])[0])
        except ValueError as exc:
            return 400, _error("InvalidArgumentError", str(exc))
        matches = [m for m in self.matches if (stream or m.entity_type == "file") and keep(m)]
        total = len(matches)
        if order == "date+":
            matches.reverse()
            if after is not None:
                matches = [m for m in matches if m.key > after]
        elif after is not None:
            matches = [m for m in matches if m.key < after]
        page, rest = matches[:limit], matches[limit:]
        descriptors = params.get("descriptors_only", ["false"])[0].lower() == "true"
        if stream:
            data = [m.stream(descriptors) for m in page]
        else:
            data = [m.file() if path == FILES_PATH else m.legacy() for m in page]
        where = path if stream else f"/users/{USER}/{path.rsplit('/', 1)[1]}"
        links: dict[str, str] = {"self": f"{API}{where}?limit={limit}"}
        meta: dict[str, Any] = {} if stream else {"count": min(total, count_limit)}
        if rest:
            cursor = base64.urlsafe_b64encode(json.dumps(list(page[-1].key)).encode()).decode()
            meta["cursor"] = cursor
            links["next"] = f"{links['self']}&cursor={cursor}"
        answer: dict[str, Any] = {"data": data, "links": links}
        if meta:
            answer["meta"] = meta
        return 200, answer


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _cursor(text: str) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        date, seq = json.loads(base64.urlsafe_b64decode(text.encode()).decode())
        return int(date), int(seq)
    except (ValueError, TypeError):
        raise ValueError(f"Invalid cursor: {text}") from None


def _moment(value: str) -> int:
    """A filter date: unix seconds, ``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM:SS`` (UTC)."""
    if value.isdigit():
        return int(value)
    for layout in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"):
        try:
            return int(dt.datetime.strptime(value, layout).replace(tzinfo=dt.timezone.utc).timestamp())
        except ValueError:
            continue
    raise ValueError(f"Invalid date in filter: {value}")


def _filter(text: str, allowed: set[str], stream: bool) -> Callable[[HuntingMatch], bool]:
    """The test a listing's ``filter`` parameter puts on each notification (all terms must hold)."""
    tests: list[Callable[[HuntingMatch], bool]] = []
    for term in text.split():
        key, sep, value = term.partition(":")
        if not sep or key not in allowed:
            raise ValueError(f"Invalid filter: {term}")
        if key == "date":
            if not value or value[-1] not in "+-":
                raise ValueError(f"Invalid date filter: {term}")
            bound, newer = _moment(value[:-1]), value[-1] == "+"
            tests.append(lambda m, b=bound, n=newer: m.date >= b if n else m.date <= b)
        elif key in ("tag", "notification_tag"):
            tests.append(lambda m, v=value.lower(): v in {t.lower() for t in (m.stream_tags if stream else m.tags)})
        elif key in ("ruleset_id", "source_id"):
            tests.append(lambda m, v=value: m.ruleset_id == v)
        elif key == "ruleset_name":
            tests.append(lambda m, v=value: m.ruleset_name == v)
        elif key == "rule_name":
            tests.append(lambda m, v=value: m.rule_name == v)
        elif key == "entity_type":
            tests.append(lambda m, v=value: m.entity_type == v)
        elif key == "entity_id":
            tests.append(lambda m, v=value: m.entity_id == v)
        elif key == "source_type":
            tests.append(lambda m, v=value: v == "hunting_ruleset")
        elif key == "origin":
            tests.append(lambda m, v=value: v == "hunting")
        # owner: every ruleset of the fake belongs to its one user
    return lambda match: all(test(match) for test in tests)
