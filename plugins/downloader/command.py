"""``vtframework download HASH ... --dir DIR``: verified samples on disk, named by SHA-256."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

from vtframework import CliCommand, normalize_tlp
from vtframework.errors import InputError, VTFrameworkError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hashes", nargs="+", metavar="HASH", help="MD5, SHA-1 or SHA-256 of the samples")
    parser.add_argument("--dir", "-d", required=True, metavar="DIR", help="where verified samples are saved")
    parser.add_argument("--tlp", default="TLP:AMBER", help="TLP of the hashes (default TLP:AMBER)")
    parser.add_argument("--max-size", type=int, metavar="BYTES",
                        help="refuse larger samples (default VIRUSTOTAL_DOWNLOADER_MAX_SIZE)")


def run(args: argparse.Namespace, app_factory: Callable[..., Any]) -> int:
    from vtframework import fetch_sample, from_value, open_app_state, open_client, save_sample

    try:
        tlp = normalize_tlp(args.tlp)
    except ValueError:
        sys.stderr.write(f"vtframework: download: --tlp {args.tlp!r} is not a TLP\n")
        return EXIT_USAGE
    app = app_factory("virustotal-downloader")
    app.settings.require(app.preset.api_key_path, why="to download samples")
    max_size = args.max_size or app.settings["virustotal_downloader.max_size"]
    Path(args.dir).mkdir(parents=True, exist_ok=True)
    failed = 0
    with open_client(app, open_app_state(app)) as client:
        for value in dict.fromkeys(args.hashes):
            try:
                observable = from_value(value, "StixFile", tlp=tlp)
                sample = fetch_sample(app, client, observable, max_size=max_size, directory=args.dir)
                path = save_sample(sample, args.dir)
                sys.stderr.write(f"{value}: saved {path} ({sample.size} bytes, {sample.mime_type})\n")
            except (InputError, VTFrameworkError) as exc:
                failed += 1
                sys.stderr.write(f"{value}: failed: {exc}\n")
    return EXIT_FAILED if failed else EXIT_OK


COMMAND = CliCommand(
    name="download",
    help="download samples by hash into a directory, verified, named by SHA-256",
    configure=configure,
    run=run,
)
