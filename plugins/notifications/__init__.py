"""Livehunt notifications: what VirusTotal's Livehunt rulesets matched, imported into OpenCTI.

Each notification becomes the matched file (or URL, domain, IP address) and an
alert; a match of a ruleset vtframework made for an OpenCTI YARA indicator
becomes a Sighting of that very indicator. Runs as ``vtframework run
notifications``, the external-import connector that replaces
``connector-virustotal-livehunt-notifications``.
"""

from vtframework import hookimpl

from vtframework_plugins.notifications.importer import run_import
from vtframework_plugins.notifications.settings import KEYS


@hookimpl
def vtf_config_keys():
    return KEYS


@hookimpl
def vtf_import(context, settings):
    return run_import(context, settings)
