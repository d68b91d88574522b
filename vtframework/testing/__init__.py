"""Helpers for testing vtframework and its plugins without touching VirusTotal.

- :func:`plugin_app`: an isolated app with your plugin registered for one test;
- :func:`offline_client` / :func:`enrich_offline`: the real client and pipeline
  against :class:`FakeVirusTotal` serving recorded responses;
- :func:`default_vcr_config`: cassette settings that scrub the ``x-apikey`` header;
- :func:`assert_valid_bundle`: stix2 parses it and the OASIS validator passes it;
- :class:`FakeClock`: time that advances only when slept on.
"""

from vtframework.testing.clock import FakeClock
from vtframework.testing.fakevt import FakeVirusTotal, RecordedRequest
from vtframework.testing.plugins import RECORDINGS_DIR, enrich_offline, offline_client, plugin_app
from vtframework.testing.stix import assert_valid_bundle
from vtframework.testing.vcr import default_vcr_config

__all__ = [
    "FakeClock",
    "FakeVirusTotal",
    "RECORDINGS_DIR",
    "RecordedRequest",
    "assert_valid_bundle",
    "default_vcr_config",
    "enrich_offline",
    "offline_client",
    "plugin_app",
]
