"""Shared state: response cache, key-value map and quota counters.

One SQLite file under the state directory by default; Redis when several
replicas must share one key's quota and the livehunt map.
"""

from __future__ import annotations

import os

from vtframework.state.base import (
    DAY,
    DEFAULT_CACHE_MAX_BYTES,
    StateError,
    StateStore,
    redact_url,
    seconds_until_utc_midnight,
)
from vtframework.state.sqlite import SQLiteState

#: File name of the embedded state inside the state directory.
SQLITE_FILENAME = "vtframework.sqlite3"


def open_state(
    state_dir: str, redis_url: str | None = None, cache_max_bytes: int = DEFAULT_CACHE_MAX_BYTES
) -> StateStore:
    """Redis when ``redis_url`` is set, otherwise the SQLite file under ``state_dir``, its response
    cache capped at ``cache_max_bytes`` (Redis is capped by its own ``maxmemory``)."""
    if redis_url:
        from vtframework.state.redis_store import RedisState  # only Redis users need the client

        return RedisState(redis_url)
    if os.path.exists(state_dir) and not os.path.isdir(state_dir):
        raise StateError(
            f"the state directory {state_dir} is a file, not a directory; "
            "set VTF_STATE_DIR to a directory (it is created when missing)"
        )
    try:
        os.makedirs(state_dir, exist_ok=True)
    except OSError as exc:
        raise StateError(
            f"cannot create the state directory {state_dir} ({exc.strerror or exc}); "
            "set VTF_STATE_DIR to a writable directory"
        ) from None
    return SQLiteState(os.path.join(state_dir, SQLITE_FILENAME), cache_max_bytes=cache_max_bytes)


def __getattr__(name: str):
    # RedisState is imported on first use so SQLite-only runs never load the redis client.
    if name == "RedisState":
        from vtframework.state.redis_store import RedisState

        return RedisState
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DAY", "DEFAULT_CACHE_MAX_BYTES", "SQLITE_FILENAME", "RedisState", "SQLiteState", "StateError", "StateStore", "open_state", "redact_url",
    "seconds_until_utc_midnight",
]
