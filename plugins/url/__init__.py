"""URL enrichment: detections, score, notes, indicators, submission of unseen URLs."""

from __future__ import annotations

from vtframework import VTQuery, hookimpl, subject_of

from vtframework_plugins.url.converter import url_objects
from vtframework_plugins.url.query import url_query
from vtframework_plugins.url.settings import KEYS
from vtframework_plugins.url.upload import submit_and_wait

TYPES = ("Url",)


@hookimpl
def vtf_config_keys():
    return KEYS


@hookimpl
def vtf_observable_types():
    return list(TYPES)


@hookimpl
def vtf_vt_query(observable):
    path, params = url_query(observable.value)
    return VTQuery(path=path, params=params, subject=subject_of(observable))


@hookimpl
def vtf_report_not_found(observable, context, settings):
    return submit_and_wait(context, settings)


@hookimpl
def vtf_stix_objects(observable, report, context):
    return url_objects(context, report)
