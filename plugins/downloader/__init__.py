"""Sample downloader: fetches a StixFile's sample from VirusTotal into an OpenCTI Artifact."""

from __future__ import annotations

from vtframework import VTQuery, hookimpl, lookup_hash

from vtframework_plugins.downloader.command import COMMAND
from vtframework_plugins.downloader.settings import KEYS


@hookimpl
def vtf_config_keys():
    return KEYS


@hookimpl
def vtf_download_query(observable):
    if observable.entity_type != "StixFile":
        return None
    # SHA-256 > SHA-1 > MD5 from the hashes, never OpenCTI's display value (a SHA-512 breaks VirusTotal).
    _name, value = lookup_hash(observable, "have its sample downloaded")
    return VTQuery(path=f"/files/{value}/download", subject=f"StixFile {value}")


@hookimpl
def vtf_artifact_objects(observable, artifact, context):
    return [context.factory.relationship("related-to", observable.id, artifact["id"])]


@hookimpl
def vtf_cli_commands():
    return [COMMAND]
