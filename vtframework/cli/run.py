"""``vtframework run``: run as an OpenCTI connector (enrichment, downloader, livehunt or notifications)."""

from __future__ import annotations

import argparse
import os
from typing import Any, Callable

from vtframework.cli.common import EXIT_FAILED, EXIT_OK, UsageError
from vtframework.host.presets import RUN_MODES, detect_preset

#: mode -> "module:class" of its runtime, imported only when run.
RUNTIMES = {
    "enrichment": "vtframework.opencti.enrichment:EnrichmentConnector",
    "downloader": "vtframework.opencti.downloader:DownloaderConnector",
    "livehunt": "vtframework.opencti.stream:StreamConnector",
    "notifications": "vtframework.opencti.importer:ImportConnector",
}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "mode", nargs="?", choices=sorted(RUN_MODES),
        help="connector to run (default: told apart by the environment of an original connector's "
        "service: VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_API_KEY or CONNECTOR_TYPE=EXTERNAL_IMPORT -> notifications, "
        "VIRUSTOTAL_DOWNLOADER_API_KEY -> downloader, VIRUSTOTAL_LIVEHUNT_TOKEN or CONNECTOR_TYPE=STREAM -> "
        "livehunt, else enrichment; VTF_PRESET overrides)",
    )
    parser.add_argument(
        "--check", action="store_true",
        help="validate the configuration, say which connector would run, compare the platform's version "
        "with the installed pycti's, and exit without registering",
    )


def mode_for(args_mode: str | None, env: Any) -> str:
    if args_mode:
        return args_mode
    from vtframework.host.config import find_config_file, read_config_file

    preset = detect_preset(env, read_config_file(find_config_file(env)))
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
        from vtframework.opencti.version import check, enforce

        versions = check(settings["opencti.url"], settings["opencti.token"], verify=settings["opencti.ssl_verify"])
        print(versions.line(), flush=True)
        enforce(versions, settings["vtf.strict_version"])
        return EXIT_OK if versions.matches else EXIT_FAILED
    if mode not in RUNTIMES:
        raise UsageError(f"run: the {mode} connector is not available in this version")
    module_name, class_name = RUNTIMES[mode].split(":")
    import importlib

    runtime = getattr(importlib.import_module(module_name), class_name)(app)
    runtime.start()
    return EXIT_OK


COMMAND = ("run", "run as an OpenCTI connector (enrichment, downloader, livehunt or notifications)", configure, run)
