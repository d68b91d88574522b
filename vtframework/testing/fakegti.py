"""A fake VirusTotal that answers as it does for a Google Threat Intelligence (GTI) key.

On top of :class:`~vtframework.testing.fakevt.FakeVirusTotal`:

- An object lookup returns only the relationship blocks its ``relationships=``
  names, in the shape VirusTotal gives them (``{data, links: {self, related},
  meta?: {cursor}}``, the first :data:`EMBEDDED_PAGE` items, a to-one relation
  with no object as ``data: null``); each item carries the attributes that
  ``relationship_attributes[<relationship>]`` names, else it is a bare
  descriptor ``{type, id}``. The relationships come from the blocks recorded in
  the sample (the whole relation as far as the fake knows) or from
  :meth:`FakeGTI.add_relation`.
- ``GET /{collection}/{id}/{relationship}`` serves the whole relation in pages
  (``limit``, ``cursor``, ``attributes``), ``links.next`` and ``meta.cursor``
  only while more remain.
- ``gti_assessment`` is only returned to a request that names itself in an
  ``x-tool`` header, as VirusTotal does.
- ``licensed`` names the GTI relationships the key's licence grants (``None``:
  all). Asking for another one is refused with 403 ``ForbiddenError``: on its
  own endpoint, and for the whole lookup that names it in ``relationships=``.
  (How VirusTotal treats a lookup naming a relationship the key may not read
  is not documented; the fake takes the strict reading: the lookup is refused.)

    with FakeGTI("tests/samples", api_key="k", licensed=("reports",)) as vt:
        ...
"""

from __future__ import annotations

import base64
import json
from typing import Any, Iterable
from urllib.parse import parse_qs

from vtframework.testing.fakevt import API_PREFIX, FakeVirusTotal, _envelope, _Handler

VT_API = "https://www.virustotal.com" + API_PREFIX
#: Items of a relationship embedded in a lookup (the real blocks link ``…/relationships/<name>?limit=20``).
EMBEDDED_PAGE = 20
#: Page size of a relationship endpoint without ``limit``, and the largest one honoured.
PAGE_DEFAULT, PAGE_MAX = 10, 40
#: Relationships only a GTI licence gives, on files, URLs, domains, IP addresses and collections.
GTI_RELATIONSHIPS = frozenset({
    "associations", "attack_techniques", "campaigns", "collections", "malware_families", "related_attack_techniques",
    "related_collections", "related_reports", "related_threat_actors", "reports", "software_toolkits",
    "suspected_threat_actors", "threat_actors", "vulnerabilities",
})
#: Relationships to one object: with none, VirusTotal answers ``data: null``.
TO_ONE = frozenset({"last_serving_ip_address", "network_location", "parent", "immediate_parent"})
FORBIDDEN = "You are not authorized to perform the requested operation"


class FakeGTI(FakeVirusTotal):
    """See the module docstring; every other argument is :class:`FakeVirusTotal`'s."""

    def __init__(self, samples_dir: str | None = None, *, licensed: Iterable[str] | None = None, **kw: Any) -> None:
        self.licensed = None if licensed is None else frozenset(licensed)
        self._relations: dict[tuple[str, str, str], Any] = {}
        super().__init__(samples_dir, **kw)

    def add_relation(self, collection: str, ident: str, name: str, items: list[dict[str, Any]] | dict | None) -> None:
        """Make ``items`` (full objects ``{type, id, attributes}``) the whole relationship ``name`` of an object.

        ``collection`` and ``ident`` are the API's (``files``, the SHA-256);
        a dict or ``None`` makes a to-one relationship.
        """
        with self._lock:
            self._collections.add(collection)
            self._relations[(collection, ident, name)] = items

    def grants(self, name: str) -> bool:
        """Whether the key's licence lets it read the relationship ``name``."""
        return self.licensed is None or name not in GTI_RELATIONSHIPS or name in self.licensed

    # -- answering -------------------------------------------------------------------
    def _serve_get(self, h: _Handler, api_path: str, query: str = "") -> int:
        parts = api_path.strip("/").split("/")
        params = parse_qs(query)
        if len(parts) == 2 and parts[0] in self._collections:
            raw = self._raw(*parts)
            if raw is not None:
                return self._serve_object(h, parts[0], json.loads(raw), params)
        if len(parts) == 3 and parts[0] in self._collections:
            collection, ident, name = parts
            raw = self._raw(collection, ident)
            known = json.loads(raw)["data"]["id"] if raw is not None else ident
            if not self.grants(name) and (raw is not None or (collection, known, name) in self._relations):
                return h.send(403, _envelope("ForbiddenError", FORBIDDEN))
            items = self._relation(collection, known, name, json.loads(raw) if raw is not None else None)
            if items is not _UNKNOWN:
                return self._send_json(h, 200, _page(collection, known, name, items, params))
        return super()._serve_get(h, api_path, query)

    def _raw(self, collection: str, ident: str) -> bytes | None:
        with self._lock:
            return self._samples.get((collection, ident.lower() if collection == "files" else ident))

    def _serve_object(self, h: _Handler, collection: str, doc: dict[str, Any], params: dict[str, list[str]]) -> int:
        data = doc["data"]
        asked = [name for name in ",".join(params.get("relationships", [])).split(",") if name.strip()]
        refused = [name for name in asked if not self.grants(name.strip())]
        if refused:
            return h.send(403, _envelope("ForbiddenError", FORBIDDEN))
        blocks = {}
        for name in dict.fromkeys(name.strip() for name in asked):
            items = self._relation(collection, str(data["id"]), name, doc)
            wanted = params.get(f"relationship_attributes[{name}]")
            blocks[name] = _block(collection, str(data["id"]), name, None if items is _UNKNOWN else items, wanted)
        data.pop("relationships", None)
        if blocks:
            data["relationships"] = blocks
        if not (h.headers.get("x-tool") or "").strip() and isinstance(data.get("attributes"), dict):
            data["attributes"].pop("gti_assessment", None)
        return self._send_json(h, 200, doc)

    def _relation(self, collection: str, ident: str, name: str, doc: dict[str, Any] | None) -> Any:
        """The whole relationship as the fake knows it: added, else recorded in the sample, else unknown."""
        with self._lock:
            if (collection, ident, name) in self._relations:
                return self._relations[(collection, ident, name)]
        recorded = ((doc or {}).get("data") or {}).get("relationships") or {}
        if isinstance(recorded.get(name), dict) and "data" in recorded[name]:
            return recorded[name]["data"]
        return _UNKNOWN if doc is None else (None if name in TO_ONE else [])


class _Unknown:
    """No such relationship for an object the fake does not hold: the base class answers (404)."""


_UNKNOWN = _Unknown()


def _attributes(item: Any, wanted: list[str] | None, descriptor: bool) -> Any:
    if not isinstance(item, dict):
        return item
    out = {key: item[key] for key in ("type", "id", "context_attributes") if key in item}
    if descriptor:
        return out
    attrs = item.get("attributes") if isinstance(item.get("attributes"), dict) else {}
    names = {n.strip() for n in ",".join(wanted).split(",")} if wanted else None
    out["attributes"] = {k: v for k, v in attrs.items() if names is None or k in names}
    return out


def _block(collection: str, ident: str, name: str, items: Any, wanted: list[str] | None) -> dict[str, Any]:
    links = {"self": f"{VT_API}/{collection}/{ident}/relationships/{name}?limit={EMBEDDED_PAGE}",
             "related": f"{VT_API}/{collection}/{ident}/{name}"}
    if not isinstance(items, list):
        return {"data": _attributes(items, wanted, descriptor=not wanted), "links": links}
    block: dict[str, Any] = {
        "data": [_attributes(item, wanted, descriptor=not wanted) for item in items[:EMBEDDED_PAGE]],
        "links": links,
    }
    if len(items) > EMBEDDED_PAGE:
        block["meta"] = {"cursor": _cursor(EMBEDDED_PAGE)}
    return block


def _page(collection: str, ident: str, name: str, items: Any, params: dict[str, list[str]]) -> dict[str, Any]:
    self_link = f"{VT_API}/{collection}/{ident}/{name}"
    if not isinstance(items, list):
        answer: dict[str, Any] = {
            "data": _attributes(items, params.get("attributes"), False), "links": {"self": self_link},
        }
        if items is None:
            answer["meta"] = {"count": 0}
        return answer
    try:
        limit = min(max(int(params.get("limit", [PAGE_DEFAULT])[0]), 1), PAGE_MAX)
    except ValueError:
        limit = PAGE_DEFAULT
    cursor = params.get("cursor", [""])[0]
    try:
        start = int(base64.urlsafe_b64decode(cursor.encode()).decode()) if cursor else 0
    except ValueError:
        start = 0
    page = items[start:start + limit]
    answer = {
        "data": [_attributes(item, params.get("attributes"), False) for item in page],
        "links": {"self": f"{self_link}?limit={limit}"},
    }
    if start + limit < len(items):
        following = _cursor(start + limit)
        answer["meta"] = {"cursor": following}
        answer["links"]["next"] = f"{self_link}?cursor={following}&limit={limit}"
    return answer


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(str(offset).encode()).decode()

