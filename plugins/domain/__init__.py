"""Domain name and hostname enrichment: detections, score, notes, categories, indicators, resolutions."""

from __future__ import annotations

from vtframework import VTQuery, hookimpl, subject_of

from vtframework_plugins.domain.converter import domain_objects
from vtframework_plugins.domain.settings import KEYS

TYPES = ("Domain-Name", "Hostname")


@hookimpl
def vtf_config_keys():
    return KEYS


@hookimpl
def vtf_observable_types():
    return list(TYPES)


@hookimpl
def vtf_vt_query(observable):
    # VirusTotal keeps hostnames in its domain collection.
    return VTQuery(path=f"/domains/{observable.value}", subject=subject_of(observable))


@hookimpl
def vtf_stix_objects(observable, report, context):
    return domain_objects(context, report)
