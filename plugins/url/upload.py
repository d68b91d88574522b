"""Submitting a URL VirusTotal has never seen, then waiting for its analysis.

Only when ``VIRUSTOTAL_URL_UPLOAD_UNSEEN`` is on and the URL's TLP allows
sharing it with the VirusTotal community. The wait is bounded (attempts x
interval, configurable) and a timeout is a failure that says to enrich again
later, never a success.
"""

from __future__ import annotations

from typing import Any, Mapping

from vtframework import subject_of
from vtframework.errors import MalformedResponse

from vtframework_plugins.url.query import url_query


def submit_and_wait(context: Any, settings: Mapping[str, Any]) -> dict[str, Any] | None:
    observable = context.observable
    if observable.entity_type != "Url" or not settings["virustotal.url_upload_unseen"]:
        return None
    context.client.check("submission")
    subject = subject_of(observable)
    context.log.info("%s is unknown to VirusTotal: submitting it for analysis", subject)
    answer = context.client.post("/urls", data={"url": observable.value}, subject=subject)
    analysis_id = str((answer.get("data") or {}).get("id") or "")
    if not analysis_id:
        raise MalformedResponse("the submission answer has no analysis id", subject=subject)
    context.client.wait_for_analysis(
        analysis_id,
        subject=subject,
        attempts=settings["virustotal.url_upload_poll_attempts"],
        interval=settings["virustotal.url_upload_poll_interval"],
    )
    path, params = url_query(observable.value)
    return context.client.get(path, params, subject=subject, cache="refresh")
