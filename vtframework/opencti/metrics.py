"""Prometheus metrics of our own, beside pycti's (when CONNECTOR_EXPOSE_METRICS is on).

pycti serves the default registry on CONNECTOR_METRICS_PORT; counters
registered here appear there too. With metrics off every call is a no-op.
"""

from __future__ import annotations

from typing import Any


class Metrics:
    def __init__(self, enabled: bool, namespace: str = "vtframework") -> None:
        self.enabled = enabled
        self._last: dict[str, float] = {}
        if not enabled:
            return
        from prometheus_client import Counter

        self.vt_requests = Counter(f"{namespace}_virustotal_requests", "Requests sent to VirusTotal")
        self.cache_hits = Counter(f"{namespace}_cache_hits", "Lookups answered from the cache")
        self.quota_waits = Counter(f"{namespace}_quota_waits", "Times a request waited for quota")
        self.quota_wait_seconds = Counter(f"{namespace}_quota_wait_seconds", "Seconds spent waiting for quota")
        self.failures = Counter(f"{namespace}_failures", "Work that failed, by reason", ["reason"])

    def client_stats(self, stats: Any) -> None:
        """Add what the client did since the last call."""
        if not self.enabled:
            return
        for name, counter in (
            ("requests", self.vt_requests),
            ("cache_hits", self.cache_hits),
            ("quota_waits", self.quota_waits),
            ("quota_wait_seconds", self.quota_wait_seconds),
        ):
            value = float(getattr(stats, name))
            delta = value - self._last.get(name, 0.0)
            if delta > 0:
                counter.inc(delta)
            self._last[name] = value

    def failure(self, reason: str) -> None:
        if self.enabled:
            self.failures.labels(reason=reason).inc()
