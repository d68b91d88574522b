"""A VirusTotal url object as STIX: score, notes and indicator."""

from __future__ import annotations

from typing import Any, Mapping

from vtframework import blocks

from vtframework_plugins.url.query import serving_ip


def attribute_fields(report: Mapping[str, Any], attrs: Mapping[str, Any]) -> list[tuple[str, Any]]:
    return [
        ("Final URL", attrs.get("last_final_url")),
        ("Title", attrs.get("title")),
        ("Last HTTP response code", attrs.get("last_http_response_code")),
        ("Last Analysis Date", blocks.date_text(attrs.get("last_analysis_date"))),
        ("Serving IP Address", serving_ip(report)),
    ]


def url_objects(context: Any, report: Mapping[str, Any]) -> list[Any]:
    fields = attribute_fields(report, blocks.attributes(report))
    return blocks.reputation_objects(context, report, kind="url", fields=fields)
