"""Crowdsourced IDS rules: the Snort and Suricata rules that fired while VirusTotal's sandboxes ran a file.

Each rule becomes an Indicator carrying its exact text (``pattern_type``
``snort`` or ``suricata`` after its ruleset), scored by its severity and
``related-to`` the file, as crowdsourced YARA rules are. What the alerts saw
(remote addresses, ports, hostnames, URLs, JA3 fingerprints) becomes
observables of the file; every alert is summarised in a note. Read from the
file report: no extra request.
"""

from __future__ import annotations

from vtframework import hookimpl

from vtframework_plugins.ids.converter import ids_objects
from vtframework_plugins.ids.settings import KEYS


@hookimpl
def vtf_config_keys():
    return KEYS


@hookimpl
def vtf_stix_objects(report, context, settings):
    if not settings["virustotal.file_import_ids"]:
        return None
    return ids_objects(context, report)
