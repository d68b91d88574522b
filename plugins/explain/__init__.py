"""Why this score: a short note on every enrichment an analyst can defend or challenge the score with.

It names how the score was made (the engines' ratio, or Google Threat
Intelligence's threat score when the key has it), what argues for and against
it in the report (engines and their verdicts, the GTI assessment and its
contributing factors, the crowdsourced YARA, Sigma and IDS rules that matched,
the sandboxes' verdicts and whether they disagree, the threat severity), the
threshold the indicator rule used, and the reasons other plugins give through
``vtf_score_reasons``. Read from the report: no extra request. When another
plugin explains GTI's contributing factors one by one (reasons from the
source "GTI contributing factors", as the ``gti`` plugin gives), their
one-line summary is left out.
"""

from __future__ import annotations

from vtframework import hookimpl

from vtframework_plugins.explain.converter import explain_objects
from vtframework_plugins.explain.settings import KEYS


@hookimpl
def vtf_config_keys():
    return KEYS


@hookimpl
def vtf_stix_objects(report, context, settings):
    if not settings["virustotal.explain_score"]:
        return None
    return explain_objects(context, report)
