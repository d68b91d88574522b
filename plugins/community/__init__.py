"""The VirusTotal community: the newest comments and votes on a file, IP, domain or URL.

The newest comments (``GET /{collection}/{id}/comments``, with their authors)
and the balance of the newest votes (``GET /{collection}/{id}/votes``; each
vote weighs its author's reputation, not just +1 or -1) go into a note;
comment authors become external references of the note and the comments'
``#tags`` labels. Two requests per observable, cached: off until
``VIRUSTOTAL_IMPORT_COMMUNITY`` turns it on. The vote balance is also a
reason in the "why this score" note.
"""

from __future__ import annotations

from vtframework import hookimpl

from vtframework_plugins.community.converter import community_objects, vote_reasons
from vtframework_plugins.community.settings import KEYS


@hookimpl
def vtf_config_keys():
    return KEYS


@hookimpl
def vtf_stix_objects(report, context, settings):
    if not settings["virustotal.import_community"]:
        return None
    return community_objects(context, report)


@hookimpl
def vtf_score_reasons(report, context, settings):
    if not settings["virustotal.import_community"]:
        return None
    return vote_reasons(context, report)
