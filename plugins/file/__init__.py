"""StixFile and Artifact enrichment: detections, score, notes, indicators, YARA, uploads."""

from __future__ import annotations

from vtframework import VTQuery, hookimpl, lookup_hash

from vtframework_plugins.file.converter import file_objects
from vtframework_plugins.file.settings import KEYS
from vtframework_plugins.file.upload import upload_and_wait

TYPES = ("StixFile", "Artifact")


@hookimpl
def vtf_config_keys():
    return KEYS


@hookimpl
def vtf_observable_types():
    return list(TYPES)


@hookimpl
def vtf_vt_query(observable):
    _name, value = lookup_hash(observable, "be enriched")
    return VTQuery(path=f"/files/{value}", subject=f"{observable.entity_type} {value}")


@hookimpl
def vtf_report_not_found(observable, context, settings):
    _name, value = lookup_hash(observable, "be enriched")
    return upload_and_wait(context, value, settings)


@hookimpl
def vtf_stix_objects(observable, report, context):
    return file_objects(context, report)
