"""IPv4 and IPv6 address enrichment: detections, score, notes, indicators, AS and country."""

from vtframework import hookimpl

from vtframework_plugins.ip.settings import KEYS


@hookimpl
def vtf_config_keys():
    return KEYS


@hookimpl
def vtf_observable_types():
    return ["IPv4-Addr", "IPv6-Addr"]
