"""Crowdsourced Sigma rules: the Sigma rules that matched the events of a file's sandbox runs.

Every matching rule and the events it matched are summarised in a note, read
from the file report (no request). With ``VIRUSTOTAL_FILE_IMPORT_SIGMA`` on,
each rule also becomes an Indicator (``pattern_type`` ``sigma``, the pattern a
Sigma YAML rule rebuilt from ``GET /sigma_rules/{id}``, once per rule per cache
TTL) ``related-to`` the file, as crowdsourced YARA rules are, that
``indicates`` the ATT&CK techniques the rule is tagged with.
"""

from __future__ import annotations

from vtframework import hookimpl

from vtframework_plugins.sigma.converter import sigma_objects
from vtframework_plugins.sigma.settings import KEYS


@hookimpl
def vtf_config_keys():
    return KEYS


@hookimpl
def vtf_stix_objects(report, context):
    return sigma_objects(context, report)
