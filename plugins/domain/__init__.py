"""Domain name and hostname enrichment: detections, score, notes, categories, indicators, resolutions."""

from vtframework import hookimpl

from vtframework_plugins.domain.settings import KEYS


@hookimpl
def vtf_config_keys():
    return KEYS


@hookimpl
def vtf_observable_types():
    return ["Domain-Name", "Hostname"]
