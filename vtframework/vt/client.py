"""The one VirusTotal HTTP client every plugin goes through.

It owns the API key, timeouts, retries with backoff, the shared quota, the
response cache, the egress policy and the mapping of every failure to a typed
error. It never reports success for an answer it did not get, and it trusts
no answer: each one is bounded in time (a deadline for the whole exchange)
and size (before and after decompression), must be VirusTotal's JSON envelope
and, for an object, the very object asked for, before it is cached or
returned.
"""

from __future__ import annotations

import base64
import calendar
import datetime as dt
import hashlib
import json as jsonlib
import logging
import random
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import quote, urljoin, urlsplit

import requests
from urllib3.exceptions import HTTPError as URLLibError
from urllib3.exceptions import NewConnectionError

from vtframework.errors import (
    AnalysisPending,
    AnswerTooLarge,
    AuthenticationError,
    ConfigError,
    ConnectionFailed,
    DownloadTooLarge,
    InputError,
    MalformedResponse,
    QuotaExceededError,
    RequestTimeout,
    TooManyRequestsError,
    TransientError,
    VTError,
    error_from_response,
    format_duration,
)
from vtframework.policy.egress import EgressPolicy, Marked
from vtframework.records import Observable
from vtframework.state import StateError, StateStore, seconds_until_utc_midnight
from vtframework.vt.cache import ResponseCache, cache_key
from vtframework.vt.egress import BoundClient, Scopes, egress_path, marked
from vtframework.vt.quota import Clock, QuotaLimiter, QuotaTier, SystemClock, hold_margin, tier_from_quotas
from vtframework.vt.redaction import REDACTED, register_secret
from vtframework.vt.transport import Watch, new_session

DEFAULT_BASE_URL = "https://www.virustotal.com/api/v3"
#: Deepest nesting accepted in an answer; VirusTotal's objects stay within a dozen levels.
MAX_DEPTH = 64
#: Bytes read from the network at a time (and the most one read may decompress into).
CHUNK = 64 * 1024
#: Collection -> the object type VirusTotal answers for ``/<collection>/<id>``.
OBJECT_TYPES = {
    "files": "file",
    "urls": "url",
    "ip_addresses": "ip_address",
    "domains": "domain",
    "analyses": "analysis",
    "yara_rulesets": "yara_ruleset",
}
#: Paths shaped like an object's that are not one (``/files/upload_url`` answers a URL string).
NOT_OBJECTS = {("files", "upload_url")}
#: A detected quota tier is reused from the state for this long (seconds).
TIER_TTL = 3600.0


def url_id(url: str) -> str:
    """VirusTotal's identifier for a URL: unpadded URL-safe base64 of the URL."""
    return base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


@dataclass(frozen=True)
class ClientConfig:
    api_key: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    #: Longest one exchange (connection, headers and the whole body) may take.
    request_deadline: float = 120.0
    #: The same for a sample download, which may be hundreds of megabytes.
    download_deadline: float = 1800.0
    #: Largest answer accepted, in bytes, before and after decompression.
    max_answer_bytes: int = 64 << 20
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
    #: What may leave for VirusTotal about a marked observable.
    egress: EgressPolicy = field(default_factory=EgressPolicy)
    #: Refuse requests about observables made outside any scope (see :mod:`vtframework.vt.egress`).
    require_scope: bool = False

    def __post_init__(self) -> None:
        # A key pasted with a newline would otherwise end up in requests' header-validation traceback.
        key = (self.api_key or "").strip()
        if any(ch.isspace() or not ch.isprintable() for ch in key):
            raise ConfigError(
                f"{self.key_setting} holds whitespace or control characters inside the key; set it to the key alone"
            )
        object.__setattr__(self, "api_key", key)


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


@dataclass
class _Answer:
    """One HTTP answer, its body read in full (within the caps) and the key redacted from it."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes
    url: str

    @property
    def is_redirect(self) -> bool:
        return self.status_code in (301, 302, 303, 307, 308) and "Location" in self.headers


class _Live:
    """A streamed answer (a download) whose deadline keeps running until it is closed."""

    def __init__(self, resp: requests.Response, watch: Watch) -> None:
        self.resp, self.watch = resp, watch

    def __enter__(self) -> "_Live":
        return self

    def __exit__(self, *_: Any) -> None:
        self.watch.close()
        self.resp.close()


class VTClient:
    """Talks to VirusTotal for every plugin; thread-safe, one instance per API key.

    Call :meth:`start` once before use to adopt the key's real quota, or
    :meth:`start_lazily` to do it just before the first request that reaches
    VirusTotal (a run answered from the cache then makes none).
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
        self._session = session or new_session()
        self._origin = _origin(config.base_url)
        self._key_bytes = config.api_key.encode() if config.api_key else b""
        register_secret(config.api_key)
        self.state = state
        # The bucket is per key (two keys have two quotas) but never stores the key itself.
        self._bucket = "key-" + hashlib.sha256(config.api_key.encode()).hexdigest()[:16]
        self.limiter = QuotaLimiter(
            state,
            per_minute=config.requests_per_minute,
            per_day=config.requests_per_day,
            clock=self.clock,
            max_wait=config.max_quota_wait,
            bucket=self._bucket,
            window=config.quota_window,
        )
        self.cache = ResponseCache(state, self.clock, config.cache_ttl, config.not_found_ttl)
        self.scopes = Scopes(config.egress, config.require_scope)
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._start_pending = False
        self._starting = threading.local()
        #: Set once VirusTotal rejects the key: later requests fail at once, without spending anything.
        self.key_rejected: AuthenticationError | None = None
        self._requests = 0
        self._retries = 0
        self._cache_hits = 0
        self._errors: Counter[str] = Counter()
        self._local = threading.local()

    # -- lifecycle -----------------------------------------------------------------
    def start(self, fresh: bool = False) -> QuotaTier:
        """Adopt the key's real per-minute and per-day limits when ``detect_quota`` is on.

        A tier read within the last hour is reused from the state unless
        ``fresh`` (which also proves the key is accepted).

        :raises AuthenticationError: when VirusTotal rejects the key.
        """
        cfg = self.config
        try:
            if cfg.detect_quota:
                tier = (None if fresh else self._remembered_tier()) or self.detect_tier()
            else:
                tier = None
        finally:
            self._start_pending = False
        if tier is None:
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

    def start_lazily(self) -> None:
        """Run :meth:`start` just before the first request that reaches VirusTotal."""
        self._start_pending = True

    def detect_tier(self) -> QuotaTier:
        """Read the key's own quotas from ``/users/{key}/overall_quotas``.

        VirusTotal accepts the API key as the user id there. A public key reports
        500 a day (and 240 an hour, i.e. 4 a minute); anything else is premium. When
        the call fails for any reason but a rejected key, the configured limits stay.
        """
        cfg = self.config
        try:
            answer = self.get(self._quota_path(), subject="quota of the API key", cache=False)
            data = answer.get("data")
            tier = tier_from_quotas(data if isinstance(data, dict) else {}, cfg.requests_per_minute,
                                    cfg.requests_per_day)
        except AuthenticationError:
            raise
        except VTError as exc:
            return QuotaTier(cfg.requests_per_minute, cfg.requests_per_day, "configured", False, str(exc))
        if tier.detected:
            self._remember_tier(tier)
        return tier

    def _remembered_tier(self) -> QuotaTier | None:
        try:
            saved = self.state.kv_get("quota_tier", self._bucket)
        except StateError:
            return None
        if not isinstance(saved, dict) or not 0 <= self.clock.time() - float(saved.get("at", 0)) < TIER_TTL:
            return None
        try:
            return QuotaTier(int(saved["per_minute"]), int(saved["per_day"]), str(saved["tier"]), True)
        except (KeyError, TypeError, ValueError):
            return None

    def _remember_tier(self, tier: QuotaTier) -> None:
        entry = {"per_minute": tier.per_minute, "per_day": tier.per_day, "tier": tier.tier, "at": self.clock.time()}
        try:
            self.state.kv_set("quota_tier", self._bucket, entry)
        except StateError as exc:
            self.log.warning("%s", exc)

    def _ensure_started(self) -> None:
        if not self._start_pending or getattr(self._starting, "active", False):
            return
        with self._start_lock:
            if not self._start_pending:
                return
            self._starting.active = True
            try:
                self.start()
            finally:
                self._starting.active = False

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

    # -- egress scopes ---------------------------------------------------------------
    def scope(self, about: Marked | Observable) -> Any:
        """A context manager: every request this thread makes inside it is about ``about``.

        Each request is checked against ``about``'s markings (and those of any
        enclosing scope) for its egress path before anything is sent.
        """
        return self.scopes.entered(about if isinstance(about, Marked) else marked(about))

    def bound(self, about: Marked | Observable) -> BoundClient:
        """This client as the work about ``about`` sees it: every call runs inside its scope."""
        return BoundClient(self, about if isinstance(about, Marked) else marked(about))

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
        listings). An answer for an object must be that object (its type and
        id); anything else is a :class:`MalformedResponse`, never cached.
        """

        fetched = False
        expected = _expected_object(path)

        def validate(answer: dict[str, Any]) -> None:
            _check_object(answer, expected, subject)

        def fetch() -> dict[str, Any]:
            nonlocal fetched
            fetched = True
            resp = self._request("GET", path, subject=subject, privilege=privilege, params=params)
            answer = self._envelope(resp, subject)
            validate(answer)
            return answer

        with self._counting_errors():
            url = self._url(path)
            # Checked before the cache too: a refused observable is refused whatever the cache holds.
            self.scopes.check(egress_path("GET", url, self.config.base_url))
            # The base URL is part of the key: answers of another endpoint (a proxy, a test server) never mix.
            key = cache_key("GET", url, dict(params or {}))
            if cache == "refresh":
                answer = fetch()
                self.cache.store(key, answer)
                return answer
            if not cache:
                return fetch()
            try:
                return self.cache.get_or_fetch(key, fetch, subject, validate=validate)
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
            with self._request("GET", path, subject=subject, privilege=privilege, live=True, redirect_ok=True) as hop:
                if not hop.resp.is_redirect:
                    return self._stream(hop, dest, subject, max_bytes, chunk_size)
                location = urljoin(hop.resp.url, hop.resp.headers["Location"])
            with self._request(
                "GET", location, subject=subject, live=True, send_key=False, take_quota=False
            ) as storage:
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
        live: bool = False,
        redirect_ok: bool = False,
        send_key: bool | None = None,
        take_quota: bool = True,
        **kwargs: Any,
    ) -> Any:
        """One request with its retries: an :class:`_Answer`, or a :class:`_Live` stream when ``live``."""
        url = self._url(path)
        # Before anything else, even the quota read: a refused request costs nothing.
        self.scopes.check(egress_path(method, url, self.config.base_url))
        if send_key is None:
            # The key goes only to VirusTotal's API host, never to a URL handed to us.
            send_key = _origin(url) == self._origin
        if take_quota:
            self._ensure_started()
        idempotent = method in ("GET", "HEAD")
        label = subject or f"{method} {self._redact(urlsplit(url).path)}"
        started = self.clock.time()
        retries = 0
        waited_for_quota = False
        body_at = _body_positions(kwargs)
        while True:
            if self.key_rejected is not None and send_key:
                raise self._rejected_again(subject)
            if take_quota:
                self.limiter.acquire(subject)
            try:
                return self._attempt(
                    method, url, subject, privilege, headers, send_key, live, redirect_ok, kwargs
                )
            except QuotaExceededError as err:
                if waited_for_quota:
                    raise self._longer_window_spent(err) from None
                wait = self.limiter.window + hold_margin(self.limiter.window)
                if wait > self.config.max_quota_wait:
                    raise
                _rewind(body_at, err)
                self.log.warning("%s: VirusTotal says the quota is spent; waiting %.0fs for the window", label, wait)
                self.clock.sleep(wait)
                self.limiter.record_wait(wait)
                waited_for_quota = True
            except AuthenticationError as err:
                if send_key and self.key_rejected is None:
                    self.key_rejected = err
                raise
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
        live: bool,
        redirect_ok: bool,
        kwargs: dict[str, Any],
    ) -> Any:
        """One HTTP exchange within its deadline: a 2xx answer (or an expected redirect), else a typed error."""
        self._count(requests=1)
        if live:
            watch = Watch(self.config.download_deadline, "VIRUSTOTAL_DOWNLOAD_DEADLINE").__enter__()
        else:
            watch = Watch(self.config.request_deadline, "VIRUSTOTAL_REQUEST_DEADLINE").__enter__()
        resp: requests.Response | None = None
        try:
            try:
                resp = self._session.request(
                    method,
                    url,
                    headers=self._headers(send_key, headers),
                    timeout=(self.config.connect_timeout, self.config.read_timeout),
                    # requests would resend x-apikey to whatever host a redirect names.
                    allow_redirects=False,
                    stream=True,
                    **kwargs,
                )
            except (requests.RequestException, URLLibError, OSError) as exc:
                raise self._transport_error(exc, watch, subject) from None
            wanted = 200 <= resp.status_code < 300 or (redirect_ok and resp.is_redirect)
            if live and wanted:
                return _Live(resp, watch)
            answer = _Answer(resp.status_code, resp.headers, self._read(resp, watch, subject), resp.url)
        except BaseException:
            watch.close()
            if resp is not None:
                resp.close()
            raise
        watch.close()
        resp.close()
        if wanted:
            return answer
        if answer.is_redirect:
            where = urlsplit(answer.headers.get("Location", "")).netloc or "an unknown place"
            raise MalformedResponse(f"unexpected redirect to {where}", status=answer.status_code, subject=subject)
        raise error_from_response(
            answer.status_code, answer.content, subject, privilege=privilege, key_setting=self.config.key_setting
        )

    def _read(self, resp: requests.Response, watch: Watch, subject: str) -> bytes:
        """The whole body, decompressed, within the size cap and the deadline; the key redacted."""
        limit = self.config.max_answer_bytes
        announced = resp.headers.get("Content-Length", "")
        if announced.isdigit() and int(announced) > limit:
            raise self._too_large(subject, f"it announces {announced} bytes")
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in resp.iter_content(CHUNK):
                size += len(chunk)
                if size > limit or resp.raw.tell() > limit:
                    raise self._too_large(subject, f"more than {limit} bytes arrived")
                chunks.append(chunk)
        except (requests.RequestException, URLLibError, OSError) as exc:
            raise self._transport_error(exc, watch, subject, received=size) from None
        body = b"".join(chunks)
        # VirusTotal (or whatever answers in its place) may echo the key: it never goes further.
        return body.replace(self._key_bytes, REDACTED.encode()) if self._key_bytes else body

    def _too_large(self, subject: str, detail: str) -> AnswerTooLarge:
        limit = self.config.max_answer_bytes
        return AnswerTooLarge(f"{detail}; the limit is {limit} bytes", subject=subject)

    def _transport_error(
        self, exc: BaseException, watch: Watch, subject: str, received: int | None = None
    ) -> VTError:
        """A failed exchange as a typed error (a cut by the deadline is a timeout)."""
        if watch.expired:
            return RequestTimeout(
                f"no complete answer within {watch.seconds:g}s", subject=subject,
                hint=f"retry later or raise {watch.setting} (a slow link or proxy may be in the way)",
            )
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return ConnectionFailed(
                f"no connection within {self.config.connect_timeout:g}s", subject=subject, request_sent=False
            )
        if isinstance(exc, requests.exceptions.ReadTimeout) or "timed out" in str(exc).lower():
            return RequestTimeout(f"no answer within {self.config.read_timeout:g}s", subject=subject)
        if isinstance(exc, requests.exceptions.ContentDecodingError):
            return MalformedResponse(f"the answer's compression is broken: {self._redact(_reason(exc))}",
                                     subject=subject)
        reason = self._redact(_reason(exc))
        if received is not None:
            reason = f"the answer broke off after {received} bytes: {reason}"
        never_sent = isinstance(exc, requests.exceptions.ConnectionError) and _never_sent(exc)
        return ConnectionFailed(reason, subject=subject, request_sent=not never_sent)

    def _rejected_again(self, subject: str) -> AuthenticationError:
        first = self.key_rejected
        assert first is not None
        return AuthenticationError(
            f"{first.vt_message} (rejected earlier in this run; nothing more was sent)",
            status=first.status, code=first.code, subject=subject, key_setting=self.config.key_setting,
        )

    def _longer_window_spent(self, err: QuotaExceededError) -> QuotaExceededError:
        """VirusTotal still refuses after a full minute's wait: find which quota ran out, and when it frees."""
        window, used, allowed = self._spent_window()
        now = self.clock.time()
        common = dict(status=err.status, code=err.code, subject=err.subject)
        frees = {
            "month": (_seconds_until_next_month(now), "monthly", "it frees on the first of the month at 00:00 UTC"),
            "day": (seconds_until_utc_midnight(now), "daily", "it resets at 00:00 UTC"),
            "hour": (3600 - now % 3600, "hourly", "it frees within the hour, at the latest"),
        }
        if window in frees:
            wait, adjective, when = frees[window]
            return QuotaExceededError(
                err.vt_message, window=window, retry_after=wait, **common,
                summary=f"VirusTotal {adjective} quota ({allowed} requests, {used} used) is exhausted",
                hint=f"{when} (in {format_duration(wait)})",
            )
        if window == "minute":
            return QuotaExceededError(
                err.vt_message, window="minute", retry_after=self.limiter.window, **common,
                summary="VirusTotal still refuses after a full minute's wait, although the key's hourly, "
                "daily and monthly quotas have room",
                hint="something else is spending this key's per-minute quota; retry in a minute, lower "
                "VIRUSTOTAL_REQUESTS_PER_MINUTE or give this connector its own key",
            )
        return QuotaExceededError(
            err.vt_message, window="unknown", retry_after=None, **common,
            summary="VirusTotal still refuses after a full minute's wait",
            hint="one of the key's longer quotas (hourly, daily or monthly) is probably spent, and VirusTotal "
            "did not say which; retry later",
        )

    def _spent_window(self) -> tuple[str | None, int, int]:
        """``(window, used, allowed)`` of the longest exhausted quota, ``("minute", 0, 0)`` when none
        is, ``(None, 0, 0)`` when VirusTotal does not say."""
        try:
            answer = self._envelope(
                self._attempt("GET", self._url(self._quota_path()), "quota of the API key", None, None,
                              True, False, False, {}),
                "quota of the API key",
            )
        except VTError:
            return None, 0, 0
        data = answer.get("data") if isinstance(answer.get("data"), dict) else {}
        for name, window in (("api_requests_monthly", "month"), ("api_requests_daily", "day"),
                             ("api_requests_hourly", "hour")):
            for scope in ("user", "group"):
                entry = (data.get(name) or {}).get(scope) if isinstance(data.get(name), dict) else None
                used, allowed = _number(entry, "used"), _number(entry, "allowed")
                if allowed and used is not None and used >= allowed:
                    return window, used, allowed
        return ("minute", 0, 0) if data else (None, 0, 0)

    # -- helpers -------------------------------------------------------------------
    def _quota_path(self) -> str:
        return f"/users/{self.config.api_key}/overall_quotas"

    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return self.config.base_url.rstrip("/") + "/" + _safe_path(path)

    def _headers(self, send_key: bool, extra: Mapping[str, str] | None) -> dict[str, str]:
        # VirusTotal's front end only compresses for user agents that mention gzip.
        headers = {"user-agent": f"{self.config.tool}; gzip"}
        if send_key:
            headers.update(
                {"x-apikey": self.config.api_key, "accept": "application/json", "x-tool": self.config.tool}
            )
        headers.update(extra or {})
        return headers

    def _envelope(self, resp: _Answer, subject: str, need_data: bool = True) -> dict[str, Any]:
        """The parsed body of a 2xx answer, which must be VirusTotal's JSON envelope."""
        try:
            doc = jsonlib.loads(resp.content)
        except (ValueError, RecursionError):
            raise MalformedResponse(
                f"HTTP {resp.status_code} with a body that is not JSON: {_excerpt(resp.content)}",
                status=resp.status_code,
                subject=subject,
            ) from None
        if _too_deep(doc, MAX_DEPTH):
            raise MalformedResponse(
                f"HTTP {resp.status_code} with JSON nested deeper than {MAX_DEPTH} levels",
                status=resp.status_code, subject=subject,
            )
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
        self, live: _Live, dest: IO[bytes], subject: str, max_bytes: int | None, chunk_size: int
    ) -> int:
        resp = live.resp
        announced = resp.headers.get("Content-Length")
        if max_bytes is not None and announced and announced.isdigit() and int(announced) > max_bytes:
            raise DownloadTooLarge(f"{announced} bytes, limit {max_bytes}", subject=subject)
        written = 0
        try:
            for chunk in resp.iter_content(chunk_size):
                if max_bytes is not None and written + len(chunk) > max_bytes:
                    raise DownloadTooLarge(f"more than {max_bytes} bytes", subject=subject)
                dest.write(chunk)
                written += len(chunk)
        except (requests.RequestException, URLLibError, OSError) as exc:
            if live.watch.expired:
                raise RequestTimeout(
                    f"download not complete within {self.config.download_deadline:g}s ({written} bytes)",
                    subject=subject,
                ) from None
            raise ConnectionFailed(
                f"download broke off after {written} bytes: {self._redact(_reason(exc))}", subject=subject
            ) from None
        if announced and announced.isdigit() and written != int(announced):
            raise ConnectionFailed(f"download ended after {written} of {announced} bytes", subject=subject)
        return written

    def _redact(self, text: str) -> str:
        key = self.config.api_key
        return text.replace(key, REDACTED) if key else text

    def _counting_errors(self) -> "_ErrorCounter":
        return _ErrorCounter(self)


class _ErrorCounter:
    def __init__(self, client: VTClient) -> None:
        self.client = client

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, _tb: Any) -> None:
        if exc_type is not None and issubclass(exc_type, VTError):
            # Whatever VirusTotal (or a proxy) said, the key never leaves in an error.
            exc.vt_message = self.client._redact(exc.vt_message)
            with self.client._lock:
                self.client._errors[exc_type.__name__] += 1


def _expected_object(path: str) -> tuple[str, str] | None:
    """``(type, id)`` of the object a GET path asks for (``/files/<hash>``), or None for anything else."""
    if path.startswith(("http://", "https://")):
        return None
    segments = [s for s in path.split("?", 1)[0].strip("/").split("/") if s]
    if len(segments) == 2 and segments[0] in OBJECT_TYPES and tuple(segments) not in NOT_OBJECTS:
        return OBJECT_TYPES[segments[0]], segments[1]
    if len(segments) == 3 and segments[:2] == ["intelligence", "hunting_rulesets"]:
        return "hunting_ruleset", segments[2]
    return None


def _check_object(answer: Mapping[str, Any], expected: tuple[str, str] | None, subject: str) -> None:
    """An object answer must be the object asked for; raise :class:`MalformedResponse` otherwise."""
    if expected is None:
        return
    kind, ident = expected
    data = answer.get("data")
    if not isinstance(data, dict):
        raise MalformedResponse(
            f"data is {_kind_of(data)}, not the {kind} object asked for", status=200, subject=subject
        )
    got_type, got_id = data.get("type"), data.get("id")
    if got_type != kind or not isinstance(got_id, (str, int)) or isinstance(got_id, bool):
        raise MalformedResponse(
            f"the answer is a {_kind_of(got_type, True)} object, not the {kind} asked for", status=200, subject=subject
        )
    if not _same_object(kind, ident, str(got_id), data.get("attributes")):
        raise MalformedResponse(
            f"the answer is about {kind} {str(got_id)[:80]!r}, not {ident[:80]!r}", status=200, subject=subject
        )


def _same_object(kind: str, asked: str, got: str, attributes: Any) -> bool:
    attrs = attributes if isinstance(attributes, dict) else {}
    if kind == "file":
        known = {got, *(attrs.get(h) for h in ("md5", "sha1", "sha256") if isinstance(attrs.get(h), str))}
        return asked.lower() in {str(k).lower() for k in known}
    if kind == "url":
        # VirusTotal answers with the SHA-256 of the URL as it canonicalised it, never the id asked by.
        url = attrs.get("url")
        if got == asked or not isinstance(url, str):
            return True
        try:
            padded = asked + "=" * (-len(asked) % 4)
            wanted = base64.urlsafe_b64decode(padded.encode()).decode("utf-8")
        except ValueError:
            return True  # asked by SHA-256 itself: nothing to compare the answer's URL with
        return _url_key(wanted) == _url_key(url)
    if kind == "ip_address":
        import ipaddress

        try:
            return ipaddress.ip_address(asked) == ipaddress.ip_address(got)
        except ValueError:
            return asked == got
    if kind == "domain":
        return asked.rstrip(".").lower() == got.rstrip(".").lower()
    return asked == got


def _url_key(url: str) -> tuple[str, str, str, str]:
    """A URL reduced to what VirusTotal's canonicalisation keeps of it, for a loose comparison."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").rstrip(".").lower()
    port = parts.port if parts.port not in (None, 80, 443) else None
    return parts.scheme.lower(), f"{host}:{port}" if port else host, parts.path or "/", parts.query


def _kind_of(value: Any, named: bool = False) -> str:
    if named and isinstance(value, str):
        return repr(value[:40])
    return {dict: "an object", list: "a list", str: "a string", type(None): "missing"}.get(
        type(value), f"a {type(value).__name__}"
    )


def _too_deep(doc: Any, limit: int) -> bool:
    """True when ``doc`` nests containers more than ``limit`` deep (checked without recursion)."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _number(entry: Any, name: str) -> int | None:
    value = entry.get(name) if isinstance(entry, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < 0:
        return None
    try:
        return int(value)
    except (OverflowError, ValueError):
        return None


def _seconds_until_next_month(now: float) -> float:
    moment = dt.datetime.fromtimestamp(now, dt.timezone.utc)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return calendar.timegm((year, month, 1, 0, 0, 0)) - now


def _safe_path(path: str) -> str:
    """An API path with each segment percent-encoded; dot and empty segments are refused.

    Values from observables end up in paths (a hash, a domain): none may
    escape its segment (``..``, ``/``, ``?``, ``#``) and reach another endpoint.
    """
    segments = path.strip("/").split("/")
    if any(segment in ("", ".", "..") for segment in segments):
        raise InputError(f"refused to send the VirusTotal path {path[:120]!r}: it has an empty, '.' or '..' segment")
    return "/".join(quote(segment, safe="!$&'()*+,;=:@-._~") for segment in segments)


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

