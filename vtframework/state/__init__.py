"""Shared state: response cache, key-value map and quota counters.

One SQLite file under the state directory by default; Redis when several
replicas must share one key's quota and the livehunt map.
"""

from __future__ import annotations

import os

from vtframework.errors import ConfigError
from vtframework.state.base import DAY, StateStore, redact_url, seconds_until_utc_midnight
from vtframework.state.sqlite import SQLiteState

#: File name of the embedded state inside the state directory.
SQLITE_FILENAME = "vtframework.sqlite3"


def open_state(state_dir: str, redis_url: str | None = None) -> StateStore:
    """Redis when ``redis_url`` is set, otherwise the SQLite file under ``state_dir``."""
    if redis_url:
        from vtframework.state.redis_store import RedisState  # only Redis users need the client

        return RedisState(redis_url)
    try:
        os.makedirs(state_dir, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the state directory {state_dir!r} ({exc}); set VTF_STATE_DIR to a writable directory",
            key="vtf.state_dir",
        ) from exc
    return SQLiteState(os.path.join(state_dir, SQLITE_FILENAME))


def __getattr__(name: str):
    # RedisState is imported on first use so SQLite-only runs never load the redis client.
    if name == "RedisState":
        from vtframework.state.redis_store import RedisState

        return RedisState
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DAY", "SQLITE_FILENAME", "RedisState", "SQLiteState", "StateStore", "open_state", "redact_url",
    "seconds_until_utc_midnight",
]
