"""Google Threat Intelligence context: families, actors, campaigns, reports and techniques, one request.

With a GTI key and ``VIRUSTOTAL_IMPORT_GTI=true``, the lookup the file, IP,
domain or URL plugin makes anyway carries ``relationships=`` and
``relationship_attributes[…]`` for the relationships asked for
(``vtf_query_params``), so the malware families, threat actors, campaigns,
reports and (files) ATT&CK techniques come back in the same answer: no extra
request while each relationship fits in its first page. Further pages, and a
relationship the answer lacks, cost one request each within
``VIRUSTOTAL_GTI_MAX_REQUESTS``. They become Malware, Intrusion-Sets,
Campaigns, Reports and Attack-Patterns keyed as OpenCTI keys them
(``converter``). A relationship the key's licence does not grant is switched
off for the process with one warning; the enrichment keeps the rest.

The GTI verdict, severity and normalised categories become labels; what GTI
relates the object to and its contributing factors, in words, are reasons in
the "why this score" note (``vtf_score_reasons``).
"""

from __future__ import annotations

from vtframework import hookimpl

from vtframework_plugins.gti import relations
from vtframework_plugins.gti.converter import gti_objects, score_reasons
from vtframework_plugins.gti.settings import KEYS


@hookimpl
def vtf_config_keys():
    return KEYS


@hookimpl
def vtf_query_params(query, context, settings):
    if not settings["virustotal.import_gti"]:
        return None
    found = relations.object_of(query.path)
    licence = relations.licence(context.process_memo)
    if found is None or not licence.inline:
        return None
    return relations.query_params(r for r in relations.configured(found[0], settings) if licence.grants(r)) or None


@hookimpl
def vtf_stix_objects(report, context, settings):
    if not settings["virustotal.import_gti"]:
        return None
    return gti_objects(context, report)


@hookimpl
def vtf_score_reasons(report, context, settings):
    if not settings["virustotal.import_gti"]:
        return None
    return score_reasons(context, report)
