"""vtframework's pytest plugin: fixtures to test a vtframework plugin, offline.

Installed with vtframework (the ``pytest11`` entry point), so a plugin's tests
need no conftest::

    import my_plugin

    def test_my_plugin_adds_its_note(vtf_enrich):
        result = vtf_enrich("4bc00f7d638e042da764e8648c03c0db46700599dd4f08d117e3e9e8b538519b", plugin=my_plugin)
        assert result.ok and not result.plugin_errors, result.message

Fixtures:

- ``vtf_fake_vt``: a :class:`~vtframework.testing.FakeVirusTotal` on
  127.0.0.1 serving the real answers vtframework ships (files, IPs, domains,
  URLs); add your own with ``load_samples``, ``add_object``, ``add_route``.
- ``vtf_app``: an isolated app with the built-ins plus the ``vtf_plugin``
  fixture's plugin, seeing only the ``vtf_env`` fixture's environment
  (override either fixture to change them; both are empty by default).
- ``vtf_enrich``: ``vtf_enrich(value, *, plugin=None, env=None,
  entity_type=None, tlp="TLP:AMBER", routes=None, strict=False)`` enriches one
  value through the real client and pipeline against ``vtf_fake_vt`` and
  returns the :class:`~vtframework.EnrichmentResult`. ``plugin``/``env``
  build an app of their own instead of ``vtf_app``; ``routes`` adds answers
  (``{path: body}``) for follow-up requests.

With pytest-recording's ``--block-network``, connections to the loopback
address stay allowed, so the fake services keep working; every other host is
still blocked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from vtframework.context import EnrichmentResult
    from vtframework.host.app import App
    from vtframework.testing.fakevt import FakeVirusTotal

def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.has_plugin("recording"):
        # Registered now, after every installed plugin, so this allowed_hosts overrides
        # pytest-recording's own; a project's conftest can still override it.
        from vtframework.testing import pytest_network

        config.pluginmanager.register(pytest_network, "vtframework-loopback")


@pytest.fixture
def vtf_plugin() -> Any:
    """The plugin under test; override this fixture to return your plugin module."""
    return None


@pytest.fixture
def vtf_env() -> Mapping[str, str]:
    """The only environment ``vtf_app`` sees; override it to set configuration keys."""
    return {}


@pytest.fixture
def vtf_app(vtf_plugin: Any, vtf_env: Mapping[str, str]) -> Iterator["App"]:
    """The built-ins plus ``vtf_plugin``: no installed plugin, no config.yml, only ``vtf_env``."""
    from vtframework.testing.plugins import plugin_app

    with plugin_app(vtf_plugin, env=vtf_env) as app:
        yield app


@pytest.fixture
def vtf_fake_vt() -> Iterator["FakeVirusTotal"]:
    """A fake VirusTotal on 127.0.0.1 serving the real answers vtframework ships."""
    from vtframework.testing.fakevt import FakeVirusTotal
    from vtframework.testing.plugins import RECORDINGS_DIR

    with FakeVirusTotal(str(RECORDINGS_DIR)) as fake:
        yield fake


@pytest.fixture
def vtf_enrich(
    vtf_app: "App", vtf_fake_vt: "FakeVirusTotal", tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., "EnrichmentResult"]]:
    """Enrich one value offline: ``vtf_enrich(value, plugin=..., routes=...)`` (see the module docs)."""
    from vtframework.host.services import open_app_state
    from vtframework.pipeline.enrich import Pipeline
    from vtframework.stix.observables import from_value
    from vtframework.testing.plugins import client_for, plugin_app, serve_routes

    # One state for the whole test: a repeated lookup is a cache hit, as in production.
    state = open_app_state(vtf_app, tmp_path_factory.mktemp("vtf-state"))

    def enrich(
        value: str,
        *,
        plugin: Any = None,
        env: Mapping[str, str] | None = None,
        entity_type: str | None = None,
        tlp: str = "TLP:AMBER",
        routes: Mapping[str, Any] | None = None,
        strict: bool = False,
    ) -> "EnrichmentResult":
        serve_routes(vtf_fake_vt, routes)
        observable = from_value(value, entity_type, tlp=tlp)
        if plugin is None and env is None:
            return _run(vtf_app, observable, strict)
        with plugin_app(plugin, env=env) as app:
            return _run(app, observable, strict)

    def _run(app: "App", observable: Any, strict: bool) -> "EnrichmentResult":
        with client_for(app, vtf_fake_vt, state) as client:
            return Pipeline(app, client, strict=strict).enrich(observable)

    yield enrich
    state.close()
