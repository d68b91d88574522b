"""IPv4 and IPv6 address enrichment: detections, score, notes, indicators, AS and country."""

from __future__ import annotations

from vtframework import VTQuery, hookimpl, subject_of

from vtframework_plugins.ip.converter import ip_objects
from vtframework_plugins.ip.settings import KEYS

TYPES = ("IPv4-Addr", "IPv6-Addr")


@hookimpl
def vtf_config_keys():
    return KEYS


@hookimpl
def vtf_observable_types():
    return list(TYPES)


@hookimpl
def vtf_vt_query(observable):
    return VTQuery(path=f"/ip_addresses/{observable.value}", subject=subject_of(observable))


@hookimpl
def vtf_stix_objects(observable, report, context):
    return ip_objects(context, report)
