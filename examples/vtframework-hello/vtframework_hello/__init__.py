"""A minimal third-party vtframework plugin.

It declares one configuration key (``hello.greeting``, environment variable
``HELLO_GREETING``) and adds one STIX Note to every enrichment. Objects come
from ``context.factory``, so they carry the VirusTotal author, the
observable's markings and a deterministic id like everything else.
"""

from vtframework import ConfigKey, hookimpl


@hookimpl
def vtf_config_keys():
    return [ConfigKey("hello.greeting", "str", "Hello from vtframework-hello", "Text of the greeting note.")]


@hookimpl
def vtf_stix_objects(observable, context, settings):
    return [
        context.factory.note(
            abstract="vtframework-hello",
            content=f"{settings['hello.greeting']} ({observable.entity_type} {observable.value})",
            refs=[observable.id],
        )
    ]
