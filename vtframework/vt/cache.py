"""Response cache over the StateStore, with single-flight coalescing.

A cache hit costs no quota. Answers are kept ``ttl`` seconds, "not found" answers
``not_found_ttl`` (VirusTotal may learn the object soon); any other error is never
cached. Identical lookups in flight at the same time from several threads become
one request whose answer (or error) every caller receives.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable
from urllib.parse import urlencode

from vtframework.errors import NotFoundError, VTError, error_from_response
from vtframework.state import StateError, StateStore
from vtframework.vt.quota import Clock

log = logging.getLogger("vtframework.cache")

#: Checks an answer (raises when it is not what was asked for); a cached answer that fails is not reused.
Validator = Callable[[dict[str, Any]], None]


def cache_key(method: str, path: str, params: dict[str, Any] | None = None) -> str:
    query = urlencode(sorted((params or {}).items()), doseq=True)
    return f"{method} {path}" + (f"?{query}" if query else "")


class _Flight:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: dict[str, Any] | None = None
        self.error: BaseException | None = None


class ResponseCache:
    def __init__(self, state: StateStore, clock: Clock, ttl: float = 86400, not_found_ttl: float = 3600) -> None:
        self.state = state
        self.clock = clock
        self.ttl = ttl
        self.not_found_ttl = not_found_ttl
        self._flights: dict[str, _Flight] = {}
        self._lock = threading.Lock()
        self._warned = False

    def lookup(self, key: str, subject: str = "", validate: Validator | None = None) -> dict[str, Any] | None:
        """The cached answer, or None; a cached "not found" raises NotFoundError again.

        The cache is an optimisation: a state that cannot be read, an entry
        that is not what this version stores, or an answer ``validate``
        rejects counts as a miss.
        """
        try:
            entry = self.state.cache_get(key, self.clock.time())
        except StateError as exc:
            self._warn(exc)
            return None
        if not isinstance(entry, dict) or not isinstance(entry.get("body"), dict):
            return None
        # A TTL of 0 means "never reuse", even what a run with another setting left in a shared store.
        if (self.not_found_ttl if entry.get("status") == 404 else self.ttl) <= 0:
            return None
        if entry.get("status") == 404:
            raise error_from_response(404, entry.get("body"), subject)
        body = entry["body"]
        if validate is not None:
            try:
                validate(body)
            except VTError:
                return None
        return body

    def store(self, key: str, body: dict[str, Any]) -> None:
        if self.ttl > 0:
            self._set(key, {"status": 200, "body": body}, self.ttl)

    def store_not_found(self, key: str, err: NotFoundError) -> None:
        if self.not_found_ttl > 0:
            envelope = {"error": {"code": err.code or "NotFoundError", "message": err.vt_message}}
            self._set(key, {"status": 404, "body": envelope}, self.not_found_ttl)

    def _set(self, key: str, entry: dict[str, Any], ttl: float) -> None:
        # The answer was paid for: a state that cannot keep it costs the cache, never the answer.
        try:
            self.state.cache_set(key, entry, ttl, self.clock.time())
        except StateError as exc:
            self._warn(exc)

    def _warn(self, exc: StateError) -> None:
        with self._lock:
            first = not self._warned
            self._warned = True
        if first:
            log.warning("response cache unavailable, answers are not reused: %s", exc)

    def get_or_fetch(
        self, key: str, fetch: Callable[[], dict[str, Any]], subject: str = "", validate: Validator | None = None
    ) -> dict[str, Any]:
        """The answer from the cache, from an identical request already in flight, or from ``fetch``.

        Callers sharing a flight receive the same object; treat answers as read-only.
        """
        cached = self.lookup(key, subject, validate)
        if cached is not None:
            return cached
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if leader:
                flight = self._flights[key] = _Flight()
        assert flight is not None
        if not leader:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            assert flight.result is not None
            return flight.result
        try:
            flight.result = self._fetch_and_store(key, fetch, subject, validate)
            return flight.result
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()

    def _fetch_and_store(
        self, key: str, fetch: Callable[[], dict[str, Any]], subject: str, validate: Validator | None
    ) -> dict[str, Any]:
        # Another thread may have stored the answer between our miss and taking the lead.
        cached = self.lookup(key, subject, validate)
        if cached is not None:
            return cached
        try:
            body = fetch()
        except NotFoundError as err:
            self.store_not_found(key, err)
            raise
        self.store(key, body)
        return body
