"""State in one SQLite file under the state directory (the default)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import sqlite3
import threading
from typing import Any, Iterator

from vtframework.state.base import DAY, StateError, StateStore, seconds_until_utc_midnight

log = logging.getLogger("vtframework.state")

#: Schema version written into the file (``PRAGMA user_version``); 0 is a file from before versioning.
SCHEMA_VERSION = 1
#: Our tables and their columns, to recognise a file written by another program or version.
COLUMNS = {
    "cache": ("key", "value", "expires_at"),
    "kv": ("ns", "key", "value"),
    "quota_events": ("bucket", "ts"),
    "quota_days": ("bucket", "day", "count"),
}
#: SQLite's words for a file that is not (or no longer) a readable database.
_CORRUPT = ("file is not a database", "database disk image is malformed", "malformed database schema")
_WHAT_IT_HOLDS = "it holds the response cache, the quota counters and the Livehunt map (recoverable from VirusTotal)"


class SQLiteState(StateStore):
    """State in one SQLite file; safe across threads and across processes sharing it.

    Each thread gets its own connection (sqlite3 connections must not be shared
    while a transaction is open); WAL lets readers proceed while a writer holds
    the lock, and ``BEGIN IMMEDIATE`` takes the write lock before reading the
    quota so two processes cannot both grant the last slot.

    Opening checks the file: a corrupt or truncated one is set aside (renamed,
    never deleted) and a new one started, with a warning; one written by
    another program or a newer version, a read-only one, one on a full disk or
    one that cannot be opened raises :class:`StateError` naming the path,
    what is wrong and what to do. Later failures raise it too.
    """

    def __init__(self, path: str, busy_timeout: float = 30.0) -> None:
        self.path = path
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        #: Where a corrupt file was moved to, when it was.
        self.set_aside: str | None = None
        try:
            self._prepare()
        except sqlite3.DatabaseError as exc:
            if not _is_corrupt(exc):
                raise self._error(exc, "open") from None
            self.set_aside = self._move_aside()
            log.warning(
                "the state file %s is damaged (%s); it was set aside as %s and a new one started "
                "(the response cache starts empty)", path, exc, self.set_aside,
            )
            try:
                self._prepare()
            except sqlite3.Error as again:
                raise self._error(again, "open") from None
        except sqlite3.Error as exc:
            raise self._error(exc, "open") from None

    # -- opening ---------------------------------------------------------------------
    def _prepare(self) -> None:
        conn = self._conn()
        # Checked before creating anything: another program's file is left as it was.
        self._check_schema(conn)
        # IF NOT EXISTS makes this safe when several processes open the file at once.
        conn.executescript(_SCHEMA)
        # A write now, not after quota has been spent: a read-only file or a full disk shows here.
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO kv (ns, key, value) VALUES ('vtframework', 'opened', ?)",
                       (json.dumps(dt.datetime.now(dt.timezone.utc).isoformat()),))
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version < SCHEMA_VERSION:
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StateError(
                f"the state file {self.path} was written by a newer vtframework (schema {version}, this "
                f"version reads {SCHEMA_VERSION}); upgrade, or set VTF_STATE_DIR to another directory"
            )
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for table, expected in COLUMNS.items():
            found = tuple(row[1] for row in conn.execute(f"PRAGMA table_info({table})"))
            if found and found != expected:
                raise StateError(
                    f"the state file {self.path} was not written by vtframework: its table {table} has the "
                    f"columns {', '.join(found) or 'none'}, not {', '.join(expected)}; move it away or set "
                    "VTF_STATE_DIR to another directory"
                )
        foreign = sorted(t for t in tables - COLUMNS.keys() if not t.startswith("sqlite_"))
        if foreign and version != SCHEMA_VERSION:
            raise StateError(
                f"the state file {self.path} holds tables vtframework does not use ({', '.join(foreign[:5])}): "
                "it belongs to another program; move it away or set VTF_STATE_DIR to another directory"
            )

    def _move_aside(self) -> str:
        self.close()
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        aside = f"{self.path}.corrupt-{stamp}"
        try:
            os.replace(self.path, aside)
            for suffix in ("-wal", "-shm"):
                if os.path.exists(self.path + suffix):
                    os.replace(self.path + suffix, aside + suffix)
        except OSError as exc:
            raise StateError(
                f"the state file {self.path} is damaged and could not be set aside ({exc.strerror or exc}); "
                f"move it away by hand ({_WHAT_IT_HOLDS}) or set VTF_STATE_DIR to another directory"
            ) from None
        return aside

    def _error(self, exc: sqlite3.Error, doing: str) -> StateError:
        """What went wrong with the file, in words, and what to do about it."""
        text = str(exc)
        lowered = text.lower()
        if "readonly" in lowered or "read-only" in lowered or ("unable to open" in lowered and self._read_only()):
            return StateError(
                f"the state file {self.path} is read-only ({text}); make it and its directory writable or set "
                "VTF_STATE_DIR to a writable directory"
            )
        if "disk is full" in lowered or "disk i/o error" in lowered:
            return StateError(
                f"cannot {doing} the state file {self.path} ({text}: the disk may be full); free some space or "
                "set VTF_STATE_DIR to another disk"
            )
        if "unable to open" in lowered:
            return StateError(
                f"cannot open the state file {self.path} ({text}); check that VTF_STATE_DIR is a writable "
                "directory and that the file is not a directory"
            )
        if "locked" in lowered:
            return StateError(
                f"the state file {self.path} stayed locked by another process for {self._busy_timeout:g}s; "
                "retry, or give this process its own VTF_STATE_DIR"
            )
        if _is_corrupt(exc):
            return StateError(
                f"the state file {self.path} is damaged ({text}); move it away ({_WHAT_IT_HOLDS}) and it is "
                "rebuilt at the next start"
            )
        return StateError(f"cannot {doing} the state file {self.path} ({text}); move it away or set VTF_STATE_DIR")

    def _read_only(self) -> bool:
        """Is the state's directory on a read-only file system, or not writable by this process?"""
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            return bool(os.statvfs(directory).f_flag & os.ST_RDONLY) or not os.access(directory, os.W_OK)
        except OSError:
            return False

    @contextlib.contextmanager
    def _guarded(self, doing: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise self._error(exc, doing) from None

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
            )
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
            except sqlite3.Error:
                conn.close()
                raise
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def _tx(self) -> "_Transaction":
        return _Transaction(self._conn())

    # -- the store ---------------------------------------------------------------------
    def cache_get(self, key: str, now: float) -> dict[str, Any] | None:
        with self._guarded("read"):
            row = self._conn().execute(
                "SELECT value FROM cache WHERE key = ? AND expires_at > ?", (key, now)
            ).fetchone()
        return _loads(row[0]) if row else None

    def cache_set(self, key: str, value: dict[str, Any], ttl: float, now: float) -> None:
        with self._guarded("write"), self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO cache (key, value, expires_at) VALUES (?, ?, ?)",
                (key, json.dumps(value), now + ttl),
            )
            # Expired rows are never read again; drop them now and then so the file stays small.
            db.execute("DELETE FROM cache WHERE expires_at <= ? AND rowid % 64 = 0", (now,))

    def kv_get(self, ns: str, key: str) -> Any | None:
        with self._guarded("read"):
            row = self._conn().execute("SELECT value FROM kv WHERE ns = ? AND key = ?", (ns, key)).fetchone()
        return _loads(row[0]) if row else None

    def kv_set(self, ns: str, key: str, value: Any) -> None:
        with self._guarded("write"), self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO kv (ns, key, value) VALUES (?, ?, ?)", (ns, key, json.dumps(value))
            )

    def kv_delete(self, ns: str, key: str) -> None:
        with self._guarded("write"), self._tx() as db:
            db.execute("DELETE FROM kv WHERE ns = ? AND key = ?", (ns, key))

    def kv_items(self, ns: str) -> dict[str, Any]:
        with self._guarded("read"):
            rows = self._conn().execute("SELECT key, value FROM kv WHERE ns = ?", (ns,)).fetchall()
        return {k: v for k, v in ((k, _loads(v)) for k, v in rows) if v is not None}

    def quota_try_acquire(
        self, bucket: str, now: float, per_minute: int, per_day: int, window: float = 60.0
    ) -> float:
        day = int(now // DAY)
        with self._guarded("write the quota counters to"), self._tx() as db:
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


def _is_corrupt(exc: BaseException) -> bool:
    return any(words in str(exc).lower() for words in _CORRUPT)


def _loads(text: str) -> Any | None:
    """A stored JSON value; None for one this version cannot read (it is then as good as absent)."""
    try:
        return json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return None


class _Transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the error being raised says more than a failed rollback
        else:
            try:
                self.conn.execute("COMMIT")
            except sqlite3.Error:
                # A failed COMMIT (a full disk) leaves the transaction open; the next one must start clean.
                with contextlib.suppress(sqlite3.Error):
                    self.conn.execute("ROLLBACK")
                raise


_SCHEMA = """
CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS kv (ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (ns, key));
CREATE TABLE IF NOT EXISTS quota_events (bucket TEXT NOT NULL, ts REAL NOT NULL);
CREATE INDEX IF NOT EXISTS quota_events_bucket_ts ON quota_events (bucket, ts);
CREATE TABLE IF NOT EXISTS quota_days (
    bucket TEXT NOT NULL, day INTEGER NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (bucket, day)
);
"""
