"""Hostile answers for the fake VirusTotal: what a broken proxy, a flaky network or an attacker sends.

Each kind is a fault :meth:`FakeVirusTotal.inject` accepts (``fake.inject("gzip_bomb",
path_prefix="/files/…")``), so a test or a benchmark can aim it at one
observable. They come in three families:

- transport: ``truncated`` (a Content-Length the body never reaches),
  ``chunked_cut`` (a chunked body that stops mid-stream), ``trickle`` (one byte
  every ``fake.trickle_seconds``), ``endless`` (a body that never ends),
  ``gzip_bomb`` (``fake.bomb_bytes`` of decompressed data from a few KB);
- shape: ``deep_json`` (100,000 levels of nesting), ``data_list``,
  ``data_string``, ``data_int`` (``data`` not an object), ``wrong_object`` (a
  real answer about another object);
- content: ``bad_numbers`` (the right object with negative, NaN, infinite and
  absurd counts), ``many_records`` (50,000 DNS records), ``ansi_400`` (a 400
  whose message carries terminal escape sequences), ``echo_key`` (a 400 that
  echoes the API key), ``echo_key_200`` (the right object with the key inside).

Everything is generated while it is sent: no kind holds its payload in memory.
"""

from __future__ import annotations

import gzip
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from vtframework.testing.fakevt import FakeVirusTotal

HOSTILE_FAULTS = (
    "truncated", "chunked_cut", "trickle", "endless", "gzip_bomb",
    "deep_json", "data_list", "data_string", "data_int", "wrong_object",
    "bad_numbers", "many_records", "ansi_400", "echo_key", "echo_key_200",
)
#: Kinds that leave the answer usable: the enrichment must succeed (with the bad parts left out).
SURVIVABLE = ("bad_numbers", "many_records", "echo_key_200")

_MEMBER = gzip.compress(b" " * (1 << 20), 9)  # 1 MiB of JSON whitespace in about a kilobyte
_COLLECTIONS = {"files": "file", "urls": "url", "ip_addresses": "ip_address", "domains": "domain"}


def serve(fake: "FakeVirusTotal", h: Any, kind: str, api_path: str) -> int:
    """Answer the request on handler ``h`` the hostile way ``kind`` names; returns the status sent (0: none)."""
    return _SERVERS[kind](fake, h, api_path)


# -- transport ----------------------------------------------------------------------------
def _truncated(fake: "FakeVirusTotal", h: Any, api_path: str) -> int:
    body = _announced(fake, h, api_path)
    _write(h, body[: len(body) // 2])
    h.hang_up(reset=False)
    return 200


def _chunked_cut(fake: "FakeVirusTotal", h: Any, api_path: str) -> int:
    _chunked_headers(h)
    _write(h, _chunk(b'{"data": {"type": "file", "id": "'))
    h.hang_up(reset=False)
    return 200


def _trickle(fake: "FakeVirusTotal", h: Any, api_path: str) -> int:
    body = _announced(fake, h, api_path)
    for index in range(len(body)):
        if fake._stopping.wait(fake.trickle_seconds) or not _write(h, body[index:index + 1]):
            break
    h.close_connection = True
    return 200


def _endless(fake: "FakeVirusTotal", h: Any, api_path: str) -> int:
    _chunked_headers(h)
    if _write(h, _chunk(b'{"data": {"type": "file", "id": "')):
        block = _chunk(b"A" * (1 << 16))
        while not fake._stopping.is_set() and _write(h, block):
            pass
    h.close_connection = True
    return 200


def _gzip_bomb(fake: "FakeVirusTotal", h: Any, api_path: str) -> int:
    h.send_response(200)
    h.send_header("Content-Type", "application/json; charset=utf-8")
    h.send_header("Content-Encoding", "gzip")
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    head = gzip.compress(b'{"data": {"type": "file", "id": "x", "attributes": {"pad": "')
    if _write(h, _chunk(head)):
        for _ in range(max(1, fake.bomb_bytes >> 20)):
            if fake._stopping.is_set() or not _write(h, _chunk(_MEMBER)):
                break
        else:
            _write(h, _chunk(gzip.compress(b'"}}}')) + b"0\r\n\r\n")
    h.close_connection = True
    return 200


# -- shape --------------------------------------------------------------------------------
def _deep_json(fake: "FakeVirusTotal", h: Any, api_path: str) -> int:
    depth = 100_000
    return h.send(200, b'{"data": ' + b"[" * depth + b"]" * depth + b"}")


def _data(value: Any) -> Any:
    def serve_data(fake: "FakeVirusTotal", h: Any, api_path: str) -> int:
        return h.send(200, json.dumps({"data": value}).encode())

    return serve_data


def _wrong_object(fake: "FakeVirusTotal", h: Any, api_path: str) -> int:
    wanted = api_path.strip("/").split("/")[0]
    for (collection, _ident), raw in sorted(fake._samples.items()):
        if collection != wanted and collection in _COLLECTIONS:
            return h.send(200, raw)
    return h.send(200, json.dumps({"data": {"type": "domain", "id": "another.example", "attributes": {}}}).encode())


# -- content ------------------------------------------------------------------------------
def _bad_numbers(fake: "FakeVirusTotal", h: Any, api_path: str) -> int:
    doc = _object(fake, api_path)
    attrs = doc["data"].setdefault("attributes", {})
    attrs["last_analysis_stats"] = {"malicious": float("nan"), "suspicious": -100, "undetected": 1e308,
                                    "harmless": float("inf"), "timeout": 2.5, "failure": 10**30}
    attrs["gti_assessment"] = {"threat_score": {"value": 600}}
    attrs["size"] = -1
    attrs["asn"] = 10**30
    attrs["reputation"] = float("-inf")
    return h.send(200, json.dumps(doc).encode())  # json writes NaN and Infinity: not JSON, but Python reads it


def _many_records(fake: "FakeVirusTotal", h: Any, api_path: str) -> int:
    doc = _object(fake, api_path)
    records = [{"type": "A", "value": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", "ttl": 300}
               for i in range(50_000)]
    doc["data"].setdefault("attributes", {})["last_dns_records"] = records
    return h.send(200, json.dumps(doc).encode())


def _ansi_400(fake: "FakeVirusTotal", h: Any, api_path: str) -> int:
    message = "Invalid value\x1b[2J\x1b[H\r\nVALUE  TYPE  RESULT\n8.8.8.8  IPv4-Addr  ok\x07"
    return h.send(400, json.dumps({"error": {"code": "BadRequestError", "message": message}}).encode())


def _echo_key(fake: "FakeVirusTotal", h: Any, api_path: str) -> int:
    key = h.headers.get("x-apikey") or ""
    message = f"Invalid argument for key {key} on {api_path}"
    return h.send(400, json.dumps({"error": {"code": "InvalidArgumentError", "message": message}}).encode())


def _echo_key_200(fake: "FakeVirusTotal", h: Any, api_path: str) -> int:
    doc = _object(fake, api_path)
    key = h.headers.get("x-apikey") or ""
    attrs = doc["data"].setdefault("attributes", {})
    attrs["meaningful_name"] = f"report-for-{key}.exe"
    attrs["tags"] = [*(attrs.get("tags") or []), key]
    attrs["categories"] = {"Echo": f"asked with {key}"}
    return h.send(200, json.dumps(doc).encode())


_SERVERS = {
    "truncated": _truncated, "chunked_cut": _chunked_cut, "trickle": _trickle, "endless": _endless,
    "gzip_bomb": _gzip_bomb, "deep_json": _deep_json, "data_list": _data([{"type": "file", "id": "x"}]),
    "data_string": _data("not an object"), "data_int": _data(42), "wrong_object": _wrong_object,
    "bad_numbers": _bad_numbers, "many_records": _many_records, "ansi_400": _ansi_400, "echo_key": _echo_key,
    "echo_key_200": _echo_key_200,
}


# -- helpers ------------------------------------------------------------------------------
def _sample(fake: "FakeVirusTotal", api_path: str) -> bytes | None:
    parts = api_path.strip("/").split("/")
    if len(parts) != 2:
        return None
    collection, ident = parts
    return fake._samples.get((collection, ident.lower() if collection == "files" else ident))


def _object(fake: "FakeVirusTotal", api_path: str) -> dict[str, Any]:
    """The recorded answer for the path, or a bare object of the right type and id."""
    raw = _sample(fake, api_path)
    if raw is not None:
        return json.loads(raw)
    collection, _, ident = api_path.strip("/").partition("/")
    return {"data": {"type": _COLLECTIONS.get(collection, "file"), "id": ident, "attributes": {}}}


def _announced(fake: "FakeVirusTotal", h: Any, api_path: str) -> bytes:
    """Send the headers of the real answer (its Content-Length included); return the body to send."""
    body = _sample(fake, api_path) or b'{"data": {"type": "file", "id": "x", "attributes": {}}}'
    h.send_response(200)
    h.send_header("Content-Type", "application/json; charset=utf-8")
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    return body


def _chunked_headers(h: Any) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "application/json; charset=utf-8")
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _write(h: Any, data: bytes) -> bool:
    """Send ``data``; False once the client has gone (which is how a capped reader says 'enough')."""
    try:
        h.wfile.write(data)
        return True
    except (BrokenPipeError, ConnectionResetError, OSError):
        h.close_connection = True
        return False

