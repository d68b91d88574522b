"""Testing a plugin: register it for one test, build an isolated app, enrich offline.

Example (a third-party plugin's test)::

    from vtframework.testing import enrich_offline, plugin_app

    def test_my_plugin_adds_a_note():
        with plugin_app(my_plugin) as app:
            result = enrich_offline(app, "4bc00f7d638e042da764e8648c03c0db46700599dd4f08d117e3e9e8b538519b")
        assert result.ok and not result.plugin_errors, result.message
        assert any(obj["type"] == "note" for obj in result.objects)

With pytest, the ``vtf_enrich`` fixture does the same in one line (see
:mod:`vtframework.testing.pytest_plugin`).
"""

from __future__ import annotations

import contextlib
import tempfile
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable, Iterator, Mapping

from vtframework.context import EnrichmentResult
from vtframework.host.app import App, build_app
from vtframework.host.config import parse_list
from vtframework.host.plugins import ENTRY_POINT_GROUP
from vtframework.host.services import open_app_state, open_client
from vtframework.pipeline.enrich import Pipeline
from vtframework.state import StateStore
from vtframework.stix.observables import from_value
from vtframework.testing.fakevt import FakeVirusTotal

#: Real VirusTotal responses shipped with vtframework (the ``--replay`` recordings).
RECORDINGS_DIR = Path(__file__).resolve().parent.parent / "replay"

#: Extra answers for the fake VirusTotal: API path (``/domains/x/resolutions``) -> JSON body,
#: or ``(status, body)`` for an answer other than 200.
Routes = Mapping[str, Any]


@contextlib.contextmanager
def plugin_app(
    plugin: Any = None,
    *,
    name: str | None = None,
    preset: str | None = "virustotal",
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    installed: bool = False,
) -> Iterator[App]:
    """An :class:`App` with the built-ins plus ``plugin``, for this block only.

    The app sees only ``env`` (not the process environment) and no
    ``config.yml`` unless one is given, and it loads no installed third-party
    plugin unless ``installed=True``: what the test sees is the built-ins and
    the plugin under test, whatever else is installed. A ``plugin`` that owns an
    entity type a built-in owns takes it over (that built-in is disabled).

    :param name: the plugin's name (default: its entry-point name when it is
        installed, else its module's last name).
    """
    env = dict(env or {})
    extra: list[tuple[str, Any]] = []
    if plugin is not None:
        taken = _builtins_replaced_by(plugin, preset, env, config_file, installed)
        if taken:
            env["VTF_DISABLE_PLUGINS"] = ",".join([*parse_list(env.get("VTF_DISABLE_PLUGINS")), *taken])
        extra = [(name or plugin_name(plugin), plugin)]
    yield build_app(preset, env=env, extra_plugins=extra, config_file=config_file, external_plugins=installed)


def plugin_name(plugin: Any) -> str:
    """How a plugin is called: its entry-point name when installed, else its module's last name."""
    if not isinstance(plugin, ModuleType):
        return "test-plugin"
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry_point.value == plugin.__name__:
            return entry_point.name
    return plugin.__name__.rsplit(".", 1)[-1]


def _builtins_replaced_by(
    plugin: Any, preset: str | None, env: Mapping[str, str], config_file: Path | None, installed: bool
) -> list[str]:
    declare = getattr(plugin, "vtf_observable_types", None)
    try:
        types = list(declare() or []) if callable(declare) else []
    except Exception:  # the app's load reports the failure with the plugin's name
        return []
    if not types:
        return []
    base = build_app(preset, env=env, config_file=config_file, external_plugins=installed)
    owners = (base.host.owner_of(entity_type) for entity_type in types)
    return sorted({owner for owner in owners if owner is not None})


def serve_routes(fake: FakeVirusTotal, routes: Routes | None) -> None:
    """Make ``fake`` answer each GET ``path`` of ``routes`` with its body (or ``(status, body)``)."""
    for path, answer in (routes or {}).items():
        status, body = answer if isinstance(answer, tuple) else (200, answer)
        fake.add_route("GET", path, status, body)


def client_for(app: App, fake: FakeVirusTotal, state: StateStore, **overrides: Any) -> Any:
    """A real, started client of ``app`` talking to ``fake``, with no quota to respect."""
    settings: dict[str, Any] = dict(
        base_url=fake.base_url, api_key="test", detect_quota=False,
        requests_per_minute=100_000, requests_per_day=1_000_000,
    )
    settings.update(overrides)
    client = open_client(app, state, **settings)
    client.fake = fake  # lets a test read the fake's request log
    return client


@contextlib.contextmanager
def offline_client(
    app: App,
    samples_dir: str | Path | Iterable[str | Path] | None = None,
    *,
    routes: Routes | None = None,
    **overrides: Any,
) -> Iterator[Any]:
    """A real client against a local fake VirusTotal serving recorded responses.

    :param samples_dir: directories of recorded answers (default: the ones
        vtframework ships, :data:`RECORDINGS_DIR`); every ``{"data": {"type",
        "id"}}`` object in them is served at its collection.
    :param routes: extra answers, ``{path: body}`` (see :data:`Routes`).
    """
    with FakeVirusTotal() as fake, tempfile.TemporaryDirectory() as state_dir:
        for directory in _directories(samples_dir):
            fake.load_samples(str(directory))
        serve_routes(fake, routes)
        state = open_app_state(app, state_dir)
        try:
            with client_for(app, fake, state, **overrides) as client:
                yield client
        finally:
            state.close()


def _directories(samples_dir: str | Path | Iterable[str | Path] | None) -> list[str | Path]:
    if samples_dir is None:
        return [RECORDINGS_DIR]
    if isinstance(samples_dir, (str, Path)):
        return [samples_dir]
    return list(samples_dir)


def enrich_offline(
    app: App,
    value: str,
    entity_type: str | None = None,
    tlp: str = "TLP:AMBER",
    samples_dir: str | Path | Iterable[str | Path] | None = None,
    *,
    routes: Routes | None = None,
    strict: bool = False,
) -> EnrichmentResult:
    """Enrich one value against the recorded responses (and ``routes``).

    :param strict: fail the enrichment when a plugin fails, as
        ``vtframework enrich --strict`` does.
    """
    with offline_client(app, samples_dir, routes=routes) as client:
        return Pipeline(app, client, strict=strict).enrich(from_value(value, entity_type, tlp=tlp))
