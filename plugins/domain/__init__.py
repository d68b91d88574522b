"""Domain name and hostname enrichment: detections, score, notes, categories, indicators, resolutions."""

from __future__ import annotations

from vtframework import VTQuery, ascii_domain, hookimpl, subject_of

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
    # VirusTotal keeps hostnames in its domain collection, internationalised ones by their punycode name.
    return VTQuery(path=f"/domains/{ascii_domain(observable.value)}", subject=subject_of(observable))


@hookimpl
def vtf_stix_objects(observable, report, context):
    return domain_objects(context, report)
