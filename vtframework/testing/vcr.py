"""Cassette settings shared by every test that replays VirusTotal traffic."""

from __future__ import annotations

import re
from typing import Any

#: What a scrubbed API key looks like in a cassette.
KEY_PLACEHOLDER = "<VIRUSTOTAL_API_KEY>"

# VirusTotal takes the API key as the user id on these endpoints, so it sits in the path.
_KEY_IN_PATH = re.compile(r"(/users/)[^/?#]+(/(?:overall_quotas|api_usage))")


def scrub_request(request: Any) -> Any:
    """Replace an API key that sits in the URL path; runs on record and on replay alike."""
    request.uri = _KEY_IN_PATH.sub(rf"\g<1>{KEY_PLACEHOLDER}\g<2>", request.uri)
    return request


def default_vcr_config() -> dict[str, Any]:
    """vcrpy options: the key never reaches a cassette; POST bodies take part in matching."""
    return {
        "filter_headers": [("x-apikey", KEY_PLACEHOLDER)],
        "before_record_request": scrub_request,
        "decode_compressed_response": True,
        # The body matcher compares None with None for GETs, so it only bites on POST/PATCH.
        "match_on": ["method", "scheme", "host", "port", "path", "query", "body"],
    }
