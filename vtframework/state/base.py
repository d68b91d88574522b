"""The state contract: response cache, key-value map and quota counters.

Callers pass the time in (``now``, unix seconds) so a fake clock drives expiry
and quota windows in tests exactly as real time does.
"""

from __future__ import annotations

import json
import zlib
from abc import ABC, abstractmethod
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from vtframework.errors import ConfigError

DAY = 86400.0
#: Default cap of the response cache, in bytes (``VTF_CACHE_MAX_MB``).
DEFAULT_CACHE_MAX_BYTES = 512 << 20
#: Values whose JSON is at least this long are stored compressed (a 12 KB IP answer becomes about 2 KB).
COMPRESS_FROM = 1024
#: zlib level: 3 compresses a VirusTotal answer within 3% of level 9 at less than half its cost.
_LEVEL = 3
#: Largest value read back: a damaged or foreign entry cannot inflate past this (a zlib bomb).
MAX_VALUE_BYTES = 256 << 20


class StateError(ConfigError):
    """The state (SQLite file or Redis) cannot be opened, read or written; the message names it
    and says what to do. At start it stops the command (exit code 2); later it fails the work at hand."""

    def __init__(self, message: str) -> None:
        super().__init__(message, key="vtf.state_dir")


def seconds_until_utc_midnight(now: float) -> float:
    # Unix time has no leap seconds, so UTC days are exact multiples of 86400.
    return (int(now // DAY) + 1) * DAY - now


class StateStore(ABC):
    """What the client, the cache and the plugins may keep between requests and runs."""

    # -- response cache ------------------------------------------------------------
    @abstractmethod
    def cache_get(self, key: str, now: float) -> dict[str, Any] | None:
        """The value stored under ``key`` unless it expired at ``now``."""

    @abstractmethod
    def cache_set(self, key: str, value: dict[str, Any], ttl: float, now: float) -> None:
        """Store a JSON-able ``value`` until ``now + ttl``."""

    # -- key-value map without expiry ----------------------------------------------
    @abstractmethod
    def kv_get(self, ns: str, key: str) -> Any | None: ...

    @abstractmethod
    def kv_set(self, ns: str, key: str, value: Any) -> None: ...

    @abstractmethod
    def kv_delete(self, ns: str, key: str) -> None: ...

    @abstractmethod
    def kv_items(self, ns: str) -> dict[str, Any]: ...

    # -- quota -----------------------------------------------------------------------
    @abstractmethod
    def quota_try_acquire(
        self, bucket: str, now: float, per_minute: int, per_day: int, window: float = 60.0
    ) -> float:
        """Take one request slot for ``bucket`` at ``now``.

        Returns 0.0 when the slot was taken (and recorded atomically), otherwise the
        seconds to wait before trying again: until the oldest request leaves the
        sliding ``window`` when the minute is spent, or until 00:00 UTC when the
        day is spent (a wait longer than ``window`` therefore means "day spent").
        """

    def close(self) -> None:
        """Release connections; the store must not be used afterwards."""


def pack_value(value: Any) -> str | bytes:
    """A JSON-able value as stored: compact JSON text, or zlib-compressed bytes when that is large."""
    text = json.dumps(value, separators=(",", ":"))
    if len(text) < COMPRESS_FROM:
        return text
    packed = zlib.compress(text.encode("utf-8"), _LEVEL)
    return packed if len(packed) < len(text) else text


def unpack_value(stored: str | bytes | None) -> Any | None:
    """The value :func:`pack_value` stored (plain JSON text from older versions too); None for one
    this version cannot read, which is then as good as absent."""
    if stored is None:
        return None
    try:
        # A zlib stream starts with 0x78 ("x"), which no JSON text does.
        if isinstance(stored, bytes) and stored[:1] == b"\x78":
            inflater = zlib.decompressobj()
            stored = inflater.decompress(stored, MAX_VALUE_BYTES)
            if inflater.unconsumed_tail or not inflater.eof:
                return None  # larger than any value we write, or cut short
        return json.loads(stored)
    except (TypeError, ValueError, RecursionError, zlib.error):
        return None


def redact_url(url: str) -> str:
    """The URL without its password, fit for messages and logs."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
    except ValueError:  # an unparsable port: keep nothing between the scheme and the host
        return url.split("://", 1)[0] + "://***"
    netloc = f"{parts.username or ''}:***@{parts.netloc.rsplit('@', 1)[1]}"
    return urlunsplit(parts._replace(netloc=netloc))


def secret_of_url(url: str) -> str | None:
    """The password a URL carries (``redis://:pw@host``), or None."""
    try:
        return urlsplit(url).password
    except ValueError:
        return None
