"""Helpers for testing vtframework and its plugins without touching VirusTotal.

- :func:`plugin_app`: an isolated app with your plugin registered for one test;
- :func:`offline_client` / :func:`enrich_offline`: the real client and pipeline
  against :class:`FakeVirusTotal` serving recorded responses;
- :func:`default_vcr_config`: cassette settings that scrub the ``x-apikey`` header;
- :func:`assert_valid_bundle`: stix2 parses it and the OASIS validator passes it;
- :func:`import_offline` / :class:`MemoryOpenCTI`: one run of the import plugins
  (``vtf_import``) against an in-memory OpenCTI;
- :func:`enrich_checked`, :func:`objects_of`, :func:`notes_by_abstract`,
  :func:`relationship_triples`, :func:`assert_stamped`, :func:`assert_repeat_is_free`:
  reading and checking an enrichment's result;
- :class:`FakeClock`: time that advances only when slept on.
"""

from vtframework.testing.clock import FakeClock
from vtframework.testing.fakevt import FakeVirusTotal, RecordedRequest
from vtframework.testing.importing import MemoryOpenCTI, import_offline
from vtframework.testing.plugins import RECORDINGS_DIR, enrich_offline, offline_client, plugin_app
from vtframework.testing.results import (
    assert_repeat_is_free,
    assert_stamped,
    enrich_checked,
    notes_by_abstract,
    objects_of,
    relationship_triples,
)
from vtframework.testing.stix import assert_valid_bundle
from vtframework.testing.vcr import default_vcr_config

__all__ = [
    "FakeClock",
    "FakeVirusTotal",
    "MemoryOpenCTI",
    "RECORDINGS_DIR",
    "RecordedRequest",
    "assert_repeat_is_free",
    "assert_stamped",
    "assert_valid_bundle",
    "default_vcr_config",
    "enrich_checked",
    "enrich_offline",
    "import_offline",
    "notes_by_abstract",
    "objects_of",
    "offline_client",
    "plugin_app",
    "relationship_triples",
]
