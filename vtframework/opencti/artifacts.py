"""Artifacts in OpenCTI: find one by hash, upload one streamed from disk.

pycti's ``upload_artifact`` builds the whole multipart body in memory (twice
the sample); this uploader streams the same GraphQL multipart request
(``artifactImport``) from the file, so memory stays flat whatever the size.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

import requests
from requests_toolbelt.multipart.encoder import MultipartEncoder

from vtframework.errors import VTFrameworkError
from vtframework.pipeline.download import Sample

_IMPORT = """
mutation ArtifactImport($file: Upload!, $x_opencti_description: String, $createdBy: String,
                        $objectMarking: [String], $objectLabel: [String]) {
  artifactImport(file: $file, x_opencti_description: $x_opencti_description, createdBy: $createdBy,
                 objectMarking: $objectMarking, objectLabel: $objectLabel) {
    id
    standard_id
    entity_type
    observable_value
  }
}
"""


class OpenCTIError(VTFrameworkError):
    """OpenCTI refused or failed an operation; the message says which."""


class OpenCTIArtifacts:
    """Artifact lookups and uploads through a connected pycti helper."""

    def __init__(self, helper: Any, timeout: float = 600.0) -> None:
        self.helper = helper
        self.timeout = timeout

    def find(self, hashes: dict[str, str]) -> dict[str, Any] | None:
        """An Artifact OpenCTI already holds with one of these hashes, or ``None``."""
        for name, value in hashes.items():
            found = self.helper.api.stix_cyber_observable.list(
                types=["Artifact"], first=1,
                filters={"mode": "and", "filterGroups": [],
                         "filters": [{"key": f"hashes.{name}", "values": [value], "operator": "eq", "mode": "or"}]},
            )
            if found:
                return found[0]
        return None

    def upload(self, sample: Sample, *, name: str, description: str, author_id: str | None,
               markings: Iterable[str]) -> dict[str, Any]:
        """Upload ``sample`` as an Artifact; returns OpenCTI's Artifact (``standard_id``…)."""
        api = self.helper.api
        variables = {"file": None, "x_opencti_description": description, "createdBy": author_id,
                     "objectMarking": list(markings) or None, "objectLabel": None}
        with open(sample.path, "rb") as handle:
            body = MultipartEncoder(fields=[
                ("operations", json.dumps({"query": _IMPORT, "variables": variables})),
                ("map", json.dumps({"0": ["variables.file"]})),
                ("0", (name, handle, sample.mime_type)),
            ])
            headers = {k: v for k, v in api.request_headers.items() if k.lower() != "content-type"}
            headers["Content-Type"] = body.content_type
            try:
                response = requests.post(api.api_url, data=body, headers=headers, verify=api.ssl_verify,
                                         timeout=(10, self.timeout))
            except requests.RequestException as exc:
                raise OpenCTIError(f"uploading the Artifact {sample.sha256} to OpenCTI failed: {exc}") from None
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        artifact = (answer.get("data") or {}).get("artifactImport")
        if response.status_code != 200 or not artifact:
            errors = "; ".join(str(e.get("message")) for e in answer.get("errors") or []) or response.text[:200]
            raise OpenCTIError(f"OpenCTI refused the Artifact {sample.sha256} (HTTP {response.status_code}: {errors})")
        return artifact
