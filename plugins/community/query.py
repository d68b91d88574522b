"""The community's two requests: the newest comments (with their authors) and the newest votes."""

from __future__ import annotations

from typing import Any, Mapping

from vtframework import addons
from vtframework.errors import VTError

#: VirusTotal's largest page.
PAGE_MAX = 40


def fetch(context: Any, report: Mapping[str, Any], what: str) -> dict[str, Any] | None:
    """``comments`` or ``votes`` of the report's object, or None (with a warning) when they cannot be had.

    Asked once per enrichment whichever hook asks first: a failure is not
    tried (nor warned about) a second time.
    """
    key = ("community", what)
    if key not in context.memo:
        context.memo[key] = _get(context, report, what)
    return context.memo[key]


def _get(context: Any, report: Mapping[str, Any], what: str) -> dict[str, Any] | None:
    found = addons.vt_object(report)
    if found is None:
        return None
    collection, ident = found
    if what == "comments":
        params = {"limit": str(min(PAGE_MAX, context.settings["virustotal.community_max_comments"])),
                  "relationships": "author"}
    else:
        params = {"limit": str(min(PAGE_MAX, context.settings["virustotal.community_max_votes"]))}
    try:
        return context.client.get(f"/{collection}/{ident}/{what}", params, subject=f"{what} of {ident}")
    except VTError as exc:
        context.warn(f"community {what} skipped: {exc}")
        return None
