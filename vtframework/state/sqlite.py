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

from vtframework.state.base import (
    DAY,
    DEFAULT_CACHE_MAX_BYTES,
    StateError,
    StateStore,
    pack_value,
    seconds_until_utc_midnight,
    unpack_value,
)

log = logging.getLogger("vtframework.state")

#: Schema version written into the file (``PRAGMA user_version``); 0 is a file from before versioning.
#: 2 added the cache's last use, its sizes and their running sum (a file of 0 or 1 is migrated on open).
SCHEMA_VERSION = 2
#: Our tables and their columns, to recognise a file written by another program or version.
COLUMNS = {
    "cache": ("key", "value", "expires_at", "used_at", "size"),
    "kv": ("ns", "key", "value"),
    "quota_events": ("bucket", "ts"),
    "quota_days": ("bucket", "day", "count"),
    "cache_size": ("id", "bytes"),
}
#: The cache's columns in files of schema 0 and 1, which are migrated.
_OLD_CACHE_COLUMNS = ("key", "value", "expires_at")
#: What a row costs besides its value: its key twice (the table and its index), the two other
#: indexes and SQLite's own bookkeeping. An estimate, so that many small rows count too.
_ROW_OVERHEAD = 64
#: Expired entries removed per write: more than one, so expired entries never pile up.
_EXPIRED_PER_WRITE = 16
#: Most least recently used entries read at a time while the cache is over its cap.
_EVICT_BATCH = 256
#: A read records its time as the entry's last use only when the last record is older than this
#: (seconds): most reads stay reads, and the order of eviction is exact to the minute.
TOUCH_EVERY = 60.0
#: Reads whose last uses are recorded together (with the next write at the latest).
_TOUCH_BATCH = 64
#: SQLite's words for a file that is not (or no longer) a readable database.
_CORRUPT = ("file is not a database", "database disk image is malformed", "malformed database schema")
_WHAT_IT_HOLDS = "it holds the response cache, the quota counters and the Livehunt map (recoverable from VirusTotal)"


class SQLiteState(StateStore):
    """State in one SQLite file; safe across threads and across processes sharing it.

    One connection per store (per process), shared by its threads under a lock:
    the open files stay three (the file, its WAL and shared memory) however
    many threads come and go. WAL lets other processes read while one writes,
    and ``BEGIN IMMEDIATE`` takes the write lock before reading the quota so
    two processes cannot both grant the last slot.

    The response cache is bounded: each write removes a few expired entries
    (by an index on their expiry time) and, while the cache holds more than
    ``cache_max_bytes``, the least recently used ones (reads note their use,
    written with the next write or after 64 reads). The size is a running
    sum kept by triggers, so no write counts the whole table. Large values are
    stored compressed.

    Opening checks the file: a corrupt or truncated one is set aside (renamed,
    never deleted) and a new one started, with a warning; one written by
    another program or a newer version, a read-only one, one on a full disk or
    one that cannot be opened raises :class:`StateError` naming the path,
    what is wrong and what to do. Later failures raise it too.
    """

    def __init__(
        self, path: str, busy_timeout: float = 30.0, cache_max_bytes: int = DEFAULT_CACHE_MAX_BYTES
    ) -> None:
        if cache_max_bytes < 1:
            raise ValueError(f"cache_max_bytes must be positive, not {cache_max_bytes}")
        self.path = path
        self.cache_max_bytes = cache_max_bytes
        self._busy_timeout = busy_timeout
        self._db: sqlite3.Connection | None = None
        self._pid = os.getpid()
        #: Last uses that reads noted and the next write records (key: time); at most _TOUCH_BATCH.
        self._touched: dict[str, float] = {}
        # Reentrant: a transaction runs its statements while holding it.
        self._lock = threading.RLock()
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
        with self._lock:
            # Checked before creating anything: another program's file is left as it was.
            self._check_schema(self._conn())
            # A write now, not after quota has been spent: a read-only file or a full disk shows here.
            # One transaction, and IF NOT EXISTS: safe when several processes open (or migrate) the file at once.
            with self._tx() as db:
                if _columns(db, "cache") == _OLD_CACHE_COLUMNS:
                    self._migrate_cache(db)
                for statement in _SCHEMA:
                    db.execute(statement)
                db.execute("INSERT OR REPLACE INTO kv (ns, key, value) VALUES ('vtframework', 'opened', ?)",
                           (json.dumps(dt.datetime.now(dt.timezone.utc).isoformat()),))
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version < SCHEMA_VERSION:
                    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _migrate_cache(self, db: sqlite3.Connection) -> None:
        """Give a cache from schema 0 or 1 its new columns; its entries stay readable as they are."""
        db.execute("ALTER TABLE cache ADD COLUMN used_at REAL NOT NULL DEFAULT 0")
        db.execute("ALTER TABLE cache ADD COLUMN size INTEGER NOT NULL DEFAULT 0")
        db.execute(f"UPDATE cache SET size = {_SIZE_SQL.format(key='key', value='value')}")
        count = db.execute("SELECT COUNT(*) FROM cache").fetchone()[0]
        log.info("the state file %s was migrated to schema %d (%d cached answers kept)",
                 self.path, SCHEMA_VERSION, count)

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StateError(
                f"the state file {self.path} was written by a newer vtframework (schema {version}, this "
                f"version reads {SCHEMA_VERSION}); upgrade, or set VTF_STATE_DIR to another directory"
            )
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for table, expected in COLUMNS.items():
            found = _columns(conn, table)
            if table == "cache" and found == _OLD_CACHE_COLUMNS and version < SCHEMA_VERSION:
                continue  # an older cache, migrated next
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
        self._drop_connection()
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
        """The store's one connection (opened on first use); call with ``self._lock`` held."""
        if self._db is not None and self._pid != os.getpid():
            # A forked child must not use its parent's connection (nor close it: that would
            # release the parent's locks); it opens its own.
            self._db, self._pid = None, os.getpid()
        if self._db is None:
            conn = sqlite3.connect(
                self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
            )
            try:
                # For a new file only (an existing one keeps its pages): a compressed answer (about
                # 2 KB) fills a 4 KB page alone, three share an 8 KB one; the file takes ~1.3x the cache.
                conn.execute(f"PRAGMA page_size = {_PAGE_SIZE}")
                conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                # The WAL is emptied at each checkpoint; this keeps the file from staying at its largest.
                conn.execute(f"PRAGMA journal_size_limit = {_WAL_LIMIT}")
            except sqlite3.Error:
                conn.close()
                raise
            self._db = conn
        return self._db

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, holding the store's lock until it ends."""
        with self._lock, _Transaction(self._conn()) as db:
            yield db

    @contextlib.contextmanager
    def _read(self, doing: str = "read") -> Iterator[sqlite3.Connection]:
        with self._guarded(doing), self._lock:
            yield self._conn()

    # -- the store ---------------------------------------------------------------------
    def cache_get(self, key: str, now: float) -> dict[str, Any] | None:
        with self._read() as db:
            row = db.execute(
                "SELECT value, used_at FROM cache WHERE key = ? AND expires_at > ?", (key, now)
            ).fetchone()
            if row is None:
                return None
            if row[1] < now - TOUCH_EVERY:
                # Recorded with the next write (or a batch of reads): one commit for many reads.
                self._touched[key] = now
                if len(self._touched) >= _TOUCH_BATCH:
                    with _Transaction(db):
                        self._record_touches(db)
        return unpack_value(row[0])

    def _record_touches(self, db: sqlite3.Connection) -> None:
        """Write the last uses reads noted; call inside a write transaction."""
        touched, self._touched = self._touched, {}
        if touched:
            db.executemany(
                "UPDATE cache SET used_at = MAX(used_at, ?) WHERE key = ?",
                [(when, key) for key, when in touched.items()],
            )

    def cache_set(self, key: str, value: dict[str, Any], ttl: float, now: float) -> None:
        stored = pack_value(value)
        size = _size(key, stored)
        with self._guarded("write"), self._tx() as db:
            if size > self.cache_max_bytes:
                # Larger than the whole cache: keeping it would evict everything else.
                db.execute("DELETE FROM cache WHERE key = ?", (key,))
                log.debug("an answer of %d bytes is not cached: the cache is capped at %d bytes",
                          size, self.cache_max_bytes)
                return
            self._record_touches(db)
            db.execute(
                "INSERT INTO cache (key, value, expires_at, used_at, size) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at, "
                "used_at = excluded.used_at, size = excluded.size",
                (key, stored, now + ttl, now, size),
            )
            # Expired entries are never read again: a few go at each write, oldest first, by the index.
            db.execute(
                "DELETE FROM cache WHERE rowid IN "
                "(SELECT rowid FROM cache WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)",
                (now, _EXPIRED_PER_WRITE),
            )
            self._evict(db, keep=key)

    def _evict(self, db: sqlite3.Connection, keep: str) -> None:
        """Remove the least recently used entries (never ``keep``) until the cache is within its cap."""
        # Of the oldest entries (read by the index, at most _EVICT_BATCH at a time), just those whose
        # sizes add up to the excess: a full cache loses one entry per new one, a lowered cap its excess.
        batch = 8  # enough for one new entry in a full cache; a larger excess reads more at a time
        while (excess := _cache_size(db) - self.cache_max_bytes) > 0:
            removed = db.execute(_EVICT_SQL, (keep, batch, excess)).rowcount
            if not removed:
                return
            batch = _EVICT_BATCH

    def cache_bytes(self) -> int:
        """What the cached entries take, as counted against the cap."""
        with self._guarded("read"), self._tx() as db:
            return _cache_size(db)

    def kv_get(self, ns: str, key: str) -> Any | None:
        with self._read() as db:
            row = db.execute("SELECT value FROM kv WHERE ns = ? AND key = ?", (ns, key)).fetchone()
        return unpack_value(row[0]) if row else None

    def kv_set(self, ns: str, key: str, value: Any) -> None:
        with self._guarded("write"), self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO kv (ns, key, value) VALUES (?, ?, ?)", (ns, key, json.dumps(value))
            )

    def kv_delete(self, ns: str, key: str) -> None:
        with self._guarded("write"), self._tx() as db:
            db.execute("DELETE FROM kv WHERE ns = ? AND key = ?", (ns, key))

    def kv_items(self, ns: str) -> dict[str, Any]:
        with self._read() as db:
            rows = db.execute("SELECT key, value FROM kv WHERE ns = ?", (ns,)).fetchall()
        return {k: v for k, v in ((k, unpack_value(v)) for k, v in rows) if v is not None}

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
        """Record the last uses reads noted and close the connection; a later use opens a new one."""
        with self._lock:
            if self._touched and self._db is not None and self._pid == os.getpid():
                # Only the order of eviction depends on them: a failure here loses nothing else.
                with contextlib.suppress(sqlite3.Error), _Transaction(self._db) as db:
                    self._record_touches(db)
            self._touched = {}
        self._drop_connection()

    def _drop_connection(self) -> None:
        with self._lock:
            conn, self._db = self._db, None
            if conn is not None and self._pid == os.getpid():
                conn.close()


def _is_corrupt(exc: BaseException) -> bool:
    return any(words in str(exc).lower() for words in _CORRUPT)


def _columns(conn: sqlite3.Connection, table: str) -> tuple[str, ...]:
    return tuple(row[1] for row in conn.execute(f"PRAGMA table_info({table})"))


def _cache_size(db: sqlite3.Connection) -> int:
    """The running size of the cache; call inside a write transaction."""
    row = db.execute("SELECT bytes FROM cache_size WHERE id = 0").fetchone()
    if row is None:  # the row was deleted behind our back: count once more
        db.execute(_COUNT_CACHE_SIZE)
        row = db.execute("SELECT bytes FROM cache_size WHERE id = 0").fetchone()
    return int(row[0])


def _size(key: str, stored: str | bytes) -> int:
    """What an entry counts against the cap (as :data:`_SIZE_SQL` computes it in the file)."""
    raw = stored.encode("utf-8") if isinstance(stored, str) else stored
    return 2 * len(key.encode("utf-8")) + len(raw) + _ROW_OVERHEAD


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


#: Page size of new state files, in bytes.
_PAGE_SIZE = 8192
#: Largest WAL file kept after a checkpoint, in bytes.
_WAL_LIMIT = 16 << 20
#: :func:`_size` in SQL, for the rows a migration finds.
_SIZE_SQL = f"2 * length(CAST({{key}} AS BLOB)) + length(CAST({{value}} AS BLOB)) + {_ROW_OVERHEAD}"

_EVICT_SQL = (
    "DELETE FROM cache WHERE rowid IN (SELECT id FROM ("
    " SELECT id, size, SUM(size) OVER (ORDER BY used_at, id) AS upto FROM ("
    "  SELECT rowid AS id, size, used_at FROM cache WHERE key != ? ORDER BY used_at LIMIT ?))"
    " WHERE upto - size < ?)"
)
_COUNT_CACHE_SIZE = "INSERT OR IGNORE INTO cache_size (id, bytes) SELECT 0, COALESCE(SUM(size), 0) FROM cache"

# A value is JSON text, or zlib-compressed JSON in a BLOB (SQLite keeps either in any column).
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at REAL NOT NULL, "
    "used_at REAL NOT NULL DEFAULT 0, size INTEGER NOT NULL DEFAULT 0)",
    "CREATE INDEX IF NOT EXISTS cache_expires_at ON cache (expires_at)",
    "CREATE INDEX IF NOT EXISTS cache_used_at ON cache (used_at)",
    # The running size of the cache, kept by triggers so that it can never drift from the rows.
    "CREATE TABLE IF NOT EXISTS cache_size (id INTEGER PRIMARY KEY CHECK (id = 0), bytes INTEGER NOT NULL)",
    _COUNT_CACHE_SIZE,
    "CREATE TRIGGER IF NOT EXISTS cache_size_insert AFTER INSERT ON cache "
    "BEGIN UPDATE cache_size SET bytes = bytes + NEW.size WHERE id = 0; END",
    "CREATE TRIGGER IF NOT EXISTS cache_size_update AFTER UPDATE OF size ON cache "
    "BEGIN UPDATE cache_size SET bytes = bytes - OLD.size + NEW.size WHERE id = 0; END",
    "CREATE TRIGGER IF NOT EXISTS cache_size_delete AFTER DELETE ON cache "
    "BEGIN UPDATE cache_size SET bytes = bytes - OLD.size WHERE id = 0; END",
    "CREATE TABLE IF NOT EXISTS kv (ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (ns, key))",
    "CREATE TABLE IF NOT EXISTS quota_events (bucket TEXT NOT NULL, ts REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS quota_events_bucket_ts ON quota_events (bucket, ts)",
    "CREATE TABLE IF NOT EXISTS quota_days ("
    "bucket TEXT NOT NULL, day INTEGER NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (bucket, day))",
)
