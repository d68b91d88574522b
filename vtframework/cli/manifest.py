"""``vtframework manifest``: the connector manifest and configuration schema OpenCTI's connector manager reads."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

from vtframework.cli.common import EXIT_OK, UsageError
from vtframework.host.presets import PRESETS

MANIFEST_FILE = "connector_manifest.json"
SCHEMA_FILE = "connector_config_schema.json"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(PRESETS), help="the connector (preset) to describe")
    parser.add_argument("--schema", action="store_true", help="print the configuration JSON Schema, not the manifest")
    parser.add_argument(
        "--output-dir", metavar="DIR",
        help=f"write DIR/<preset>/{MANIFEST_FILE} and {SCHEMA_FILE} (every preset unless --preset)",
    )


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def documents(app: Any) -> dict[str, str]:
    """File name -> content, for one preset's app."""
    from vtframework.host.manifest import config_schema, connector_manifest

    return {MANIFEST_FILE: render(connector_manifest(app)), SCHEMA_FILE: render(config_schema(app))}


def run(args: argparse.Namespace, app_factory: Callable[..., Any]) -> int:
    if args.output_dir is None:
        if not args.preset:
            raise UsageError("manifest: give --preset P (or --output-dir DIR for every preset)")
        files = documents(app_factory(args.preset))
        sys.stdout.write(files[SCHEMA_FILE if args.schema else MANIFEST_FILE])
        return EXIT_OK
    for preset in [args.preset] if args.preset else sorted(PRESETS):
        target = Path(args.output_dir) / preset
        try:
            target.mkdir(parents=True, exist_ok=True)
            for name, content in documents(app_factory(preset)).items():
                (target / name).write_text(content, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"manifest: cannot write {target}: {exc.strerror}") from None
        sys.stderr.write(f"{target}/{MANIFEST_FILE}, {SCHEMA_FILE}\n")
    return EXIT_OK


COMMAND = ("manifest", "print or write the connector manifest and configuration schema of a preset", configure, run)
