"""The VirusTotal side: one HTTP client with its quota limiter and response cache."""

from vtframework.vt.client import ClientConfig, ClientStats, Usage, VTClient, url_id
from vtframework.vt.quota import Clock, QuotaLimiter, QuotaTier, SystemClock

__all__ = [
    "ClientConfig", "ClientStats", "Clock", "QuotaLimiter", "QuotaTier", "SystemClock", "Usage", "VTClient", "url_id",
]
