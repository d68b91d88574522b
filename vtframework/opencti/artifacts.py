"""Artifacts in OpenCTI: find one by hash, upload one streamed from disk, stored byte for byte.

pycti's ``upload_artifact`` builds the whole multipart body in memory (twice
the sample); this uploader streams the same GraphQL multipart request
(``artifactImport``) from the file, so memory stays flat whatever the size.

The platform's ``artifactImport`` opens every upload as a ZIP (with its
``app:artifact_zip_password``) and, when that works, stores the archive's
first entry instead of the upload. A sample that is itself a ZIP container
(zip, jar, apk, and Office documents on platforms that do not exempt them)
would be stored as one of its members. Such a sample is uploaded inside a ZIP
of its own, whose one entry is the sample: the platform's extraction gives
back the sample itself, on every version. The hashes the platform returns are
checked against the sample's.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Iterable, Iterator

import requests
from requests_toolbelt.multipart.encoder import MultipartEncoder

from vtframework.errors import VTFrameworkError
from vtframework.pipeline.download import Sample, sha256_of
from vtframework.stix.observables import best_hash

_IMPORT = """
mutation ArtifactImport($file: Upload!, $x_opencti_description: String, $createdBy: String,
                        $objectMarking: [String], $objectLabel: [String]) {
  artifactImport(file: $file, x_opencti_description: $x_opencti_description, createdBy: $createdBy,
                 objectMarking: $objectMarking, objectLabel: $objectLabel) {
    id
    standard_id
    entity_type
    hashes {
      algorithm
      hash
    }
  }
}
"""
#: What a lookup reads of an Artifact: enough to link to it and to know its SHA-256.
_FOUND_FIELDS = """
    id
    standard_id
    entity_type
    ... on Artifact {
      hashes {
        algorithm
        hash
      }
    }
"""


class OpenCTIError(VTFrameworkError):
    """OpenCTI refused or failed an operation; the message says which."""


def upload_name(name: str, fallback: str) -> str:
    """A file name the platform can store: no directories, no control characters, not empty."""
    base = os.path.basename(name.replace("\\", "/")).strip()
    base = "".join(c for c in base if c.isprintable() and c not in '"')[:200]
    return base if base not in ("", ".", "..") else fallback


@contextlib.contextmanager
def upload_form(sample: Sample, name: str) -> Iterator[tuple[Path, str, str]]:
    """``(file, upload name, MIME type)`` to upload so that the platform stores ``sample`` byte for byte."""
    if not zipfile.is_zipfile(sample.path):
        yield sample.path, name, sample.mime_type
        return
    handle = tempfile.NamedTemporaryFile(prefix="vtf-artifact-", suffix=".zip", delete=False)
    wrapper = Path(handle.name)
    try:
        with handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            archive.write(sample.path, arcname=name)  # streamed from disk in chunks
        # Named .zip: an upload named .docx is exempt from extraction on recent platforms.
        yield wrapper, f"{name}.zip", "application/zip"
    finally:
        wrapper.unlink(missing_ok=True)


class OpenCTIArtifacts:
    """Artifact lookups and uploads through a connected pycti helper."""

    def __init__(self, helper: Any, timeout: float = 600.0) -> None:
        self.helper = helper
        self.timeout = timeout

    def find(self, hashes: dict[str, str]) -> dict[str, Any] | None:
        """The Artifact OpenCTI already holds with the best of these hashes (SHA-256 first), or ``None``.

        The platform computes every hash of what it stores, so the best hash
        the file carries finds it; the displayed value is never compared.
        """
        best = best_hash(hashes)
        if best is None:
            return None
        name, value = best
        found = self.helper.api.stix_cyber_observable.list(
            types=["Artifact"], first=1, customAttributes=_FOUND_FIELDS,
            filters={"mode": "and", "filterGroups": [],
                     "filters": [{"key": f"hashes.{name}", "values": [value], "operator": "eq", "mode": "or"}]},
        )
        return found[0] if found else None

    def upload(self, sample: Sample, *, name: str, description: str, author_id: str | None,
               markings: Iterable[str]) -> dict[str, Any]:
        """Upload ``sample`` as an Artifact; returns OpenCTI's Artifact (``standard_id``, ``hashes``…).

        :raises OpenCTIError: when the platform refuses it, or stores other bytes than the sample's.
        """
        api = self.helper.api
        variables = {"file": None, "x_opencti_description": description, "createdBy": author_id,
                     "objectMarking": list(markings) or None, "objectLabel": None}
        name = upload_name(name, sample.sha256)
        with upload_form(sample, name) as (path, filename, mime_type), open(path, "rb") as handle:
            body = MultipartEncoder(fields=[
                ("operations", json.dumps({"query": _IMPORT, "variables": variables})),
                ("map", json.dumps({"0": ["variables.file"]})),
                ("0", (filename, handle, mime_type)),
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
        artifact = (answer.get("data") or {}).get("artifactImport") if isinstance(answer, dict) else None
        if response.status_code != 200 or not isinstance(artifact, dict):
            errors = "; ".join(str(e.get("message")) for e in (answer or {}).get("errors") or []
                               if isinstance(e, dict)) or response.text[:200]
            raise OpenCTIError(f"OpenCTI refused the Artifact {sample.sha256} (HTTP {response.status_code}: {errors})")
        stored = sha256_of(artifact)
        if stored != sample.sha256:
            raise OpenCTIError(
                f"OpenCTI stored another file than the sample {sample.sha256} (its SHA-256 is {stored}): "
                "check the platform's artifact import"
            )
        return artifact
