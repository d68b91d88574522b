"""A clock for tests: sleeping advances time at once and is recorded."""

from __future__ import annotations

import threading


class FakeClock:
    """Implements :class:`vtframework.quota.Clock` without ever sleeping for real."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        #: Every ``sleep`` call's argument, in order.
        self.sleeps: list[float] = []

    def time(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self._now += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        """Let time pass without recording a sleep (the world moving on between runs)."""
        with self._lock:
            self._now += seconds
