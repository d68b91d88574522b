"""Shared state: response cache, key-value map and quota counters.

One SQLite file under the state directory by default; Redis when several replicas
must share one key's quota. Callers pass the time in (``now``, unix seconds) so a
fake clock drives expiry and quota windows in tests exactly as real time does.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import uuid
from abc import ABC, abstractmethod
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from vtframework.errors import ConfigError

DAY = 86400.0
#: File name of the embedded state inside the state directory.
SQLITE_FILENAME = "vtframework.sqlite3"


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


class SQLiteState(StateStore):
    """State in one SQLite file; safe across threads and across processes sharing it.

    Each thread gets its own connection (sqlite3 connections must not be shared
    while a transaction is open); WAL lets readers proceed while a writer holds
    the lock, and ``BEGIN IMMEDIATE`` takes the write lock before reading the
    quota so two processes cannot both grant the last slot.
    """

    def __init__(self, path: str, busy_timeout: float = 30.0) -> None:
        self.path = path
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        # IF NOT EXISTS makes this safe when several processes open the file at once.
        self._conn().executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def _tx(self) -> "_Transaction":
        return _Transaction(self._conn())

    def cache_get(self, key: str, now: float) -> dict[str, Any] | None:
        row = self._conn().execute(
            "SELECT value FROM cache WHERE key = ? AND expires_at > ?", (key, now)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def cache_set(self, key: str, value: dict[str, Any], ttl: float, now: float) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO cache (key, value, expires_at) VALUES (?, ?, ?)",
                (key, json.dumps(value), now + ttl),
            )
            # Expired rows are never read again; drop them now and then so the file stays small.
            db.execute("DELETE FROM cache WHERE expires_at <= ? AND rowid % 64 = 0", (now,))

    def kv_get(self, ns: str, key: str) -> Any | None:
        row = self._conn().execute("SELECT value FROM kv WHERE ns = ? AND key = ?", (ns, key)).fetchone()
        return json.loads(row[0]) if row else None

    def kv_set(self, ns: str, key: str, value: Any) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO kv (ns, key, value) VALUES (?, ?, ?)", (ns, key, json.dumps(value))
            )

    def kv_delete(self, ns: str, key: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM kv WHERE ns = ? AND key = ?", (ns, key))

    def kv_items(self, ns: str) -> dict[str, Any]:
        rows = self._conn().execute("SELECT key, value FROM kv WHERE ns = ?", (ns,)).fetchall()
        return {k: json.loads(v) for k, v in rows}

    def quota_try_acquire(
        self, bucket: str, now: float, per_minute: int, per_day: int, window: float = 60.0
    ) -> float:
        day = int(now // DAY)
        with self._tx() as db:
            db.execute("DELETE FROM quota_events WHERE bucket = ? AND ts <= ?", (bucket, now - window))
            used, oldest = db.execute(
                "SELECT COUNT(*), MIN(ts) FROM quota_events WHERE bucket = ?", (bucket,)
            ).fetchone()
            if used >= per_minute:
                return max(oldest + window - now, 0.001)
            row = db.execute(
                "SELECT count FROM quota_days WHERE bucket = ? AND day = ?", (bucket, day)
            ).fetchone()
            if row and row[0] >= per_day:
                return seconds_until_utc_midnight(now)
            db.execute("INSERT INTO quota_events (bucket, ts) VALUES (?, ?)", (bucket, now))
            db.execute(
                "INSERT INTO quota_days (bucket, day, count) VALUES (?, ?, 1) "
                "ON CONFLICT (bucket, day) DO UPDATE SET count = count + 1",
                (bucket, day),
            )
            db.execute("DELETE FROM quota_days WHERE bucket = ? AND day < ?", (bucket, day - 1))
            return 0.0

    def close(self) -> None:
        with self._conns_lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
        self._local = threading.local()


class _Transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS kv (ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (ns, key));
CREATE TABLE IF NOT EXISTS quota_events (bucket TEXT NOT NULL, ts REAL NOT NULL);
CREATE INDEX IF NOT EXISTS quota_events_bucket_ts ON quota_events (bucket, ts);
CREATE TABLE IF NOT EXISTS quota_days (
    bucket TEXT NOT NULL, day INTEGER NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (bucket, day)
);
"""

# Atomic on the Redis server, so replicas cannot both take the last slot.
# Numbers go back as strings: Lua numbers returned to Redis are truncated to integers.
_QUOTA_LUA = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local per_minute = tonumber(ARGV[3])
local per_day = tonumber(ARGV[4])
local day_left = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= per_minute then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  local wait = tonumber(oldest[2]) + window - now
  if wait < 0.001 then wait = 0.001 end
  return tostring(wait)
end
if tonumber(redis.call('GET', KEYS[2]) or '0') >= per_day then
  return tostring(day_left)
end
redis.call('ZADD', KEYS[1], now, ARGV[6])
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000) + 1000)
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], math.ceil(day_left) + 3600)
return '0'
"""


class RedisState(StateStore):
    """State in Redis, shared by every replica pointing at the same server.

    Keys live under ``vtf:``. Cache entries carry their own expiry time so a
    caller's clock decides freshness; Redis' own expiry only reclaims memory.
    """

    def __init__(self, url: str, prefix: str = "vtf:") -> None:
        import redis  # imported here so SQLite-only installs never need a Redis server

        self.prefix = prefix
        self._redis = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
        try:
            self._redis.ping()
        except redis.RedisError as exc:
            raise ConfigError(
                f"cannot reach Redis at {redact_url(url)} ({exc}); start Redis, fix VTF_REDIS_URL "
                "or leave it empty to keep state in the local SQLite file",
                key="vtf.redis_url",
            ) from exc
        self._quota = self._redis.register_script(_QUOTA_LUA)

    def cache_get(self, key: str, now: float) -> dict[str, Any] | None:
        raw = self._redis.get(f"{self.prefix}cache:{key}")
        if raw is None:
            return None
        entry = json.loads(raw)
        return entry["value"] if entry["expires_at"] > now else None

    def cache_set(self, key: str, value: dict[str, Any], ttl: float, now: float) -> None:
        entry = json.dumps({"value": value, "expires_at": now + ttl})
        self._redis.set(f"{self.prefix}cache:{key}", entry, px=max(1, int(ttl * 1000)))

    def kv_get(self, ns: str, key: str) -> Any | None:
        raw = self._redis.hget(f"{self.prefix}kv:{ns}", key)
        return None if raw is None else json.loads(raw)

    def kv_set(self, ns: str, key: str, value: Any) -> None:
        self._redis.hset(f"{self.prefix}kv:{ns}", key, json.dumps(value))

    def kv_delete(self, ns: str, key: str) -> None:
        self._redis.hdel(f"{self.prefix}kv:{ns}", key)

    def kv_items(self, ns: str) -> dict[str, Any]:
        raw = self._redis.hgetall(f"{self.prefix}kv:{ns}")
        return {k.decode(): json.loads(v) for k, v in raw.items()}

    def quota_try_acquire(
        self, bucket: str, now: float, per_minute: int, per_day: int, window: float = 60.0
    ) -> float:
        day = int(now // DAY)
        keys = [f"{self.prefix}quota:{bucket}:minute", f"{self.prefix}quota:{bucket}:day:{day}"]
        args = [repr(now), repr(window), per_minute, per_day, repr(seconds_until_utc_midnight(now)), uuid.uuid4().hex]
        return float(self._quota(keys=keys, args=args))

    def close(self) -> None:
        self._redis.close()


def redact_url(url: str) -> str:
    """The URL without its password, fit for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def open_state(state_dir: str, redis_url: str | None = None) -> StateStore:
    """Redis when ``redis_url`` is set, otherwise the SQLite file under ``state_dir``."""
    if redis_url:
        return RedisState(redis_url)
    try:
        os.makedirs(state_dir, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the state directory {state_dir!r} ({exc}); set VTF_STATE_DIR to a writable directory",
            key="vtf.state_dir",
        ) from exc
    return SQLiteState(os.path.join(state_dir, SQLITE_FILENAME))
