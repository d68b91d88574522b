"""A minimal third-party vtframework plugin.

It declares one configuration key (``hello.greeting``, environment variable
``HELLO_GREETING``) and adds one STIX Note to every enrichment. Objects come
from ``context.factory``, so they carry the VirusTotal author, the
observable's markings and a deterministic id like everything else.
"""

from typing import Any

from vtframework import ConfigKey, EnrichmentContext, Observable, Settings, hookimpl


@hookimpl
def vtf_config_keys() -> list[ConfigKey]:
    return [ConfigKey("hello.greeting", "str", "Hello from vtframework-hello", "Text of the greeting note.")]


@hookimpl
def vtf_stix_objects(observable: Observable, context: EnrichmentContext, settings: Settings) -> list[Any]:
    return [
        context.factory.note(
            abstract="vtframework-hello",
            content=f"{settings['hello.greeting']} ({observable.entity_type} {observable.value})",
            # The enriched object: the observable, or the Indicator an enrichment came through.
            refs=[context.target_id],
        )
    ]
