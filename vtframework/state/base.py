"""The state contract: response cache, key-value map and quota counters.

Callers pass the time in (``now``, unix seconds) so a fake clock drives expiry
and quota windows in tests exactly as real time does.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from vtframework.errors import ConfigError

DAY = 86400.0


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
