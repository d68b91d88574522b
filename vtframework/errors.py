"""Typed errors for the whole framework.

Every failure a user can meet while talking to VirusTotal becomes one class here,
keeping the HTTP status and VirusTotal's own error code, and printing a message
that says what was being looked up and what to do about it.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: Longest text from outside (VirusTotal's error message, a body excerpt) kept in a message.
MESSAGE_LIMIT = 300

# Terminal escape sequences (CSI, OSC, other ESC pairs), then any other control character:
# text from outside must not clear a screen, move the cursor or forge a line of our output.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")


def clean_text(text: Any, limit: int = MESSAGE_LIMIT) -> str:
    """Text from outside made safe for a terminal, a log line or a work message.

    Escape sequences and control characters (bidirectional overrides included)
    are removed, every run of whitespace (newlines too) becomes one space, and
    the result is cut at ``limit`` characters with an ellipsis.
    """
    text = _CONTROLS.sub("", _ESCAPES.sub("", str(text)))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class VTFrameworkError(Exception):
    """Base class of every error vtframework raises on purpose."""


class ConfigError(VTFrameworkError):
    """A configuration value is missing or invalid; ``key`` names it when known."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class PluginError(VTFrameworkError):
    """A plugin failed to load or to do its part.

    ``plugin`` names it, ``hook`` the hook that failed (None at load) and
    ``reason`` says what went wrong without naming the plugin again.
    """

    def __init__(self, message: str, plugin: str, hook: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.plugin = plugin
        self.hook = hook
        self.reason = reason or message


class InputError(VTFrameworkError):
    """An observable or value that cannot be looked up (malformed hash, IP, URL…)."""


class DigestMismatch(VTFrameworkError):
    """A downloaded sample is not the one that was asked for (its digest differs); it was discarded."""


class ImportInterrupted(VTFrameworkError):
    """An import run stopped early on purpose (its state was reset in OpenCTI); nothing failed."""


class VTError(VTFrameworkError):
    """A VirusTotal request did not give a usable answer.

    ``status`` is the HTTP status (None when no answer arrived), ``code`` VirusTotal's
    error code or one of ours (``Timeout``, ``ConnectionError``, ``MalformedResponse``),
    ``vt_message`` VirusTotal's text and ``subject`` what was being looked up.
    """

    #: What went wrong, in words; subclasses override.
    summary = "VirusTotal request failed"
    #: What the user can do about it; subclasses override.
    hint = ""

    def __init__(
        self,
        vt_message: str = "",
        *,
        status: int | None = None,
        code: str | None = None,
        subject: str = "",
        hint: str | None = None,
        summary: str | None = None,
    ) -> None:
        # VirusTotal's text (or whatever answered instead) reaches terminals and logs: never raw.
        vt_message = clean_text(vt_message)
        self.vt_message = vt_message
        self.status = status
        self.code = code
        self.subject = subject
        if hint is not None:
            self.hint = hint
        if summary is not None:
            self.summary = summary
        #: Retries spent before giving up; the client fills it in.
        self.retries = 0
        super().__init__(vt_message)

    def _detail(self) -> str:
        parts = [str(p) for p in (self.status, self.code) if p]
        head = " ".join(parts)
        if head and self.vt_message:
            return f"{head}: {self.vt_message}"
        return head or self.vt_message

    def __str__(self) -> str:
        text = f"{self.subject}: {self.summary}" if self.subject else self.summary
        detail = self._detail()
        if detail:
            text += f" ({detail})"
        if self.retries:
            text += f" after {self.retries} retr{'y' if self.retries == 1 else 'ies'}"
        if self.hint:
            text += f"; {self.hint}"
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross process boundaries in multiprocessing pools; keep every field.
        return (_rebuild, (type(self), self.__dict__.copy()))


def _rebuild(cls: type[VTError], state: dict[str, Any]) -> VTError:
    err = cls.__new__(cls)
    Exception.__init__(err, state.get("vt_message", ""))
    err.__dict__.update(state)
    return err


class NotFoundError(VTError):
    summary = "not found on VirusTotal"
    # Most VirusTotal objects (a ruleset, a Sigma rule, an IP address) cannot be submitted.
    hint = "VirusTotal has no such object; check the value or skip it"
    #: The hint for what VirusTotal analyses when it is sent to it (files, URLs).
    SUBMIT_HINT = "VirusTotal has never analysed it; submit it for analysis or skip it"


class AuthenticationError(VTError):
    summary = "VirusTotal rejected the API key"

    def __init__(self, vt_message: str = "", *, key_setting: str = "the API key setting", **kw: Any) -> None:
        kw.setdefault("hint", f"check {key_setting}")
        super().__init__(vt_message, **kw)


class ForbiddenError(VTError):
    summary = "VirusTotal refused the request"

    def __init__(self, vt_message: str = "", *, privilege: str | None = None, **kw: Any) -> None:
        self.privilege = privilege
        what = f"the {privilege} privilege" if privilege else "the privilege this endpoint needs"
        kw.setdefault("hint", f"the API key may lack {what}")
        super().__init__(vt_message, **kw)


class BadRequestError(VTError):
    summary = "VirusTotal rejected the request as invalid"
    hint = "check the value being looked up"


class ConflictError(VTError):
    summary = "already exists on VirusTotal"
    hint = "use the existing object instead of creating it again"


class TooManyRequestsError(VTError):
    summary = "VirusTotal is throttling requests"
    hint = "retry later or lower the number of workers"


class QuotaExceededError(VTError):
    """The key's quota is spent. ``window`` is ``"minute"`` or ``"day"``; ``retry_after``
    is the number of seconds until a slot frees, when known."""

    summary = "VirusTotal quota exhausted"

    def __init__(
        self,
        vt_message: str = "",
        *,
        window: str = "minute",
        retry_after: float | None = None,
        **kw: Any,
    ) -> None:
        self.window = window
        self.retry_after = retry_after
        if "hint" not in kw:
            if window == "day":
                kw["hint"] = "daily quota exhausted, resets at 00:00 UTC" + _in(retry_after)
            else:
                kw["hint"] = "per-minute quota spent; retry in a minute or raise the allowed quota wait"
        super().__init__(vt_message, **kw)


class TransientError(VTError):
    summary = "VirusTotal had a temporary failure"
    hint = "retry later; VirusTotal says a retry may work"


class RequestTimeout(VTError):
    summary = "VirusTotal did not answer in time"
    hint = "retry later or raise the read timeout"

    def __init__(self, vt_message: str = "", **kw: Any) -> None:
        kw.setdefault("code", "Timeout")
        super().__init__(vt_message, **kw)


class ConnectionFailed(VTError):
    """No answer arrived. ``request_sent`` is False only when the connection failed
    before the request could leave, which makes even a POST safe to retry."""

    summary = "could not talk to VirusTotal"
    hint = "check network access to the VirusTotal base URL (proxy, DNS, firewall)"

    def __init__(self, vt_message: str = "", *, request_sent: bool = True, **kw: Any) -> None:
        self.request_sent = request_sent
        kw.setdefault("code", "ConnectionError")
        super().__init__(vt_message, **kw)


class MalformedResponse(VTError):
    summary = "VirusTotal sent an answer that is not a VirusTotal API response"
    hint = "check the VirusTotal base URL (a proxy or captive portal may be answering)"

    def __init__(self, vt_message: str = "", **kw: Any) -> None:
        kw.setdefault("code", "MalformedResponse")
        super().__init__(vt_message, **kw)


class AnswerTooLarge(MalformedResponse):
    summary = "VirusTotal's answer is larger than the allowed maximum"
    hint = "raise VIRUSTOTAL_MAX_ANSWER_SIZE if such an answer is expected (a proxy may be sending something else)"

    def __init__(self, vt_message: str = "", **kw: Any) -> None:
        kw.setdefault("code", "AnswerTooLarge")
        super().__init__(vt_message, **kw)


class AnalysisPending(VTError):
    summary = "submitted to VirusTotal, but the analysis did not finish in time"
    hint = "enrich it again later"


class DownloadTooLarge(VTError):
    summary = "the download is larger than the allowed maximum"
    hint = "raise the maximum download size or skip this file"

    def __init__(self, vt_message: str = "", **kw: Any) -> None:
        kw.setdefault("code", "DownloadTooLarge")
        super().__init__(vt_message, **kw)


def format_duration(seconds: float) -> str:
    """``11520`` -> ``"3h12m"``; ``45`` -> ``"45s"``; two days and more -> ``"16d01h"``."""
    seconds = max(0, int(round(seconds)))
    if seconds >= 2 * 86400:
        days, rest = divmod(seconds, 86400)
        return f"{days}d{rest // 3600:02d}h"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _in(seconds: float | None) -> str:
    return "" if seconds is None else f" (in {format_duration(seconds)})"


_BY_CODE: dict[str, type[VTError]] = {
    "NotFoundError": NotFoundError,
    "WrongCredentialsError": AuthenticationError,
    "AuthenticationRequiredError": AuthenticationError,
    "UserNotActiveError": AuthenticationError,
    "ForbiddenError": ForbiddenError,
    "BadRequestError": BadRequestError,
    "InvalidArgumentError": BadRequestError,
    "NotAvailableYet": BadRequestError,
    "UnselectiveContentQueryError": BadRequestError,
    "UnsupportedContentQueryError": BadRequestError,
    "AlreadyExistsError": ConflictError,
    "QuotaExceededError": QuotaExceededError,
    "TooManyRequestsError": TooManyRequestsError,
    "TransientError": TransientError,
    "DeadlineExceededError": TransientError,
    "FailedDependencyError": TransientError,
}

_BY_STATUS: dict[int, type[VTError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    429: TooManyRequestsError,
}


def parse_error_envelope(body: bytes | str | dict[str, Any] | None) -> tuple[str | None, str]:
    """Return ``(code, message)`` from VirusTotal's ``{"error": {...}}`` envelope.

    ``code`` is None when the body is not such an envelope; ``message`` is then a
    short excerpt of the body so the user sees what actually came back.
    """
    doc: Any = body
    if isinstance(body, (bytes, str)):
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):
            text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
            return None, _excerpt(text)
    if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
        err = doc["error"]
        code = err.get("code")
        return (str(code) if code else None), str(err.get("message") or "")
    return None, _excerpt(json.dumps(doc)) if doc is not None else ""


def _excerpt(text: str, limit: int = 200) -> str:
    text = clean_text(text, limit + 3)
    return text if len(text) <= limit else text[:limit] + "..."


def error_from_response(
    status: int,
    body: bytes | str | dict[str, Any] | None,
    subject: str = "",
    *,
    privilege: str | None = None,
    key_setting: str | None = None,
) -> VTError:
    """Map an HTTP status and body to the matching :class:`VTError` subclass.

    VirusTotal's error code wins over the status; a body that is not VirusTotal's
    envelope (a proxy's HTML page, an empty 502) falls back to the status.
    """
    code, message = parse_error_envelope(body)
    if code is not None:
        cls = _BY_CODE.get(code) or _class_for_status(status)
    else:
        cls = _class_for_status(status)
        code = "ServerError" if status >= 500 else ("MalformedResponse" if status < 400 else "ClientError")
    kw: dict[str, Any] = {"status": status, "code": code, "subject": subject}
    if cls is ForbiddenError:
        kw["privilege"] = privilege
    if cls is AuthenticationError and key_setting:
        kw["key_setting"] = key_setting
    return cls(message, **kw)


def _class_for_status(status: int) -> type[VTError]:
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return TransientError
    if status < 400:
        return MalformedResponse
    return VTError
