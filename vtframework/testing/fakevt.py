"""A fake VirusTotal API v3 on 127.0.0.1 for tests and benchmarks.

It answers lookups with recorded real responses from a samples directory
(every ``{"data": {"type": T, "id": I}}`` object at ``/<collection of T>/I``:
files, URLs, IP addresses, domains, analyses, YARA rulesets, Sigma rules,
comments…), answers fixed routes a test adds, keeps VirusTotal's error envelopes, enforces a per-minute quota like the real service
and can inject faults (5xx, 429s, hangs, connection resets, malformed JSON).
Livehunt rulesets (``/intelligence/hunting_rulesets``) are a stateful resource:
create, list (``limit``/``cursor``/``filter``), read, patch, delete, editors.
Livehunt notifications (what those rulesets matched) are served from one store
in the shapes of the three listings (see :mod:`vtframework.testing.fakevt_hunting`).

    with FakeVirusTotal("tests/samples", quota_per_minute=4) as vt:
        client = VTClient(ClientConfig(api_key="k", base_url=vt.base_url), state)
"""

from __future__ import annotations

import argparse
import base64
import collections
import hashlib
import itertools
import json
import os
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator
from urllib.parse import parse_qs, unquote, urlsplit

import vtframework.testing.hostile as hostile
from vtframework.testing.fakevt_hunting import HuntingMatch, HuntingNotifications
from vtframework.testing.server import LocalServer
from vtframework.vt.client import url_id

API_PREFIX = "/api/v3"
STORAGE_PREFIX = "/_storage/"

#: Collections whose name is not simply the object ``type`` plus "s"; every other type is.
COLLECTIONS = {
    "file": "files",
    "url": "urls",
    "ip_address": "ip_addresses",
    "domain": "domains",
    "analysis": "analyses",
    "yara_ruleset": "yara_rulesets",
    "sigma_rule": "sigma_rules",
}
# VirusTotal's real 404 names the object kind first ('File "<hash>" not found'); the
# other kinds follow the same pattern.
_KIND = {
    "files": "File",
    "urls": "URL",
    "ip_addresses": "IP address",
    "domains": "Domain",
    "analyses": "Analysis",
    "yara_rulesets": "YARA ruleset",
    "sigma_rules": "Sigma rule",
}
#: Relationships of files, URLs, domains and IPs that VirusTotal answers with an empty
#: list (not a 404) for an object it knows that has none: a known object with no
#: recording of them gets that empty answer.
EMPTY_WHEN_NONE = ("comments", "votes")


def collection_of(object_type: str) -> str:
    """The API collection that serves objects of ``object_type`` (``sigma_rule`` -> ``sigma_rules``)."""
    if object_type in COLLECTIONS:
        return COLLECTIONS[object_type]
    if object_type.endswith(("s", "x", "sh", "ch")):
        return object_type + "es"
    return object_type + "s"


def _kind(collection: str) -> str:
    return _KIND.get(collection) or collection.rstrip("s").replace("_", " ").capitalize()

FAULTS = (
    "500", "503", "504", "too_many_requests", "quota_exceeded", "hang", "reset", "malformed",
    *hostile.HOSTILE_FAULTS,
)

HUNTING_PATH = "/intelligence/hunting_rulesets"
#: First id handed out; real ruleset ids are 16-digit numeric strings.
FIRST_RULESET_ID = 5551558908215296
#: Page size when a listing gives no ``limit``, and the largest one honoured.
HUNTING_PAGE_DEFAULT, HUNTING_PAGE_MAX = 10, 40


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received; the x-apikey value is replaced by ``<redacted>``."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    time: float
    #: HTTP status answered; 0 while pending or when the connection was hung up or reset.
    status: int
    body: bytes = b""


@dataclass
class _Fault:
    kind: str
    remaining: int
    path_prefix: str | None


@dataclass
class _Route:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def _envelope(code: str, message: str) -> bytes:
    return json.dumps({"error": {"message": message, "code": code}}, indent=2).encode()


class FakeVirusTotal(LocalServer):
    """See the module docstring. ``api_key`` set means requests without it get 401."""

    #: Seconds between two bytes of a ``trickle`` fault.
    trickle_seconds = 1.0
    #: Decompressed size of a ``gzip_bomb`` fault.
    bomb_bytes = 1 << 30

    def __init__(
        self,
        samples_dir: str | None = None,
        *,
        api_key: str | None = None,
        latency: float = 0.0,
        quota_per_minute: int | None = None,
        quota_window: float = 60.0,
        hang_seconds: float = 5.0,
        port: int = 0,
    ) -> None:
        self.api_key = api_key
        self.latency = latency
        self.quota_per_minute = quota_per_minute
        self.quota_window = quota_window
        self.hang_seconds = hang_seconds
        self._port = port
        self._samples: dict[tuple[str, str], bytes] = {}
        self._collections: set[str] = set(_KIND)
        #: Recorded list answers (comments, votes…) by the API path of their ``links.self``.
        self._lists: dict[str, bytes] = {}
        self._routes: dict[tuple[str, str], _Route] = {}
        self._downloads: dict[str, bytes | int | tuple[str, int]] = {}
        self._faults: list[_Fault] = []
        self._window: collections.deque[float] = collections.deque()
        self._log: list[RecordedRequest] = []
        self._rulesets: dict[str, dict[str, Any]] = {}
        self._ruleset_ids = itertools.count(FIRST_RULESET_ID, 7919)
        self.hunting = HuntingNotifications(self._ruleset_name)
        # Re-entrant: an answer built under the lock logs its status (under the lock) as it leaves.
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        if samples_dir:
            self.load_samples(samples_dir)

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> "FakeVirusTotal":
        self._serve(_Server, _Handler, self._port, name="fakevt")
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._shutdown()

    @property
    def base_url(self) -> str:
        return self.url + API_PREFIX

    # -- set-up --------------------------------------------------------------------
    def load_samples(self, samples_dir: str) -> None:
        """Index every ``{"data": {...}}`` sample by collection and id (files also by each hash).

        Other JSON (collections, error envelopes) is skipped; a file that is not
        JSON at all is an error naming it.
        """
        for name in sorted(os.listdir(samples_dir)):
            if name.endswith(".json"):
                path = os.path.join(samples_dir, name)
                with open(path, "rb") as fh:
                    raw = fh.read()
                try:
                    self._index(raw)
                except ValueError as exc:
                    raise ValueError(f"{path} is not JSON: {exc}") from None

    def add_object(self, answer: dict[str, Any] | bytes) -> None:
        """Serve one recorded object (``{"data": {"type": T, "id": I, ...}}``) at its collection."""
        raw = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        if not self._index(raw):
            raise ValueError('not a VirusTotal object answer: expected {"data": {"type": ..., "id": ...}}')

    def _index(self, raw: bytes) -> bool:
        """Serve ``raw`` if it is one object or a recorded list; False when it is other JSON."""
        doc = json.loads(raw)
        data = doc.get("data") if isinstance(doc, dict) else None
        if isinstance(data, list):
            return self._index_list(doc, raw)
        if not isinstance(data, dict) or not isinstance(data.get("type"), str) or "id" not in data:
            return False
        collection = collection_of(data["type"])
        attrs = data.get("attributes") if isinstance(data.get("attributes"), dict) else {}
        ids = {str(data["id"])}
        if collection == "files":
            ids |= {str(attrs[h]) for h in ("md5", "sha1", "sha256") if attrs.get(h)}
        if collection == "urls" and attrs.get("url"):
            ids.add(url_id(str(attrs["url"])))
        with self._lock:
            self._collections.add(collection)
            for ident in ids:
                key = (collection, ident.lower() if collection == "files" else ident)
                # A bare descriptor ({type, id}) must not shadow a full object with the same id.
                if key in self._samples and not attrs:
                    continue
                self._samples[key] = raw
        return True

    def _index_list(self, doc: dict[str, Any], raw: bytes) -> bool:
        """A recorded list (``/domains/x/comments``) is served at the path its ``links.self`` names."""
        link = (doc.get("links") or {}).get("self") if isinstance(doc.get("links"), dict) else None
        if not (isinstance(link, str) and API_PREFIX + "/" in link):
            return False
        with self._lock:
            self._lists[unquote(urlsplit(link).path).split(API_PREFIX, 1)[1]] = raw
        return True

    def add_route(
        self,
        method: str,
        path: str,
        status: int = 200,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer ``method path`` (relative to /api/v3, query ignored) with a fixed response.

        ``body`` may be a dict/list (sent as JSON), str, bytes or None (empty).
        """
        if isinstance(body, (dict, list)):
            raw = json.dumps(body).encode()
        elif isinstance(body, str):
            raw = body.encode()
        else:
            raw = body or b""
        with self._lock:
            self._routes[(method.upper(), path)] = _Route(status, raw, dict(headers or {}))

    def add_download(self, sha256: str, content: bytes | int) -> None:
        """Serve ``/files/<sha256>/download``: ``content`` bytes, or that many generated bytes.

        Generated payloads are produced while streaming, so a 200 MB sample never
        sits in memory; :meth:`iter_payload` yields the same bytes for checking.
        """
        with self._lock:
            self._downloads[sha256.lower()] = content

    def add_generated_download(self, size: int, seed: str = "vtframework") -> str:
        """Serve a generated sample of ``size`` bytes under its real SHA-256 (returned).

        The bytes are produced while streaming, so a 200 MB sample never sits in
        memory, and they verify: the digest is that of what is served.
        """
        digest = hashlib.sha256()
        for piece in _generate(seed, size):
            digest.update(piece)
        sha256 = digest.hexdigest()
        with self._lock:
            self._downloads[sha256] = (seed, size)
        return sha256

    def iter_payload(self, sha256: str, chunk: int = 1 << 20) -> Iterator[bytes]:
        content = self._downloads[sha256.lower()]
        if isinstance(content, bytes):
            yield content
            return
        if isinstance(content, tuple):
            yield from _generate(*content, chunk=chunk)
            return
        yield from _generate(sha256, content, chunk=chunk)

    def inject(self, kind: str, count: int = 1, path_prefix: str | None = None) -> None:
        """Make the next ``count`` API requests (under ``path_prefix``, relative to /api/v3) fail.

        ``kind`` is one of :data:`FAULTS`: ``"500"`` (plain-text body), ``"503"``
        (TransientError), ``"504"`` (DeadlineExceededError), ``"too_many_requests"``,
        ``"quota_exceeded"``, ``"hang"`` (no answer for ``hang_seconds``), ``"reset"``
        (TCP reset), ``"malformed"`` (200 with broken JSON), or one of the hostile answers of
        :mod:`vtframework.testing.hostile` (a gzip bomb, a trickle, ``data`` as a list…).
        """
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; choose one of {', '.join(FAULTS)}")
        with self._lock:
            self._faults.append(_Fault(kind, count, path_prefix))

    def clear_faults(self) -> None:
        """Forget every fault not served yet (the network healed, the proxy went away)."""
        with self._lock:
            self._faults.clear()

    def add_hunting_ruleset(self, name: str, rules: str, **attributes: Any) -> str:
        """Create a Livehunt ruleset as if someone made it on VirusTotal; returns its id."""
        with self._lock:
            return self._new_ruleset({"name": name, "rules": rules, **attributes})["id"]

    def add_hunting_notification(self, entity: dict[str, Any], **notification: Any) -> HuntingMatch:
        """Record a Livehunt match of ``entity`` (a VirusTotal object, or a recorded ``{"data": ...}``).

        Keywords: ``ruleset_id``, ``rule_name`` (required), ``ruleset_name`` (default: the
        fake's own ruleset's name), ``date`` (unix seconds, default now), ``rule_tags``,
        ``tags``, ``snippet``, ``source_country``, ``source_key``, ``match_in_subfile``.
        """
        return self.hunting.add(entity, **notification)

    def recorded(self, collection: str, ident: str) -> dict[str, Any]:
        """A loaded sample's VirusTotal object (``recorded("files", sha256)``), to report a match of it."""
        raw = self._samples[(collection, ident.lower() if collection == "files" else ident)]
        return json.loads(raw)["data"]

    def _ruleset_name(self, ruleset_id: str) -> str | None:
        with self._lock:
            ruleset = self._rulesets.get(ruleset_id)
            return ruleset["attributes"].get("name") if ruleset else None

    # -- inspection ----------------------------------------------------------------
    @property
    def hunting_rulesets(self) -> dict[str, dict[str, Any]]:
        """The Livehunt rulesets by id: ``{"id", "attributes", "editors"}`` (copies)."""
        with self._lock:
            return json.loads(json.dumps(self._rulesets))

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._log)

    def count(self, path_prefix: str = "", status: int | None = None) -> int:
        """Requests whose path starts with ``path_prefix`` (full path, e.g. ``/api/v3/files``)."""
        return sum(
            1 for r in self.requests if r.path.startswith(path_prefix) and (status is None or r.status == status)
        )

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    def _record(self, handler: "_Handler", path: str, query: str, body: bytes) -> int:
        """Log a request as it arrives (a hung one must show up too); returns its index."""
        headers = {k.lower(): v for k, v in handler.headers.items()}
        if "x-apikey" in headers:
            headers["x-apikey"] = "<redacted>"
        entry = RecordedRequest(handler.command, path, query, headers, time.time(), 0, body)
        with self._lock:
            self._log.append(entry)
            return len(self._log) - 1

    def _set_status(self, index: int, status: int) -> None:
        with self._lock:
            if index < len(self._log):
                self._log[index] = replace(self._log[index], status=status)

    # -- answering -----------------------------------------------------------------
    def _answer(self, h: "_Handler", path: str, query: str, body: bytes) -> int:
        if path.startswith(STORAGE_PREFIX):
            return self._serve_storage(h, path[len(STORAGE_PREFIX):])
        if self.latency:
            self._stopping.wait(self.latency)
        if not path.startswith(API_PREFIX + "/"):
            return h.send(404, b"Not Found", content_type="text/plain")
        api_path = path[len(API_PREFIX):]
        rejected = self._check_key(h)
        if rejected is not None:
            return rejected
        fault = self._take_fault(api_path)
        if fault in hostile.HOSTILE_FAULTS:
            return hostile.serve(self, h, fault, api_path)
        if fault is not None:
            return self._serve_fault(h, fault)
        if not self._take_quota():
            return h.send(429, _envelope("QuotaExceededError", "Quota exceeded"))
        with self._lock:
            route = self._routes.get((h.command, api_path))
        if route is not None:
            return h.send(route.status, route.body, headers=route.headers)
        if api_path == HUNTING_PATH or api_path.startswith(HUNTING_PATH + "/"):
            return self._serve_hunting(h, api_path[len(HUNTING_PATH):].strip("/"), query, body)
        if self.hunting.handles(h.command, api_path):
            status, doc = self.hunting.answer(h.command, api_path, query)
            return h.send(status, b"" if doc is None else json.dumps(doc, indent=4).encode())
        if h.command == "GET":
            return self._serve_get(h, api_path, query)
        return h.send(404, _envelope("NotFoundError", f"Resource not found: {h.command} {api_path}"))

    def _check_key(self, h: "_Handler") -> int | None:
        if self.api_key is None:
            return None
        given = h.headers.get("x-apikey")
        if not given:
            return h.send(401, _envelope("AuthenticationRequiredError", "X-Apikey header is missing"))
        if given != self.api_key:
            return h.send(401, _envelope("WrongCredentialsError", "Wrong API key"))
        return None

    def _take_fault(self, api_path: str) -> str | None:
        with self._lock:
            for fault in self._faults:
                if fault.path_prefix is None or api_path.startswith(fault.path_prefix):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault.kind
        return None

    def _take_quota(self) -> bool:
        if self.quota_per_minute is None:
            return True
        now = time.monotonic()
        with self._lock:
            while self._window and self._window[0] <= now - self.quota_window:
                self._window.popleft()
            if len(self._window) >= self.quota_per_minute:
                return False
            self._window.append(now)
            return True

    def _serve_fault(self, h: "_Handler", kind: str) -> int:
        if kind == "500":
            return h.send(500, b"<html><body>Internal Server Error</body></html>", content_type="text/html")
        if kind == "503":
            return h.send(503, _envelope("TransientError", "Transient error, please retry"))
        if kind == "504":
            return h.send(504, _envelope("DeadlineExceededError", "Operation took too long to complete"))
        if kind == "too_many_requests":
            return h.send(429, _envelope("TooManyRequestsError", "Too many requests"))
        if kind == "quota_exceeded":
            return h.send(429, _envelope("QuotaExceededError", "Quota exceeded"))
        if kind == "malformed":
            return h.send(200, b'{"data": {"type": "file", "id": "4bc00f7d', content_type="application/json")
        if kind == "hang":
            self._stopping.wait(self.hang_seconds)
            h.hang_up(reset=False)
            return 0
        h.hang_up(reset=True)
        return 0

    def _serve_get(self, h: "_Handler", api_path: str, query: str = "") -> int:
        parts = api_path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "files" and parts[2] in ("download", "download_url"):
            return self._serve_download_link(h, parts[1].lower(), parts[2])
        if len(parts) == 2 and parts[0] in self._collections:
            collection, ident = parts
            raw = self._samples.get((collection, ident.lower() if collection == "files" else ident))
            if raw is not None:
                return h.send(200, raw)
            return h.send(404, _envelope("NotFoundError", f'{_kind(collection)} "{ident}" not found'))
        if len(parts) == 3 and parts[0] in self._collections:
            return self._serve_relationship(h, *parts)
        return h.send(404, _envelope("NotFoundError", f"Resource not found: {api_path}"))

    def _serve_relationship(self, h: "_Handler", collection: str, ident: str, name: str) -> int:
        """A recorded list, else VirusTotal's empty answer for a known object, else its 404."""
        raw = self._lists.get(f"/{collection}/{ident}/{name}")
        if raw is not None:
            return h.send(200, raw)
        key = (collection, ident.lower() if collection == "files" else ident)
        if key not in self._samples:
            return h.send(404, _envelope("NotFoundError", f'{_kind(collection)} "{ident}" not found'))
        if name not in EMPTY_WHEN_NONE:
            return h.send(404, _envelope("NotFoundError", f"Resource not found: /{collection}/{ident}/{name}"))
        self_link = f"https://www.virustotal.com/api/v3/{collection}/{ident}/{name}?limit=10"
        return h.send(200, json.dumps({"data": [], "links": {"self": self_link}}).encode())

    def _serve_download_link(self, h: "_Handler", sha256: str, kind: str) -> int:
        with self._lock:
            known = sha256 in self._downloads
        if not known:
            return h.send(404, _envelope("NotFoundError", f'File "{sha256}" not found'))
        signed = f"{self.url}{STORAGE_PREFIX}{sha256}?Expires={int(time.time()) + 3600}&Signature=fake"
        if kind == "download_url":
            return h.send(200, json.dumps({"data": signed}).encode())
        return h.send(302, b"", content_type="text/html; charset=utf-8", headers={"Location": signed})

    def _serve_storage(self, h: "_Handler", sha256: str) -> int:
        with self._lock:
            content = self._downloads.get(sha256.lower())
        if content is None:
            return h.send(404, b"NoSuchKey", content_type="text/plain")
        size = len(content) if isinstance(content, bytes) else content[1] if isinstance(content, tuple) else content
        h.send_response(200)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(size))
        h.end_headers()
        try:
            for piece in self.iter_payload(sha256):
                h.wfile.write(piece)
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True
        return 200

    # -- Livehunt rulesets -----------------------------------------------------------
    def _serve_hunting(self, h: "_Handler", rest: str, query: str, body: bytes) -> int:
        parts = rest.split("/") if rest else []
        method = h.command
        with self._lock:
            if not parts:
                if method == "GET":
                    return self._send_json(h, 200, self._list_rulesets(h, parse_qs(query)))
                if method == "POST":
                    attributes, error = _ruleset_attributes(body, creating=True)
                    if error:
                        return h.send(400, _envelope("BadRequestError", error))
                    return self._send_json(h, 200, {"data": self._public(self._new_ruleset(attributes))})
            elif parts[0] in self._rulesets:
                ruleset = self._rulesets[parts[0]]
                if len(parts) == 1 and method == "GET":
                    return self._send_json(h, 200, {"data": self._public(ruleset)})
                if len(parts) == 1 and method == "PATCH":
                    attributes, error = _ruleset_attributes(body, creating=False)
                    if error:
                        return h.send(400, _envelope("BadRequestError", error))
                    ruleset["attributes"].update(attributes)
                    ruleset["attributes"].update(_derived(ruleset["attributes"]["rules"]))
                    ruleset["attributes"]["modification_date"] = int(time.time())
                    return self._send_json(h, 200, {"data": self._public(ruleset)})
                if len(parts) == 1 and method == "DELETE":
                    del self._rulesets[parts[0]]
                    return h.send(200, b"")
                if parts[1:] == ["relationships", "editors"] and method == "POST":
                    descriptors, error = _editor_descriptors(body)
                    if error:
                        return h.send(400, _envelope("BadRequestError", error))
                    known = {(e["type"], e["id"]) for e in ruleset["editors"]}
                    ruleset["editors"] += [d for d in descriptors if (d["type"], d["id"]) not in known]
                    return self._send_json(h, 200, {"data": ruleset["editors"]})
                if parts[1:] == ["relationships", "editors"] and method == "GET":
                    return self._send_json(h, 200, {"data": ruleset["editors"]})
            elif method in ("GET", "PATCH", "DELETE") or parts[1:] == ["relationships", "editors"]:
                return h.send(404, _envelope("NotFoundError", f'HuntingRuleset "{parts[0]}" not found'))
        return h.send(404, _envelope("NotFoundError", f"Resource not found: {method} {HUNTING_PATH}/{rest}"))

    def _new_ruleset(self, attributes: dict[str, Any]) -> dict[str, Any]:
        now = int(time.time())
        ident = str(next(self._ruleset_ids))
        full = {"creation_date": now, "enabled": False, "limit": 100, "modification_date": now,
                "notification_emails": [], **attributes, **_derived(attributes["rules"])}
        ruleset = {"id": ident, "attributes": dict(sorted(full.items())), "editors": []}
        self._rulesets[ident] = ruleset
        return ruleset

    def _public(self, ruleset: dict[str, Any]) -> dict[str, Any]:
        return {
            "attributes": dict(ruleset["attributes"]),
            "id": ruleset["id"],
            "links": {"self": f"https://www.virustotal.com/api/v3{HUNTING_PATH}/{ruleset['id']}"},
            "type": "hunting_ruleset",
        }

    def _list_rulesets(self, h: "_Handler", params: dict[str, list[str]]) -> dict[str, Any]:
        try:
            limit = min(max(int(params.get("limit", [HUNTING_PAGE_DEFAULT])[0]), 1), HUNTING_PAGE_MAX)
        except ValueError:
            limit = HUNTING_PAGE_DEFAULT
        cursor = params.get("cursor", [""])[0]
        start = int(base64.urlsafe_b64decode(cursor.encode()).decode()) if cursor else 0
        matching = [r for r in self._rulesets.values() if _matches(r["attributes"], params.get("filter", [""])[0])]
        page = matching[start:start + limit]
        answer: dict[str, Any] = {
            "data": [self._public(r) for r in page],
            "links": {"self": f"https://www.virustotal.com/api/v3{HUNTING_PATH}?limit={limit}"},
            "meta": {},
        }
        if start + limit < len(matching):
            following = base64.urlsafe_b64encode(str(start + limit).encode()).decode()
            answer["meta"]["cursor"] = following
            answer["links"]["next"] = f"{answer['links']['self']}&cursor={following}"
        return answer

    @staticmethod
    def _send_json(h: "_Handler", status: int, doc: Any) -> int:
        return h.send(status, json.dumps(doc, indent=4).encode())



def _generate(seed: str, size: int, chunk: int = 1 << 20) -> Iterator[bytes]:
    """``size`` deterministic bytes derived from ``seed``, a chunk at a time."""
    block = hashlib.sha256(seed.encode()).digest() * (65536 // 32)
    block = block * max(1, chunk // len(block))
    left = size
    while left > 0:
        piece = block[: min(left, len(block))]
        left -= len(piece)
        yield piece


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeVirusTotal

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gives up mid-answer (size cap, timeout) is part of what we test, not an error.
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, the body waits for the
    # client's delayed ACK and every answer gains ~40 ms the real service does not have.
    disable_nagle_algorithm = True
    server: _Server

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fake = self.server.fake
        index = self._log_index = fake._record(self, path, parts.query, body)
        fake._set_status(index, fake._answer(self, path, parts.query, body))

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

    def send_response(self, code: int, message: str | None = None) -> None:
        # Logged before the answer leaves: a client that has read it finds its status in the log.
        index = getattr(self, "_log_index", None)
        if index is not None:
            self.server.fake._set_status(index, code)
        super().send_response(code, message)

    def send(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> int:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        return status

    def hang_up(self, reset: bool) -> None:
        """Close without answering; with ``reset`` the peer sees a TCP RST, not a clean close."""
        if reset:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        try:
            self.connection.close()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


_WORD = re.compile(r"[A-Za-z0-9_]+")


def _ruleset_attributes(body: bytes, creating: bool) -> tuple[dict[str, Any], str | None]:
    """The attributes a create or patch sends, or VirusTotal-style complaint about them."""
    try:
        data = json.loads(body)["data"]
        attributes = dict(data["attributes"])
    except (ValueError, KeyError, TypeError):
        return {}, 'Expected a JSON body {"data": {"type": "hunting_ruleset", "attributes": {...}}}'
    if data.get("type") != "hunting_ruleset":
        return {}, f"Invalid type {data.get('type')!r}, expected hunting_ruleset"
    if creating and not attributes.get("name"):
        return {}, "Missing required attribute: name"
    if creating and "rules" not in attributes:
        return {}, "Missing required attribute: rules"
    if "rules" in attributes:
        problem = _rules_problem(str(attributes["rules"]))
        if problem:
            return {}, problem
    return attributes, None


def _rules_problem(rules: str) -> str | None:
    """A rough YARA check: at least one ``rule`` and balanced braces outside comments and strings."""
    code = re.sub(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\])*"', " ", rules, flags=re.S)
    if not re.search(r"\brule\s+[A-Za-z_]\w*", code):
        return "line 1: syntax error, unexpected end of file, expecting rule"
    depth = 0
    for line_no, line in enumerate(code.split("\n"), 1):
        for char in line:
            depth += {"{": 1, "}": -1}.get(char, 0)
            if depth < 0:
                return f"line {line_no}: syntax error, unexpected '}}'"
    if depth:
        return "syntax error, unexpected end of file, expecting '}'"
    return None


def _derived(rules: str) -> dict[str, Any]:
    names = re.findall(r"\brule\s+([A-Za-z_]\w*)", re.sub(r"//[^\n]*|/\*.*?\*/", " ", rules, flags=re.S))
    return {"number_of_rules": len(names), "rule_names": names}


def _editor_descriptors(body: bytes) -> tuple[list[dict[str, str]], str | None]:
    try:
        descriptors = [{"type": d["type"], "id": str(d["id"])} for d in json.loads(body)["data"]]
    except (ValueError, KeyError, TypeError):
        return [], 'Expected a JSON body {"data": [{"type": "user"|"group", "id": ...}]}'
    if any(d["type"] not in ("user", "group") for d in descriptors):
        return [], "Editors must be of type user or group"
    return descriptors, None


def _matches(attributes: dict[str, Any], text: str) -> bool:
    """VirusTotal's listing filter: ``name:``, ``rules:`` (whole words) and ``enabled:``, all must hold."""
    for term in text.split():
        field_name, _, value = term.partition(":")
        if field_name in ("name", "rules"):
            if value.lower() not in {w.lower() for w in _WORD.findall(str(attributes.get(field_name, "")))}:
                return False
        elif field_name == "enabled":
            if str(bool(attributes.get("enabled"))).lower() != value.lower():
                return False
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve recorded VirusTotal responses on 127.0.0.1.")
    parser.add_argument("--samples", required=True, help="directory of recorded JSON responses")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument("--quota-per-minute", type=int, default=None)
    parser.add_argument("--api-key", default=None, help="answer 401 unless this x-apikey is sent")
    args = parser.parse_args(argv)
    fake = FakeVirusTotal(
        args.samples, api_key=args.api_key, latency=args.latency,
        quota_per_minute=args.quota_per_minute, port=args.port,
    )
    with fake:
        print(f"fake VirusTotal at {fake.base_url} ({len(fake._samples)} lookups indexed); Ctrl-C stops it")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
