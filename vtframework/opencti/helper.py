"""pycti's connector helper, configured from our validated settings; what every runtime shares."""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Iterator

from vtframework.errors import (
    AuthenticationError,
    ConnectionFailed,
    QuotaExceededError,
    RequestTimeout,
    TooManyRequestsError,
    TransientError,
    VTFrameworkError,
)
from vtframework.host.app import App


class EnrichmentFailed(VTFrameworkError):
    """The enrichment of one entity failed; the message says why."""


def helper_config(app: App) -> dict[str, Any]:
    """pycti's configuration: what config.yml holds for OpenCTI, plus our validated values."""
    settings = app.settings
    opencti = settings.raw_section("opencti")
    connector = settings.raw_section("connector")
    for entry in settings.entries():
        namespace, _, key = entry.key.path.partition(".")
        if namespace in ("opencti", "connector") and entry.value is not None:
            value = entry.value
            if isinstance(value, list):
                value = ",".join(value)
            (opencti if namespace == "opencti" else connector)[key] = value
    config: dict[str, Any] = {"opencti": opencti, "connector": connector}
    for section in ("mq", "s3"):
        if settings.raw_section(section):
            config[section] = settings.raw_section(section)
    return config


def start_helper(app: App, config: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """A registered pycti helper (requires OPENCTI_URL and OPENCTI_TOKEN).

    The platform's version is compared with the installed pycti's first: a
    mismatch is one warning line saying what to install (or a refusal with
    ``VTF_STRICT_VERSION``), before pycti fails in its own words. Then the
    :func:`preflight` checks: nothing registers with a key VirusTotal rejects.

    :param config: pycti's configuration when the runtime adjusts :func:`helper_config`'s.
    """
    settings = app.settings
    settings.require("opencti.url", "opencti.token", "connector.id", why="to run as an OpenCTI connector")
    from vtframework.opencti.version import check, enforce

    versions = check(settings["opencti.url"], settings["opencti.token"], verify=settings["opencti.ssl_verify"])
    enforce(versions, settings["vtf.strict_version"])
    if not versions.matches:
        logging.getLogger("vtframework.opencti").warning("%s", versions.line())
    preflight(app)
    from pycti import OpenCTIConnectorHelper

    with _reporting_build(app):
        helper = OpenCTIConnectorHelper(config or helper_config(app), **kwargs)
    _plain_logs_at_connector_level(helper)
    return helper


def _plain_logs_at_connector_level(helper: Any) -> None:
    """With ``OPENCTI_JSON_LOGGING=false``, logs still come at ``CONNECTOR_LOG_LEVEL``.

    pycti sets up plain-text logging with ``logging.basicConfig``, which does
    nothing once the command line has configured the root logger (at
    WARNING unless ``-v``): every INFO line of the connector was lost. JSON
    logging replaces the root's handlers and is left as pycti sets it.
    """
    if getattr(helper, "opencti_json_logging", True):
        return
    level = logging.getLevelName(str(getattr(helper, "log_level", "") or "").upper())
    root = logging.getLogger()
    if isinstance(level, int) and level < root.level:
        root.setLevel(level)


def preflight(app: App) -> None:
    """Before registering with OpenCTI: the state opens and, with quota detection on, VirusTotal accepts the key.

    Either failure stops the connector with one line naming what to fix
    (exit code 2), instead of a connector that fails every message.
    """
    from vtframework.host.services import open_app_state, open_client

    state = open_app_state(app)
    try:
        open_client(app, state, lazy=False).close()
    finally:
        state.close()


@contextlib.contextmanager
def _reporting_build(app: App) -> Iterator[None]:
    """Make pycti register the preset's version and slug (its connector manifest's).

    pycti 7 looks for one ``__metadata__/connector_manifest.json`` near the
    running program; one install serves three presets, so the preset's values
    are handed to it for the registration. pycti 6 registers neither.
    """
    try:
        from pycti.connector import opencti_connector_build
    except ImportError:
        yield
        return
    from vtframework.host.manifest import slug, version

    reported = (version(), slug(app), "manifest")
    original = opencti_connector_build.resolve
    opencti_connector_build.resolve = lambda *args, **kwargs: reported
    try:
        yield
    finally:
        opencti_connector_build.resolve = original


#: Failures worth trying the same event again for (after the client's own retries).
TRANSIENT = (TransientError, ConnectionFailed, RequestTimeout, QuotaExceededError, TooManyRequestsError)
#: Failures no retry will fix: the connector stops and says so.
FATAL = (AuthenticationError,)


def failure_reason(message: str) -> str:
    lowered = message.lower()
    for reason in ("quota", "not found", "tlp", "timeout", "forbidden", "rejected"):
        if reason in lowered:
            return reason.replace(" ", "_")
    return "other"
