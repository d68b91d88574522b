"""URL enrichment: detections, score, notes, indicators, submission of unseen URLs."""

from vtframework import hookimpl

from vtframework_plugins.url.settings import KEYS


@hookimpl
def vtf_config_keys():
    return KEYS


@hookimpl
def vtf_observable_types():
    return ["Url"]
