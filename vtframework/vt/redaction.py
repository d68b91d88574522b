"""Secrets never reach a log line, whichever library writes it.

Every secret vtframework holds (the VirusTotal keys, the OpenCTI token) is
registered here. :func:`install` wraps the logging record factory, so every
record any logger creates (urllib3's debug line naming
``/users/<key>/overall_quotas``, pycti's, ours) has its message, arguments and
exception text redacted before a handler or formatter sees it.
"""

from __future__ import annotations

import logging
import threading
import traceback
from typing import Any, Iterable

REDACTED = "<redacted>"
#: Shorter values are not redacted: replacing "a" everywhere would garble every line.
MIN_SECRET_LENGTH = 6

_secrets: set[str] = set()
_lock = threading.Lock()
_installed = False


def register_secret(value: str | None) -> None:
    """Redact ``value`` (and its surrounding-whitespace-free form) from every log record from now on."""
    if not value:
        return
    with _lock:
        for candidate in (value, value.strip()):
            if len(candidate) >= MIN_SECRET_LENGTH:
                _secrets.add(candidate)


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """``text`` with every registered secret (longest first) replaced by ``<redacted>``."""
    with _lock:
        known = sorted(secrets if secrets is not None else _secrets, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _clean(record: logging.LogRecord) -> None:
    with _lock:
        if not _secrets:
            return
    try:
        message = record.getMessage()
    except Exception:  # a bad format string is the logging module's to report
        return
    record.msg, record.args = redact(message), ()
    if record.exc_info and record.exc_info[0] is not None:
        record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        record.exc_info = None
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


def install() -> None:
    """Redact every log record created in this process from now on (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _clean(record)
        return record

    logging.setLogRecordFactory(factory)
