"""Enforcing the egress policy on VirusTotal requests.

Which egress path a request takes is read from the request itself (method
and endpoint), never from what the caller says it is doing, so a plugin
cannot make an upload pass for a lookup. What the request is about comes from
the *scopes* open on the calling thread: the pipeline opens one per
enrichment, the stream runtime one per event, the downloader one per sample,
and :class:`BoundClient` opens one around each of its calls. Every open scope
must allow the request (nested scopes add up, never relax).
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any, Iterator
from urllib.parse import urlsplit

from vtframework.context import subject_of
from vtframework.policy.egress import EgressPolicy, EgressRefused, Marked, marking_items
from vtframework.records import Observable

if TYPE_CHECKING:  # pragma: no cover
    from vtframework.vt.client import VTClient

_WRITES = ("POST", "PUT", "PATCH")
HUNTING = ("intelligence", "hunting_rulesets")
#: Listings of what VirusTotal sends this key (Livehunt matches): reading or deleting them names no observable.
NOTIFICATIONS = (
    ("intelligence", "hunting_notifications"), ("intelligence", "hunting_notification_files"),
    ("ioc_stream",), ("ioc_stream_notifications",),
)


def egress_path(method: str, url: str, api_base: str) -> str | None:
    """The egress path of a request (see :data:`~vtframework.policy.egress.EGRESS_PATHS`), or None.

    None means the request tells VirusTotal nothing about an observable: the
    key's own quota, deleting, listing (by our marker) or sharing a Livehunt
    ruleset, reading or deleting Livehunt notifications. Any write this
    function does not recognise counts as an upload, the most restricted path.
    """
    method = method.upper()
    base = urlsplit(api_base)
    parts = urlsplit(url)
    inside = (parts.scheme, parts.netloc.lower()) == (base.scheme, base.netloc.lower()) and (
        parts.path.rstrip("/") + "/"
    ).startswith(base.path.rstrip("/") + "/")
    if not inside:
        # A one-time upload URL, or the storage a download redirects to.
        return "upload" if method in _WRITES else "download"
    segments = [s for s in parts.path[len(base.path.rstrip("/")):].split("/") if s]
    if segments[:1] == ["users"]:
        return None
    if any(tuple(segments[:len(prefix)]) == prefix for prefix in NOTIFICATIONS) and method in ("GET", "HEAD", "DELETE"):
        return None
    if tuple(segments[:2]) == HUNTING:
        # Creating or changing a ruleset sends the rule; listing, deleting and sharing it send nothing of it.
        return "livehunt" if method in _WRITES and "relationships" not in segments else None
    if method == "DELETE":
        return None
    if len(segments) == 3 and segments[0] == "files" and segments[2] in ("download", "download_url"):
        return "download"
    if method in ("GET", "HEAD"):
        return "lookup"
    if segments[:1] == ["urls"] and (len(segments) == 1 or segments[-1] == "analyse"):
        return "submission"
    return "upload"


def marked(observable: Observable) -> Marked:
    """What requests about ``observable`` are about: its name and every marking it carries."""
    details = getattr(observable, "marking_details", ()) or ()
    markings = marking_items(observable.markings or (), details)
    # The TLP it was built with counts too (a value typed with --tlp, a test's observable without ids).
    if observable.tlp and observable.tlp not in markings:
        markings = (*markings, observable.tlp)
    return Marked(subject_of(observable), markings)


class Scopes:
    """The scopes open on each thread, and the check every request passes."""

    def __init__(self, policy: EgressPolicy, require: bool) -> None:
        self.policy = policy
        #: Refuse requests about observables made outside any scope (the connectors and the CLI).
        self.require = require
        self._local = threading.local()

    def open(self) -> list[Marked]:
        if not hasattr(self._local, "stack"):
            self._local.stack = []
        return self._local.stack

    @contextlib.contextmanager
    def entered(self, about: Marked) -> Iterator[Marked]:
        """Every request this thread makes inside the block is about ``about`` (too)."""
        stack = self.open()
        stack.append(about)
        try:
            yield about
        finally:
            stack.pop()

    def refusal(self, path: str | None, extra: Marked | None = None) -> str | None:
        """Why a request on ``path`` may not leave from this thread now, or None."""
        if path is None:
            return None
        scopes = [*self.open(), *([extra] if extra else [])]
        if not scopes:
            if self.require:
                return (
                    f"a VirusTotal request ({path}) was made outside the enrichment, download or event it "
                    "belongs to, so its markings are unknown: refused, nothing was sent to VirusTotal"
                )
            return None
        for about in scopes:
            reason = self.policy.refusal(about, path)
            if reason:
                return reason
        return None

    def check(self, path: str | None, extra: Marked | None = None) -> None:
        reason = self.refusal(path, extra)
        if reason:
            raise EgressRefused(reason)


class BoundClient:
    """The VirusTotal client as the work about one observable sees it.

    Every call runs inside the observable's scope, from whatever thread makes
    it: lookups, downloads, uploads, submissions and Livehunt rules are
    checked against every marking it carries before anything leaves. Reading
    attributes (``stats``, ``config``) passes through.
    """

    def __init__(self, client: "VTClient", about: Marked) -> None:
        object.__setattr__(self, "_vt", client)
        object.__setattr__(self, "about", about)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._vt, name)
        if not callable(value) or name.startswith("__"):
            return value

        def scoped(*args: Any, **kwargs: Any) -> Any:
            with self._vt.scope(self.about):
                return value(*args, **kwargs)

        return scoped

    def check(self, path: str) -> None:
        """Raise :class:`EgressRefused` now when ``path`` (``"upload"``, ``"submission"``…) is not allowed."""
        self._vt.scopes.check(path, self.about)

    def allows(self, path: str) -> bool:
        return self._vt.scopes.refusal(path, self.about) is None

    def check_upload(self) -> None:
        """Raise :class:`EgressRefused` when the observable may not be uploaded to VirusTotal."""
        self.check("upload")

    def bound(self, about: Marked | Observable) -> "BoundClient":
        return self._vt.bound(about)
