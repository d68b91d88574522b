"""The one VirusTotal HTTP client every plugin goes through.

It owns the API key, timeouts, retries with backoff, the shared quota, the
response cache and the mapping of every failure to a typed error. It never
reports success for an answer it did not get.
"""

from __future__ import annotations

import base64
import hashlib
import json as jsonlib
import logging
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import IO, Any, Mapping
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

from vtframework.errors import (
    AnalysisPending,
    AuthenticationError,
    ConnectionFailed,
    DownloadTooLarge,
    MalformedResponse,
    QuotaExceededError,
    RequestTimeout,
    TooManyRequestsError,
    TransientError,
    VTError,
    error_from_response,
)
from vtframework.state import StateStore, seconds_until_utc_midnight
from vtframework.vt.cache import ResponseCache, cache_key
from vtframework.vt.quota import Clock, QuotaLimiter, QuotaTier, SystemClock, hold_margin, tier_from_quotas

DEFAULT_BASE_URL = "https://www.virustotal.com/api/v3"


def url_id(url: str) -> str:
    """VirusTotal's identifier for a URL: unpadded URL-safe base64 of the URL."""
    return base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


@dataclass(frozen=True)
class ClientConfig:
    api_key: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_retries: int = 5
    #: Total seconds a request may spend retrying before its error is raised.
    retry_budget: float = 300.0
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    #: Longest a request may wait for a quota slot before QuotaExceededError.
    max_quota_wait: float = 120.0
    requests_per_minute: int = 4
    requests_per_day: int = 500
    cache_ttl: int = 86400
    not_found_ttl: int = 3600
    #: Sent as the ``x-tool`` header.
    tool: str = "vtframework"
    detect_quota: bool = True
    #: Named in the message when VirusTotal rejects the key.
    key_setting: str = "VIRUSTOTAL_TOKEN"
    #: Length of the "minute" quota window; only tests and benchmarks shorten it.
    quota_window: float = 60.0


class Usage:
    """Requests and cache hits made by one thread while it is active (see :meth:`VTClient.track`)."""

    def __init__(self, client: "VTClient") -> None:
        self._client = client
        self.requests = 0
        self.cache_hits = 0

    def __enter__(self) -> "Usage":
        self._client._trackers().append(self)
        return self

    def __exit__(self, *_: Any) -> None:
        self._client._trackers().remove(self)


@dataclass(frozen=True)
class ClientStats:
    """Counters for metrics; a snapshot taken by :attr:`VTClient.stats`."""

    requests: int
    cache_hits: int
    retries: int
    quota_waits: int
    quota_wait_seconds: float
    errors: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "cache_hits": self.cache_hits,
            "retries": self.retries,
            "quota_waits": self.quota_waits,
            "quota_wait_seconds": self.quota_wait_seconds,
            "errors": dict(self.errors),
        }


class VTClient:
    """Talks to VirusTotal for every plugin; thread-safe, one instance per API key.

    Call :meth:`start` once before use to adopt the key's real quota.
    """

    def __init__(
        self,
        config: ClientConfig,
        state: StateStore,
        clock: Clock | None = None,
        session: requests.Session | None = None,
        logger: logging.Logger | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.log = logger or logging.getLogger("vtframework.client")
        self._rng = rng or random.Random()
        self._own_session = session is None
        self._session = session or _new_session()
        self._origin = _origin(config.base_url)
        # The bucket is per key (two keys have two quotas) but never stores the key itself.
        bucket = "key-" + hashlib.sha256(config.api_key.encode()).hexdigest()[:16]
        self.limiter = QuotaLimiter(
            state,
            per_minute=config.requests_per_minute,
            per_day=config.requests_per_day,
            clock=self.clock,
            max_wait=config.max_quota_wait,
            bucket=bucket,
            window=config.quota_window,
        )
        self.cache = ResponseCache(state, self.clock, config.cache_ttl, config.not_found_ttl)
        self._lock = threading.Lock()
        self._requests = 0
        self._retries = 0
        self._cache_hits = 0
        self._errors: Counter[str] = Counter()
        self._local = threading.local()

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> QuotaTier:
        """Adopt the key's real per-minute and per-day limits when ``detect_quota`` is on."""
        cfg = self.config
        if cfg.detect_quota:
            tier = self.detect_tier()
        else:
            tier = QuotaTier(cfg.requests_per_minute, cfg.requests_per_day, "configured", False, "detection is off")
        self.limiter.set_limits(tier.per_minute, tier.per_day)
        if tier.detected:
            self.log.info(
                "VirusTotal %s key detected: %d requests a minute, %d a day",
                tier.tier, tier.per_minute, tier.per_day,
            )
        elif not cfg.detect_quota:
            self.log.debug("using the configured quota: %d requests a minute, %d a day", tier.per_minute, tier.per_day)
        else:
            self.log.warning(
                "could not read the VirusTotal key's quota (%s); keeping the configured %d a minute, %d a day",
                self._redact(tier.reason), tier.per_minute, tier.per_day,
            )
        return tier

    def detect_tier(self) -> QuotaTier:
        """Read the key's own quotas from ``/users/{key}/overall_quotas``.

        VirusTotal accepts the API key as the user id there. A public key reports
        500 a day (and 240 an hour, i.e. 4 a minute); anything else is premium. When
        the call fails for any reason but a rejected key, the configured limits stay.
        """
        cfg = self.config
        try:
            answer = self.get(f"/users/{cfg.api_key}/overall_quotas", subject="quota of the API key", cache=False)
            return tier_from_quotas(answer.get("data") or {}, cfg.requests_per_minute, cfg.requests_per_day)
        except AuthenticationError:
            raise
        except VTError as exc:
            return QuotaTier(cfg.requests_per_minute, cfg.requests_per_day, "configured", False, str(exc))

    def close(self) -> None:
        if self._own_session:
            self._session.close()

    def __enter__(self) -> "VTClient":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    @property
    def stats(self) -> ClientStats:
        with self._lock:
            return ClientStats(
                requests=self._requests,
                cache_hits=self._cache_hits,
                retries=self._retries,
                quota_waits=self.limiter.waits,
                quota_wait_seconds=self.limiter.waited_seconds,
                errors=dict(self._errors),
            )

    def track(self) -> Usage:
        """A context manager counting this thread's requests and cache hits, e.g. per enrichment."""
        return Usage(self)

    def _trackers(self) -> list[Usage]:
        if not hasattr(self._local, "trackers"):
            self._local.trackers = []
        return self._local.trackers

    def _count(self, requests: int = 0, cache_hits: int = 0) -> None:
        with self._lock:
            self._requests += requests
            self._cache_hits += cache_hits
        for usage in self._trackers():
            usage.requests += requests
            usage.cache_hits += cache_hits

    # -- public requests -----------------------------------------------------------
    def get(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        subject: str = "",
        cache: bool | str = True,
        privilege: str | None = None,
    ) -> dict[str, Any]:
        """GET an API path (``/files/<hash>``) and return the parsed JSON envelope.

        ``cache=True`` reuses a cached answer and caches a fresh one;
        ``cache="refresh"`` always asks VirusTotal and caches the fresh answer
        (re-reading a report after a submission replaces a cached "not
        found"); ``cache=False`` neither reads nor writes the cache (polling,
        listings).
        """

        fetched = False

        def fetch() -> dict[str, Any]:
            nonlocal fetched
            fetched = True
            resp = self._request("GET", path, subject=subject, privilege=privilege, params=params)
            return self._envelope(resp, subject)

        # The base URL is part of the key: answers of another endpoint (a proxy, a test server) never mix.
        key = cache_key("GET", self._url(path), dict(params or {}))
        with self._counting_errors():
            if cache == "refresh":
                answer = fetch()
                self.cache.store(key, answer)
                return answer
            if not cache:
                return fetch()
            try:
                return self.cache.get_or_fetch(key, fetch, subject)
            finally:
                # Answered from the cache, a cached "not found" or another thread's identical request.
                if not fetched:
                    self._count(cache_hits=1)

    def post(
        self,
        path: str,
        *,
        json: Any = None,
        data: Any = None,
        files: Any = None,
        subject: str = "",
        privilege: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        with self._counting_errors():
            resp = self._request(
                "POST", path, subject=subject, privilege=privilege, headers=headers,
                json=json, data=data, files=files,
            )
            # Some endpoints (adding ruleset editors) answer a bare 2xx.
            if not resp.content.strip():
                return {}
            return self._envelope(resp, subject)

    def patch(
        self, path: str, *, json: Any, subject: str = "", privilege: str | None = None
    ) -> dict[str, Any]:
        with self._counting_errors():
            resp = self._request("PATCH", path, subject=subject, privilege=privilege, json=json)
            return self._envelope(resp, subject)

    def delete(
        self,
        path: str,
        *,
        subject: str = "",
        privilege: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any] | None:
        """DELETE; returns the answer's JSON, or None when VirusTotal answered with no body."""
        with self._counting_errors():
            resp = self._request("DELETE", path, subject=subject, privilege=privilege, headers=headers)
            if not resp.content.strip():
                return None
            return self._envelope(resp, subject, need_data=False)

    def wait_for_analysis(self, analysis_id: str, *, subject: str = "", attempts: int, interval: float) -> dict:
        """Poll ``/analyses/{id}`` (the answer to an upload or a submission) until it is completed.

        At most ``attempts`` reads, ``interval`` seconds apart; none is cached.

        :raises AnalysisPending: when it is still not completed after the last read.
        """
        for attempt in range(attempts):
            analysis = self.get(f"/analyses/{analysis_id}", subject=subject, cache=False)
            status = ((analysis.get("data") or {}).get("attributes") or {}).get("status")
            if status == "completed":
                return analysis
            if attempt + 1 < attempts:
                self.clock.sleep(interval)
        raise AnalysisPending(
            f"analysis {analysis_id} still not completed after {attempts} polls over "
            f"{(attempts - 1) * interval:g} s; enrich it again later",
            subject=subject,
        )

    def download(
        self,
        path: str,
        dest: IO[bytes],
        *,
        subject: str = "",
        max_bytes: int | None = None,
        chunk_size: int = 1 << 20,
        privilege: str = "download (premium)",
    ) -> int:
        """Stream a sample (``/files/<hash>/download``) into ``dest``; returns the bytes written.

        VirusTotal answers with a redirect to a signed storage URL; that second
        request carries no API key (it goes to another host) and takes no quota.
        When this raises, ``dest`` may hold a partial file.
        """
        with self._counting_errors():
            resp = self._request("GET", path, subject=subject, privilege=privilege, stream=True, redirect_ok=True)
            with resp:
                if not resp.is_redirect:
                    return self._stream(resp, dest, subject, max_bytes, chunk_size)
                location = urljoin(resp.url, resp.headers["Location"])
            storage = self._request(
                "GET", location, subject=subject, stream=True, send_key=False, take_quota=False
            )
            with storage:
                return self._stream(storage, dest, subject, max_bytes, chunk_size)

    # -- the request loop ----------------------------------------------------------
    def _request(
        self,
        method: str,
        path: str,
        *,
        subject: str,
        privilege: str | None = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
        redirect_ok: bool = False,
        send_key: bool | None = None,
        take_quota: bool = True,
        **kwargs: Any,
    ) -> requests.Response:
        url = self._url(path)
        if send_key is None:
            # The key goes only to VirusTotal's API host, never to a URL handed to us.
            send_key = _origin(url) == self._origin
        idempotent = method in ("GET", "HEAD")
        label = subject or f"{method} {self._redact(urlsplit(url).path)}"
        started = self.clock.time()
        retries = 0
        waited_for_quota = False
        body_at = _body_positions(kwargs)
        while True:
            if take_quota:
                self.limiter.acquire(subject)
            try:
                return self._attempt(
                    method, url, subject, privilege, headers, send_key, stream, redirect_ok, kwargs
                )
            except QuotaExceededError as err:
                if waited_for_quota:
                    raise self._day_spent(err) from None
                wait = self.limiter.window + hold_margin(self.limiter.window)
                if wait > self.config.max_quota_wait:
                    raise
                _rewind(body_at, err)
                self.log.warning("%s: VirusTotal says the quota is spent; waiting %.0fs for the window", label, wait)
                self.clock.sleep(wait)
                self.limiter.record_wait(wait)
                waited_for_quota = True
            except VTError as err:
                delay = self._rng.uniform(0, min(self.config.backoff_max, self.config.backoff_base * 2**retries))
                spent = self.clock.time() - started
                if (
                    not _retryable(err, idempotent)
                    or retries >= self.config.max_retries
                    or spent + delay > self.config.retry_budget
                ):
                    err.retries = retries
                    raise
                _rewind(body_at, err)
                self.log.warning("%s: %s; retry %d in %.1fs", label, err.summary, retries + 1, delay)
                self.clock.sleep(delay)
                retries += 1
                with self._lock:
                    self._retries += 1

    def _attempt(
        self,
        method: str,
        url: str,
        subject: str,
        privilege: str | None,
        headers: Mapping[str, str] | None,
        send_key: bool,
        stream: bool,
        redirect_ok: bool,
        kwargs: dict[str, Any],
    ) -> requests.Response:
        """One HTTP exchange: a 2xx response (or an expected redirect), else a typed error."""
        self._count(requests=1)
        try:
            resp = self._session.request(
                method,
                url,
                headers=self._headers(send_key, headers),
                timeout=(self.config.connect_timeout, self.config.read_timeout),
                # requests would resend x-apikey to whatever host a redirect names.
                allow_redirects=False,
                stream=stream,
                **kwargs,
            )
        except requests.exceptions.ConnectTimeout:
            raise ConnectionFailed(
                f"no connection within {self.config.connect_timeout:g}s", subject=subject, request_sent=False
            ) from None
        except requests.exceptions.ReadTimeout:
            raise RequestTimeout(f"no answer within {self.config.read_timeout:g}s", subject=subject) from None
        except requests.exceptions.ConnectionError as exc:
            raise ConnectionFailed(
                self._redact(_reason(exc)), subject=subject, request_sent=not _never_sent(exc)
            ) from None
        if 200 <= resp.status_code < 300 or (redirect_ok and resp.is_redirect):
            return resp
        with resp:
            if resp.is_redirect:
                where = urlsplit(resp.headers.get("Location", "")).netloc or "an unknown place"
                raise MalformedResponse(
                    f"unexpected redirect to {where}", status=resp.status_code, subject=subject
                )
            err = error_from_response(
                resp.status_code, resp.content, subject, privilege=privilege, key_setting=self.config.key_setting
            )
        err.vt_message = self._redact(err.vt_message)
        raise err

    def _day_spent(self, err: QuotaExceededError) -> QuotaExceededError:
        # A second QuotaExceededError right after a full window's wait: the minute was not the limit.
        return QuotaExceededError(
            err.vt_message,
            status=err.status,
            code=err.code,
            subject=err.subject,
            window="day",
            retry_after=seconds_until_utc_midnight(self.clock.time()),
        )

    # -- helpers -------------------------------------------------------------------
    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return self.config.base_url.rstrip("/") + "/" + path.lstrip("/")

    def _headers(self, send_key: bool, extra: Mapping[str, str] | None) -> dict[str, str]:
        # VirusTotal's front end only compresses for user agents that mention gzip.
        headers = {"user-agent": f"{self.config.tool}; gzip"}
        if send_key:
            headers.update(
                {"x-apikey": self.config.api_key, "accept": "application/json", "x-tool": self.config.tool}
            )
        headers.update(extra or {})
        return headers

    def _envelope(self, resp: requests.Response, subject: str, need_data: bool = True) -> dict[str, Any]:
        """The parsed body of a 2xx answer, which must be VirusTotal's JSON envelope."""
        try:
            doc = jsonlib.loads(resp.content)
        except ValueError:
            raise MalformedResponse(
                f"HTTP {resp.status_code} with a body that is not JSON: {_excerpt(resp.content)}",
                status=resp.status_code,
                subject=subject,
            ) from None
        if isinstance(doc, dict) and "data" in doc:
            return doc
        if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
            raise error_from_response(resp.status_code, doc, subject, key_setting=self.config.key_setting)
        if isinstance(doc, dict) and not need_data:
            return doc
        raise MalformedResponse(
            f"HTTP {resp.status_code} JSON without a data or error member: {_excerpt(resp.content)}",
            status=resp.status_code,
            subject=subject,
        )

    def _stream(
        self, resp: requests.Response, dest: IO[bytes], subject: str, max_bytes: int | None, chunk_size: int
    ) -> int:
        announced = resp.headers.get("Content-Length")
        if max_bytes is not None and announced and int(announced) > max_bytes:
            raise DownloadTooLarge(f"{announced} bytes, limit {max_bytes}", subject=subject)
        written = 0
        try:
            for chunk in resp.iter_content(chunk_size):
                if max_bytes is not None and written + len(chunk) > max_bytes:
                    raise DownloadTooLarge(f"more than {max_bytes} bytes", subject=subject)
                dest.write(chunk)
                written += len(chunk)
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise ConnectionFailed(f"download broke off after {written} bytes: {_reason(exc)}", subject=subject) from None
        if announced and written != int(announced):
            raise ConnectionFailed(f"download ended after {written} of {announced} bytes", subject=subject)
        return written

    def _redact(self, text: str) -> str:
        key = self.config.api_key
        return text.replace(key, "<api-key>") if key else text

    def _counting_errors(self) -> "_ErrorCounter":
        return _ErrorCounter(self)


class _ErrorCounter:
    def __init__(self, client: VTClient) -> None:
        self.client = client

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, _tb: Any) -> None:
        if exc_type is not None and issubclass(exc_type, VTError):
            with self.client._lock:
                self.client._errors[exc_type.__name__] += 1


def _retryable(err: VTError, idempotent: bool) -> bool:
    if isinstance(err, TooManyRequestsError):
        # VirusTotal turned the request away unprocessed, so even a POST may go again.
        return True
    if isinstance(err, ConnectionFailed):
        return idempotent or not err.request_sent
    if isinstance(err, (TransientError, RequestTimeout)):
        # A POST that timed out or hit a 5xx may have been applied already.
        return idempotent
    return False


def _body_positions(kwargs: Mapping[str, Any]) -> list[tuple[Any, int]] | None:
    """Where each file object of an upload starts, so a retry resends it whole.

    None when one of them cannot seek: such a body cannot be sent twice.
    """
    files = kwargs.get("files") or {}
    values = list(files.values()) if isinstance(files, Mapping) else [v for _, v in files]
    handles = [v[1] if isinstance(v, tuple) else v for v in values] + [kwargs.get("data")]
    positions = []
    for handle in handles:
        if hasattr(handle, "read"):
            if not (hasattr(handle, "seekable") and handle.seekable()):
                return None
            positions.append((handle, handle.tell()))
    return positions


def _rewind(positions: list[tuple[Any, int]] | None, err: VTError) -> None:
    if positions is None:
        raise err
    for handle, offset in positions:
        handle.seek(offset)


def _never_sent(exc: requests.exceptions.ConnectionError) -> bool:
    """True when the connection could not be opened, so no byte of the request left."""
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # MaxRetryError wraps the real cause
    return isinstance(reason, NewConnectionError)


def _reason(exc: BaseException) -> str:
    reason = exc.args[0] if exc.args else exc
    reason = getattr(reason, "reason", reason)
    return str(reason) or type(exc).__name__


def _excerpt(body: bytes, limit: int = 120) -> str:
    text = " ".join(body[: limit * 2].decode("utf-8", "replace").split())
    return repr(text[:limit] + ("..." if len(text) > limit or len(body) > limit * 2 else ""))


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _new_session() -> requests.Session:
    session = requests.Session()
    # Enough pooled connections for a worker pool; urllib3 retries stay off, ours apply.
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
