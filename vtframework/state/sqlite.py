"""State in one SQLite file under the state directory (the default)."""

from __future__ import annotations

import json
import sqlite3
import threading
from typing import Any

from vtframework.state.base import DAY, StateStore, seconds_until_utc_midnight


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
