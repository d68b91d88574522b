"""Testing a plugin: register it for one test, build an isolated app, enrich offline.

Example (a third-party plugin's test)::

    from vtframework.testing import enrich_offline, plugin_app

    def test_my_plugin_adds_a_note():
        with plugin_app(my_plugin, name="mine") as app:
            result = enrich_offline(app, "4bc00f7d638e042da764e8648c03c0db46700599dd4f08d117e3e9e8b538519b")
        assert result.ok
        assert any(obj["type"] == "note" for obj in result.objects)
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

from vtframework.context import EnrichmentResult
from vtframework.host.app import App, build_app
from vtframework.host.services import open_app_state, open_client
from vtframework.pipeline.enrich import Pipeline
from vtframework.stix.observables import from_value
from vtframework.testing.fakevt import FakeVirusTotal

#: Real VirusTotal responses shipped with vtframework (the ``--replay`` recordings).
RECORDINGS_DIR = Path(__file__).resolve().parent.parent / "replay"


@contextlib.contextmanager
def plugin_app(
    plugin: Any = None,
    *,
    name: str = "test-plugin",
    preset: str | None = "virustotal",
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Iterator[App]:
    """An :class:`App` with ``plugin`` registered for this block only.

    The app sees only ``env`` (not the process environment) and no
    ``config.yml`` unless one is given, so tests do not leak into each other.
    """
    extra = [(name, plugin)] if plugin is not None else []
    yield build_app(preset, env=dict(env or {}), extra_plugins=extra, config_file=config_file)


@contextlib.contextmanager
def offline_client(app: App, samples_dir: str | Path | None = None, **overrides: Any) -> Iterator[Any]:
    """A real client against a local fake VirusTotal serving recorded responses."""
    with FakeVirusTotal(str(samples_dir or RECORDINGS_DIR)) as fake, tempfile.TemporaryDirectory() as state_dir:
        settings: dict[str, Any] = dict(
            base_url=fake.base_url, api_key="test", detect_quota=False,
            requests_per_minute=100_000, requests_per_day=1_000_000,
        )
        settings.update(overrides)
        client = open_client(app, open_app_state(app, state_dir), **settings)
        client.fake = fake  # lets a test read the fake's request log
        with client:
            yield client


def enrich_offline(
    app: App, value: str, entity_type: str | None = None, tlp: str = "TLP:AMBER", samples_dir: str | Path | None = None
) -> EnrichmentResult:
    """Enrich one value against the recorded responses."""
    with offline_client(app, samples_dir) as client:
        return Pipeline(app, client).enrich(from_value(value, entity_type, tlp=tlp))
