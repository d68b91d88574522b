"""Crowdsourced context: what threat feeds shared with VirusTotal say about an observable.

VirusTotal's ``crowdsourced_context`` (seen on IP addresses: "AsyncRAT botnet
C2 server", from a ThreatFox feed) goes into a note, newest first, and each
entry is a reason in the "why this score" note. Read from the report: no
extra request.
"""

from __future__ import annotations

from vtframework import hookimpl

from vtframework_plugins.crowdsourced_context.converter import context_entries, context_note, score_reasons
from vtframework_plugins.crowdsourced_context.settings import KEYS


@hookimpl
def vtf_config_keys():
    return KEYS


@hookimpl
def vtf_stix_objects(report, context, settings):
    entries = context_entries(context, report, settings["virustotal.crowdsourced_context_max_entries"])
    return context_note(context, entries)


@hookimpl
def vtf_score_reasons(report, context, settings):
    return score_reasons(context_entries(None, report, settings["virustotal.crowdsourced_context_max_entries"]))
