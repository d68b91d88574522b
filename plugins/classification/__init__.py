"""Threat classification and sandbox verdicts: what VirusTotal and its sandboxes call a file.

The family most engines name (``popular_threat_classification``) becomes a
Malware the file is ``related-to`` when enough of them agree; the sandboxes'
verdicts (category, classification, malware names, confidence) and the
threat severity go into a note, the sandboxes' classifications into labels.
When the engines and the sandboxes disagree (59 engines say malicious, the
only sandbox says clean), the note says so first. Read from the report: no
extra request.
"""

from __future__ import annotations

from vtframework import hookimpl

from vtframework_plugins.classification.converter import classification_objects
from vtframework_plugins.classification.settings import KEYS


@hookimpl
def vtf_config_keys():
    return KEYS


@hookimpl
def vtf_stix_objects(report, context):
    return classification_objects(context, report)
