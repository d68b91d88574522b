"""Uploading an Artifact VirusTotal has never seen, then waiting for its analysis.

Samples under 32 MB go to ``POST /files``; larger ones (up to 650 MB) to a
one-time upload URL. The wait is bounded (attempts x interval, configurable)
and a timeout is a failure that says to enrich again later, never a success.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vtframework.errors import InputError, VTError

DIRECT_LIMIT = 32 * 1024 * 1024
UPLOAD_URL_LIMIT = 650 * 1024 * 1024


def upload_and_wait(context: Any, sha256: str, settings: Mapping[str, Any]) -> dict[str, Any] | None:
    observable = context.observable
    if observable.entity_type != "Artifact" or not settings["virustotal.file_upload_unseen_artifacts"]:
        return None
    if not observable.files:
        return None
    sample = observable.files[0]
    size = int(sample.get("size") or 0)
    if size > UPLOAD_URL_LIMIT:
        raise InputError(
            f"Artifact {observable.value} is not known to VirusTotal and is too large to upload "
            f"({size} bytes; VirusTotal accepts up to {UPLOAD_URL_LIMIT})"
        )
    context.client.check_upload()
    subject = f"Artifact {observable.value}"
    context.log.info("%s is unknown to VirusTotal: uploading %s (%d bytes)", subject, sample.get("name"), size)
    path = "/files"
    if size > DIRECT_LIMIT:
        path = context.client.get("/files/upload_url", subject=subject, cache=False)["data"]
    with sample["open"]() as handle:
        answer = context.client.post(path, files={"file": (sample.get("name") or sha256, handle)}, subject=subject)
    analysis_id = str((answer.get("data") or {}).get("id") or "")
    if not analysis_id:
        raise VTError("the upload answer has no analysis id", subject=subject, code="MalformedResponse")
    context.client.wait_for_analysis(
        analysis_id,
        subject=subject,
        attempts=settings["virustotal.file_upload_poll_attempts"],
        interval=settings["virustotal.file_upload_poll_interval"],
    )
    return context.client.get(f"/files/{sha256}", subject=subject, cache="refresh")
