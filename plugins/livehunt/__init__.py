"""Livehunt: YARA indicators with detection=true become VirusTotal Livehunt rulesets."""

from vtframework import hookimpl

from vtframework_plugins.livehunt.settings import KEYS


@hookimpl
def vtf_config_keys():
    return KEYS
