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
        from prometheus_client import Gauge

        self.stream_parked_events = Counter(
            f"{namespace}_stream_parked", "Stream events parked to be tried again, by reason", ["reason"]
        )
        self.stream_quota_waits = Counter(
            f"{namespace}_stream_quota_waits", "Times the stream worker paused until the quota freed"
        )
        self.stream_quota_wait_seconds = Counter(
            f"{namespace}_stream_quota_wait_seconds", "Seconds the stream worker paused until the quota freed"
        )
        self.stream_reconnects = Counter(f"{namespace}_stream_reconnects", "Reconnections to the live stream")
        self.stream_reconnect_failures = Counter(
            f"{namespace}_stream_reconnect_failures", "Attempts to reconnect to the live stream that failed"
        )
        self.stream_queue = Gauge(f"{namespace}_stream_queued", "Stream events waiting in the queue")

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

    # -- the stream connector ------------------------------------------------------
    def stream_parked(self, reason: str) -> None:
        if self.enabled:
            self.stream_parked_events.labels(reason=reason).inc()

    def stream_quota_wait(self, seconds: float) -> None:
        if self.enabled:
            self.stream_quota_waits.inc()
            self.stream_quota_wait_seconds.inc(max(0.0, seconds))

    def stream_reconnect(self) -> None:
        if self.enabled:
            self.stream_reconnects.inc()

    def stream_reconnect_failure(self) -> None:
        if self.enabled:
            self.stream_reconnect_failures.inc()

    def stream_queued(self, count: int) -> None:
        if self.enabled:
            self.stream_queue.set(count)


class QueueMetrics:
    """The message runtime's metrics (enrichment and downloader connectors): all no-ops when off.

    :param registry: where the metrics are registered (default: prometheus_client's, which pycti serves).
    """

    def __init__(self, enabled: bool, namespace: str = "vtframework", registry: Any = None) -> None:
        self.enabled = enabled
        if not enabled:
            return
        from prometheus_client import REGISTRY, Counter, Gauge

        where = {"registry": registry if registry is not None else REGISTRY}
        self.in_flight = Gauge(f"{namespace}_queue_messages_in_flight",
                               "Messages taken from the queue whose work is not reported yet", **where)
        self.retried_total = Counter(f"{namespace}_queue_messages_retried",
                                     "Messages processed again: redelivered, or put back while a system was down", **where)
        self.duplicates = Counter(f"{namespace}_queue_messages_duplicate",
                                  "Redelivered messages whose work was already reported (acknowledged, not redone)",
                                  **where)
        self.lost_total = Counter(f"{namespace}_queue_messages_lost",
                                  "Messages dropped without an outcome (not an OpenCTI request at all)", **where)
        self.waits = Counter(f"{namespace}_platform_waits",
                             "Pauses waiting for an unavailable system to answer again", ["system"], **where)

    def _inc(self, metric: str) -> None:
        if self.enabled:
            getattr(self, metric).inc()

    def taken(self) -> None:
        self._inc("in_flight")

    def settled(self) -> None:
        if self.enabled:
            self.in_flight.dec()

    def retried(self) -> None:
        self._inc("retried_total")

    def duplicate(self) -> None:
        self._inc("duplicates")

    def lost(self) -> None:
        self._inc("lost_total")

    def waited(self, system: str) -> None:
        if self.enabled:
            self.waits.labels(system=system).inc()
