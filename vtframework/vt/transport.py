"""The HTTP session under the client: pooled connections and a deadline per exchange.

A read timeout bounds each wait for a byte, not the whole answer: a server
that sends one byte every few seconds would keep a request open forever. A
:class:`Watch` bounds the whole exchange (connection, headers, body): when its
deadline passes it shuts the connection's socket down, so the blocked read
fails at once and the client reports a timeout. The pool tells the watch of
the current thread which connection it handed out, and takes it back from the
watch when the connection returns to the pool, so an expired watch can never
cut a connection another request is using.
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_current = threading.local()
#: How often an expired watch looks again for a socket still being connected.
_RETRY_CUT = 0.2


class _Watchdog:
    """One thread for every watch of the process: it sleeps until the earliest deadline.

    A thread per exchange would cost more than a local answer takes; a watch
    that closes in time is simply skipped when its deadline comes up.
    """

    def __init__(self) -> None:
        self._due: list[tuple[float, int, "Watch"]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, delay: float, watch: "Watch") -> None:
        with self._cond:
            heapq.heappush(self._due, (time.monotonic() + delay, next(self._order), watch))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="vtf-deadlines", daemon=True)
                self._thread.start()
            if self._due[0][2] is watch:
                self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._due and self._due[0][2].done:
                    heapq.heappop(self._due)
                if not self._due:
                    self._cond.wait()
                    continue
                wait = self._due[0][0] - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._due)[2]._expire()


_WATCHDOG = _Watchdog()


class Watch:
    """Cuts the connection of one exchange (on this thread) when ``seconds`` have passed."""

    def __init__(self, seconds: float, setting: str = "") -> None:
        self.seconds = seconds
        #: The setting that sets the deadline, for the message when it passes.
        self.setting = setting
        self.expired = False
        self._conn: Any = None
        self._done = False
        self._lock = threading.Lock()

    @property
    def done(self) -> bool:
        return self._done

    def __enter__(self) -> "Watch":
        self._previous = getattr(_current, "watch", None)
        _current.watch = self
        self._arm(self.seconds)
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._done = True
        if getattr(_current, "watch", None) is self:
            _current.watch = self._previous

    def attach(self, conn: Any) -> None:
        with self._lock:
            self._conn = conn

    def detach(self, conn: Any) -> None:
        with self._lock:
            if self._conn is conn:
                self._conn = None

    def _arm(self, seconds: float) -> None:
        _WATCHDOG.add(seconds, self)

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            sock = getattr(self._conn, "sock", None) if self._conn is not None else None
            if sock is None:
                # Still connecting (bounded by the connect timeout): look again shortly.
                self._arm(_RETRY_CUT)
                return
            try:
                # The plain socket's shutdown: an SSLSocket's would also drop its TLS state under the reader.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except (OSError, TypeError):
                pass


class _Tracked:
    """Pool mix-in: the current thread's watch learns which connection its exchange uses."""

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)  # type: ignore[misc]
        watch = getattr(_current, "watch", None)
        if watch is not None:
            watch.attach(conn)
        return conn

    def _put_conn(self, conn: Any) -> None:
        watch = getattr(_current, "watch", None)
        if watch is not None and conn is not None:
            watch.detach(conn)
        super()._put_conn(conn)  # type: ignore[misc]


class _HTTPPool(_Tracked, HTTPConnectionPool):
    pass


class _HTTPSPool(_Tracked, HTTPSConnectionPool):
    pass


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class WatchedAdapter(HTTPAdapter):
    """requests' adapter with the tracking pools (also behind an HTTP(S) proxy)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = dict(_POOLS)
        return manager


def new_session() -> requests.Session:
    session = requests.Session()
    # Enough pooled connections for a worker pool; urllib3 retries stay off, the client's apply.
    adapter = WatchedAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
