"""Livehunt: YARA indicators with detection=true become VirusTotal Livehunt rulesets."""

from vtframework import hookimpl

from vtframework_plugins.livehunt.command import COMMAND
from vtframework_plugins.livehunt.handler import Livehunt
from vtframework_plugins.livehunt.indicator import is_yara_indicator
from vtframework_plugins.livehunt.settings import KEYS


@hookimpl
def vtf_config_keys():
    return KEYS


@hookimpl
def vtf_stream_event(event, context, settings):
    if not is_yara_indicator(event.data):
        return None
    return Livehunt(context.client, context.state, settings, context.log).handle(event)


@hookimpl
def vtf_cli_commands():
    return [COMMAND]
