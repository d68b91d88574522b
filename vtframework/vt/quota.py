"""Client-side quota: take a slot before every request VirusTotal will count.

The limiter lets requests through while the sliding window has allowance and waits
only once it is spent; it never paces requests evenly. The counts live in the
StateStore, so threads, processes sharing the SQLite file and replicas sharing
Redis all draw from one allowance.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from vtframework.errors import QuotaExceededError, format_duration
from vtframework.state import StateStore

log = logging.getLogger(__name__)

#: What a public (free) key is allowed.
PUBLIC_PER_MINUTE = 4
PUBLIC_PER_DAY = 500


class Clock(Protocol):
    def time(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """Wall-clock time; the quota windows are shared between hosts, so monotonic time won't do."""

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def hold_margin(window: float) -> float:
    """Extra time a slot is held past the window.

    VirusTotal counts a request when it arrives, we when we send it; without a
    margin a request sent exactly one window later can reach VirusTotal a little
    before the earlier one left its window and draw a 429.
    """
    return min(1.0, window * 0.05)


class QuotaLimiter:
    """Blocks until the shared store grants a request slot, or raises QuotaExceededError."""

    def __init__(
        self,
        state: StateStore,
        per_minute: int = PUBLIC_PER_MINUTE,
        per_day: int = PUBLIC_PER_DAY,
        clock: Clock | None = None,
        max_wait: float = 120.0,
        bucket: str = "default",
        window: float = 60.0,
    ) -> None:
        self.state = state
        self.per_minute = per_minute
        self.per_day = per_day
        self.clock = clock or SystemClock()
        self.max_wait = max_wait
        self.bucket = bucket
        self.window = window
        self._lock = threading.Lock()
        self._waits = 0
        self._waited = 0.0

    def set_limits(self, per_minute: int, per_day: int) -> None:
        self.per_minute, self.per_day = per_minute, per_day

    @property
    def waits(self) -> int:
        """How many times a request had to wait for a slot."""
        return self._waits

    @property
    def waited_seconds(self) -> float:
        return self._waited

    def record_wait(self, seconds: float) -> None:
        with self._lock:
            self._waits += 1
            self._waited += seconds

    def acquire(self, subject: str = "") -> float:
        """Take a slot, sleeping while the window is spent; returns the seconds waited."""
        held = self.window + hold_margin(self.window)
        waited = 0.0
        while True:
            wait = self.state.quota_try_acquire(
                self.bucket, self.clock.time(), self.per_minute, self.per_day, held
            )
            if wait <= 0:
                return waited
            if wait > held:
                raise self._day_spent(wait, subject)
            if waited + wait > self.max_wait:
                raise self._minute_spent(wait, waited, subject)
            self.clock.sleep(wait)
            self.record_wait(wait)
            waited += wait

    def _day_spent(self, wait: float, subject: str) -> QuotaExceededError:
        return QuotaExceededError(
            code="QuotaExceededError",
            subject=subject,
            window="day",
            retry_after=wait,
            summary=f"VirusTotal daily quota ({self.per_day} requests) is exhausted",
            hint=f"it resets at 00:00 UTC (in {format_duration(wait)})",
        )

    def _minute_spent(self, wait: float, waited: float, subject: str) -> QuotaExceededError:
        # Rounded up: "frees in 2m00s, more than the allowed 2m00s" would contradict itself.
        frees = format_duration(math.ceil(wait))
        if waited > 0:
            left = max(0.0, self.max_wait - waited)
            why = (
                f"the next slot frees in {frees}, but after {format_duration(waited)} of waiting only "
                f"{format_duration(math.floor(left))} of the allowed quota wait ({format_duration(self.max_wait)}) is left"
            )
        else:
            why = f"the next slot frees in {frees}, more than the allowed quota wait of {format_duration(self.max_wait)}"
        return QuotaExceededError(
            code="QuotaExceededError",
            subject=subject,
            window="minute",
            retry_after=wait,
            summary=f"VirusTotal per-minute quota ({self.per_minute} requests) is spent",
            hint=f"{why}; raise the allowed wait or lower the number of workers",
        )


@dataclass(frozen=True)
class QuotaTier:
    """The limits to apply and where they came from."""

    per_minute: int
    per_day: int
    #: ``"public"``, ``"premium"`` or ``"configured"`` (detection failed).
    tier: str
    detected: bool
    reason: str = ""


def _allowed(data: dict[str, Any], name: str) -> int | None:
    """The smallest positive ``allowed`` across the user's and its group's quota."""
    entry = data.get(name)
    if not isinstance(entry, dict):
        return None
    values = []
    for scope in ("user", "group"):
        allowed = (entry.get(scope) or {}).get("allowed")
        if isinstance(allowed, (int, float)) and allowed > 0:
            values.append(int(allowed))
    return min(values) if values else None


def tier_from_quotas(data: dict[str, Any], per_minute: int, per_day: int) -> QuotaTier:
    """Turn the ``data`` of an overall_quotas answer into limits; missing ones keep the configured value."""
    daily = _allowed(data, "api_requests_daily")
    minute = _allowed(data, "api_requests_minute")
    hourly = _allowed(data, "api_requests_hourly")
    if minute is None and hourly is not None:
        # Public keys report no minute figure, only 240 an hour: the same 4 a minute.
        minute = max(1, hourly // 60)
    if daily is None and minute is None:
        return QuotaTier(per_minute, per_day, "configured", False, "the answer holds no request quotas")
    minute = minute or per_minute
    daily = daily or per_day
    tier = "public" if (minute, daily) == (PUBLIC_PER_MINUTE, PUBLIC_PER_DAY) else "premium"
    return QuotaTier(minute, daily, tier, True)
