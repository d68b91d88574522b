"""``vtframework run``: run as an OpenCTI connector (enrichment, downloader or livehunt)."""

from __future__ import annotations

import argparse
import os
from typing import Any, Callable

from vtframework.cli.common import EXIT_OK, UsageError
from vtframework.host.presets import RUN_MODES, detect_preset

#: mode -> "module:class" of its runtime, imported only when run.
RUNTIMES = {
    "enrichment": "vtframework.opencti.enrichment:EnrichmentConnector",
    "downloader": "vtframework.opencti.downloader:DownloaderConnector",
    "livehunt": "vtframework.opencti.stream:StreamConnector",
}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "mode", nargs="?", choices=sorted(RUN_MODES),
        help="connector to run (default: told apart by the environment of an original connector's "
        "service: VIRUSTOTAL_DOWNLOADER_API_KEY -> downloader, VIRUSTOTAL_LIVEHUNT_TOKEN or "
        "CONNECTOR_TYPE=STREAM -> livehunt, else enrichment; VTF_PRESET overrides)",
    )
    parser.add_argument(
        "--check", action="store_true",
        help="validate the configuration, say which connector would run, and exit without connecting",
    )


def mode_for(args_mode: str | None, env: Any) -> str:
    if args_mode:
        return args_mode
    preset = detect_preset(env)
    return next(mode for mode, name in RUN_MODES.items() if name == preset)


def run(args: argparse.Namespace, app_factory: Callable[..., Any]) -> int:
    mode = mode_for(args.mode, os.environ)
    app = app_factory(RUN_MODES[mode])
    app.settings.require(app.preset.api_key_path, why=f"to run the {mode} connector")
    app.settings.require("opencti.url", "opencti.token", "connector.id", why=f"to run the {mode} connector")
    if args.check:
        settings = app.settings
        print(f"{mode} connector (preset {app.preset.name}): {settings['connector.name']}, "
              f"id {settings['connector.id']}, scope {','.join(settings['connector.scope'])}, "
              f"plugins {','.join(app.host.loaded)}")
        return EXIT_OK
    if mode not in RUNTIMES:
        raise UsageError(f"run: the {mode} connector is not available in this version")
    preflight(app)
    module_name, class_name = RUNTIMES[mode].split(":")
    import importlib

    runtime = getattr(importlib.import_module(module_name), class_name)(app)
    runtime.start()
    return EXIT_OK


def preflight(app: Any) -> None:
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


COMMAND = ("run", "run as an OpenCTI connector (enrichment, downloader or livehunt)", configure, run)
