"""Building the shared services (state, VirusTotal client) from the settings."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from vtframework import __name__ as _package
from vtframework.host.app import App
from vtframework.state import StateStore, open_state
from vtframework.vt.client import ClientConfig, VTClient

log = logging.getLogger("vtframework")


def open_app_state(app: App, state_dir: str | Path | None = None) -> StateStore:
    """The embedded SQLite state under ``VTF_STATE_DIR``, or Redis when ``VTF_REDIS_URL`` is set."""
    directory = Path(state_dir or app.settings["vtf.state_dir"])
    directory.mkdir(parents=True, exist_ok=True)
    return open_state(str(directory), app.settings["vtf.redis_url"])


def client_config(app: App, **overrides: Any) -> ClientConfig:
    settings = app.settings
    values: dict[str, Any] = dict(
        api_key=app.api_key or "",
        base_url=settings["virustotal.base_url"],
        connect_timeout=settings["virustotal.connect_timeout"],
        read_timeout=settings["virustotal.read_timeout"],
        max_retries=settings["virustotal.max_retries"],
        max_quota_wait=settings["virustotal.max_quota_wait"],
        requests_per_minute=settings["virustotal.requests_per_minute"],
        requests_per_day=settings["virustotal.requests_per_day"],
        cache_ttl=settings["virustotal.cache_ttl"],
        not_found_ttl=settings["virustotal.not_found_ttl"],
        detect_quota=settings["virustotal.detect_quota"],
        tool=f"{_package} {settings['connector.id'] or ''}".strip(),
        key_setting=app.api_key_env,
    )
    values.update(overrides)
    return ClientConfig(**values)


def open_client(app: App, state: StateStore, **overrides: Any) -> VTClient:
    """A started client: the key's real quota is read when ``VIRUSTOTAL_DETECT_QUOTA`` is on."""
    client = VTClient(client_config(app, **overrides), state, logger=logging.getLogger("vtframework.client"))
    client.start()
    return client
