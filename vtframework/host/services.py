"""Building the shared services (state, VirusTotal client) from the settings."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from vtframework.errors import ConfigError
from vtframework.host.app import App
from vtframework.policy.egress import EgressPolicy
from vtframework.state import StateStore, open_state
from vtframework.vt.client import ClientConfig, VTClient

log = logging.getLogger("vtframework")


def open_app_state(app: App, state_dir: str | Path | None = None) -> StateStore:
    """The embedded SQLite state under ``VTF_STATE_DIR``, or Redis when ``VTF_REDIS_URL`` is set."""
    directory = Path(state_dir or app.settings["vtf.state_dir"])
    cap = app.settings["vtf.cache_max_mb"] << 20
    return open_state(str(directory), app.settings["vtf.redis_url"], cache_max_bytes=cap)


def egress_policy(app: App) -> EgressPolicy:
    """The egress policy of the settings; an invalid ``VIRUSTOTAL_MARKING_MAP`` stops start-up."""
    try:
        return EgressPolicy.from_settings(app.settings)
    except ValueError as exc:
        raise ConfigError(f"invalid VIRUSTOTAL_MARKING_MAP (virustotal.marking_map): {exc}",
                          key="virustotal.marking_map") from None


def tool_name() -> str:
    """The ``x-tool`` value: Google asks integrations for ``org.product.major.minor``.

    Without an ``x-tool`` header VirusTotal leaves Google Threat Intelligence's
    attributes (``gti_assessment``) out of its answers.
    """
    from importlib import metadata

    try:
        version = metadata.version("vtframework")
    except metadata.PackageNotFoundError:
        version = "0.0"
    major, _, rest = version.partition(".")
    minor = rest.partition(".")[0] or "0"
    return f"vtframework.opencti.{major}.{minor}"


def client_config(app: App, **overrides: Any) -> ClientConfig:
    settings = app.settings
    values: dict[str, Any] = dict(
        api_key=app.api_key or "",
        base_url=settings["virustotal.base_url"],
        connect_timeout=settings["virustotal.connect_timeout"],
        read_timeout=settings["virustotal.read_timeout"],
        request_deadline=settings["virustotal.request_deadline"],
        download_deadline=settings["virustotal.download_deadline"],
        max_answer_bytes=settings["virustotal.max_answer_size"],
        max_retries=settings["virustotal.max_retries"],
        max_quota_wait=settings["virustotal.max_quota_wait"],
        requests_per_minute=settings["virustotal.requests_per_minute"],
        requests_per_day=settings["virustotal.requests_per_day"],
        cache_ttl=settings["virustotal.cache_ttl"],
        not_found_ttl=settings["virustotal.not_found_ttl"],
        detect_quota=settings["virustotal.detect_quota"],
        tool=tool_name(),
        key_setting=app.api_key_env,
        egress=egress_policy(app),
        # Every request about an observable must be made inside its scope: no way around the policy.
        require_scope=True,
    )
    values.update(overrides)
    return ClientConfig(**values)


def open_client(app: App, state: StateStore, *, lazy: bool = True, **overrides: Any) -> VTClient:
    """A client ready for use.

    The key's real quota (``VIRUSTOTAL_DETECT_QUOTA``) is read just before
    the first request that reaches VirusTotal, so a run the cache answers
    makes none; ``lazy=False`` reads it now, which also proves the key is
    accepted (:class:`~vtframework.errors.AuthenticationError` otherwise).
    """
    client = VTClient(client_config(app, **overrides), state, logger=logging.getLogger("vtframework.client"))
    if lazy:
        client.start_lazily()
    else:
        try:
            client.start(fresh=True)
        except BaseException:
            client.close()
            raise
    return client
