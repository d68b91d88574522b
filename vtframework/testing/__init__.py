"""Helpers for testing vtframework and its plugins without touching VirusTotal.

- :func:`plugin_app`: an isolated app, the built-ins plus your plugin, for one test;
- :func:`offline_client` / :func:`enrich_offline`: the real client and pipeline
  against :class:`FakeVirusTotal` serving recorded responses (and extra ``routes``);
  :class:`FakeGTI` answers as VirusTotal does for a Google Threat Intelligence key
  (relationships in the lookup, their pages, ``gti_assessment``, licences);
- the pytest fixtures ``vtf_app``, ``vtf_fake_vt`` and ``vtf_enrich``
  (:mod:`vtframework.testing.pytest_plugin`, installed with vtframework);
- :func:`default_vcr_config`: cassette settings that scrub the ``x-apikey`` header;
- :func:`assert_valid_bundle`: stix2 parses it and the OASIS validator passes it;
- :func:`import_offline` / :class:`MemoryOpenCTI`: one run of the import plugins
  (``vtf_import``) against an in-memory OpenCTI;
- :func:`enrich_checked`, :func:`objects_of`, :func:`notes_by_abstract`,
  :func:`relationship_triples`, :func:`assert_stamped`, :func:`assert_repeat_is_free`:
  reading and checking an enrichment's result;
- :class:`FakeClock`: time that advances only when slept on.

Names are loaded on first use, so the pytest plugin costs nothing in test runs
that do not use them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY: dict[str, str] = {
    "FakeClock": "vtframework.testing.clock",
    "FakeGTI": "vtframework.testing.fakegti",
    "FakeVirusTotal": "vtframework.testing.fakevt",
    "MemoryOpenCTI": "vtframework.testing.importing",
    "import_offline": "vtframework.testing.importing",
    "RecordedRequest": "vtframework.testing.fakevt",
    "RECORDINGS_DIR": "vtframework.testing.plugins",
    "enrich_offline": "vtframework.testing.plugins",
    "offline_client": "vtframework.testing.plugins",
    "plugin_app": "vtframework.testing.plugins",
    "plugin_name": "vtframework.testing.plugins",
    "assert_repeat_is_free": "vtframework.testing.results",
    "assert_stamped": "vtframework.testing.results",
    "enrich_checked": "vtframework.testing.results",
    "notes_by_abstract": "vtframework.testing.results",
    "objects_of": "vtframework.testing.results",
    "relationship_triples": "vtframework.testing.results",
    "assert_valid_bundle": "vtframework.testing.stix",
    "default_vcr_config": "vtframework.testing.vcr",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'vtframework.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from vtframework.testing.clock import FakeClock
    from vtframework.testing.fakegti import FakeGTI
    from vtframework.testing.fakevt import FakeVirusTotal, RecordedRequest
    from vtframework.testing.importing import MemoryOpenCTI, import_offline
    from vtframework.testing.plugins import RECORDINGS_DIR, enrich_offline, offline_client, plugin_app, plugin_name
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

__all__ = sorted(_LAZY)
