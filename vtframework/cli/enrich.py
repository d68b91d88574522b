"""``vtframework enrich``: enrich values from the command line into one STIX bundle."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from vtframework.cli.common import EXIT_FAILED, EXIT_OK, UsageError
from vtframework.context import EnrichmentResult
from vtframework.errors import InputError
from vtframework.host.app import App, with_paid_features
from vtframework.host.services import open_app_state, open_client
from vtframework.pipeline.enrich import Pipeline, bundle
from vtframework.policy.tlp import normalize_tlp
from vtframework.stix.ids import settle_file_id
from vtframework.stix.observables import from_value

#: Real VirusTotal answers shipped with vtframework for `enrich --replay`.
REPLAY_DIR = Path(__file__).resolve().parent.parent / "replay"

#: Observables enriched by ``--replay`` when no value is given: one per recording.
REPLAY_VALUES = (
    "4bc00f7d638e042da764e8648c03c0db46700599dd4f08d117e3e9e8b538519b",
    "001015aafcae8a6942366cbb0e7d39c0738752a7800c41ea1c655d47b0a4d04c",
    "b8e7a581d85807ea6659ea2f681bd16d5baa7017ff144aa3030aefba9cbcdfd3",
    "138.128.150.133",
    "1.1.1.1",
    "tawuhoju.com",
    "haiku-os.org",
    "http://soclosebutyetqq.com/69.exe",
    "http://example.com/",
    # Threat context beyond detections: Sigma, IDS, sandboxes, a malware configuration, a disagreement.
    "6b60666d6ace3a450d54fe7b915c46632172ca0d4127d87873f0c111560e66cb",
    "020876e69dac4b2cb5b75a616dbdac8b913f3cc06fbabd8f8dd3277691ba48b6",
    "29bd5781eb25da10c05b9e4074c08b5c0d5127abd4e278066973a725463884c3",
    "52d3df0ed60c46f336c131bf2ca454f73bafdc4b04dfa2aea80746f5ba9e6d1c",
    "8.8.8.8",
    "github.com",
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("values", nargs="*", metavar="VALUE", help="hashes, IPs, domains, hostnames or URLs")
    parser.add_argument("--input", "-i", metavar="FILE", help="read values from FILE, one per line ('-': stdin)")
    parser.add_argument("--type", "-t", metavar="T", help="type of every value (default: detected per value)")
    parser.add_argument("-o", "--output", metavar="FILE", help="write the STIX bundle to FILE (default: stdout)")
    parser.add_argument("--workers", "-w", type=int, default=4, metavar="N", help="parallel lookups (default 4)")
    parser.add_argument(
        "--tlp", default="TLP:AMBER",
        help="TLP of the values (default TLP:AMBER: looked up, never uploaded)",
    )
    parser.add_argument(
        "--replay", action="store_true",
        help="run offline on recorded real VirusTotal responses shipped with vtframework (no key needed)",
    )
    parser.add_argument(
        "--strict", action="store_true",
        help="a plugin that fails (to load, or on a value) fails the value instead of only losing its own objects",
    )


def read_values(args: argparse.Namespace) -> list[str]:
    values = list(args.values)
    if args.input:
        try:
            handle: IO[str] = sys.stdin if args.input == "-" else open(args.input, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read --input {args.input}: {exc.strerror}") from None
        with handle if handle is not sys.stdin else contextlib.nullcontext(handle):
            values += [line.strip() for line in handle if line.strip() and not line.lstrip().startswith("#")]
    if not values and args.replay:
        values = list(REPLAY_VALUES)
    if not values:
        raise UsageError("enrich: give at least one VALUE or --input FILE")
    return list(dict.fromkeys(values))


@contextlib.contextmanager
def _replay_server() -> Iterator[str]:
    from vtframework.testing.fakevt import FakeVirusTotal

    with FakeVirusTotal(str(REPLAY_DIR)) as server:
        yield server.base_url


@contextlib.contextmanager
def _services(app: App, replay: bool) -> Iterator[Any]:
    if not replay:
        app.settings.require(app.preset.api_key_path if app.preset else "virustotal.token",
                             why="to query VirusTotal (or use --replay)")
        state = open_app_state(app)
        client = open_client(app, state)
        with client:
            yield client
        return
    # Replay: recorded answers from a local server, a throw-away state, no quota to respect.
    with _replay_server() as base_url, tempfile.TemporaryDirectory(prefix="vtf-replay-") as state_dir:
        state = open_app_state(app, state_dir)
        client = open_client(
            app, state, base_url=base_url, api_key="replay", detect_quota=False,
            requests_per_minute=100_000, requests_per_day=1_000_000,
        )
        with client:
            yield client


class Progress:
    """A one-line progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, total: int, stream: IO[str]) -> None:
        self.total, self.done, self.stream = total, 0, stream
        self.enabled = total > 1 and stream.isatty()

    def step(self) -> None:
        self.done += 1
        if self.enabled:
            width = 30
            filled = int(width * self.done / self.total)
            self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}")
            if self.done == self.total:
                self.stream.write("\n")
            self.stream.flush()


def summary_table(results: list[EnrichmentResult]) -> str:
    header = ("VALUE", "TYPE", "MALICIOUS", "SCORE", "OBJECTS", "VT REQUESTS", "CACHE HIT", "RESULT")
    rows = [header]
    for result in results:
        summary = result.summary
        value = result.observable.value
        value = value if len(value) <= 64 else value[:61] + "..."
        detections = f"{summary['malicious']}/{summary['total']}" if "malicious" in summary else "-"
        score = str(summary.get("score", "-")) if result.ok else "-"
        hit = "yes" if result.cache_hits and not result.requests else "no"
        rows.append((value, result.observable.entity_type, detections, score,
                     str(len(result.objects)), str(result.requests), hit, _outcome(result)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    load_failures: dict[str, None] = {}
    for result in results:
        if not result.ok:
            lines.append(f"failed: {result.message}")
        for warning in result.warnings:
            lines.append(f"warning: {result.observable.value}: {warning}")
        for failure in result.plugin_errors:
            if failure.hook is None:  # the same for every value: said once, below
                load_failures[str(failure)] = None
            elif result.ok:
                lines.append(f"plugin error: {result.observable.value}: {failure}")
    lines += [f"plugin error: {failure}" for failure in load_failures]
    return "\n".join(lines)


def _outcome(result: EnrichmentResult) -> str:
    """The RESULT cell: ``ok``, ``FAILED``, or ``ok`` with what was lost."""
    if not result.ok:
        return "FAILED"
    losses = []
    if result.warnings:
        losses.append(f"{len(result.warnings)} warning(s)")
    failed = sorted({failure.plugin for failure in result.plugin_errors})
    if failed:
        losses.append(f"plugin(s) failed: {', '.join(failed)}")
    return ", ".join(["ok", *losses])


def run(args: argparse.Namespace, app_factory: Callable[..., App]) -> int:
    if args.workers < 1:
        raise UsageError("enrich: --workers must be at least 1")
    try:
        tlp = normalize_tlp(args.tlp)
    except ValueError:
        raise UsageError(f"enrich: --tlp {args.tlp!r} is not a TLP (CLEAR, GREEN, AMBER, AMBER+STRICT, RED)") from None
    values = read_values(args)
    app = app_factory("virustotal")
    if args.replay:  # recorded answers cost no quota: show the features that spend it too
        app = with_paid_features(app)
    with _quiet_pipeline(not getattr(args, "verbose", 0)):
        return _enrich_all(args, app, values, tlp)


@contextlib.contextmanager
def _quiet_pipeline(quiet: bool) -> Iterator[None]:
    """The summary lists every warning; without -v the pipeline's log would say each one twice."""
    logger = logging.getLogger("vtframework.pipeline")
    level = logger.level
    if quiet:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _enrich_all(args: argparse.Namespace, app: App, values: list[str], tlp: str) -> int:
    results: list[EnrichmentResult | None] = [None] * len(values)
    observables: dict[int, Any] = {}
    for index, value in enumerate(values):
        try:
            observables[index] = from_value(value, args.type, tlp=tlp)
        except InputError as exc:
            results[index] = _input_failure(value, args.type, exc)
    progress = Progress(len(values), sys.stderr)
    for index in range(len(values)):
        if results[index] is not None:
            progress.step()
    with _services(app, args.replay) as client:
        pipeline = Pipeline(app, client, strict=args.strict)

        def work(index: int) -> None:
            results[index] = result = pipeline.enrich(observables[index])
            if result.ok and result.observable.entity_type == "StixFile":
                result.objects = settle_file_id(result.objects, result.observable.id)
            progress.step()

        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            list(pool.map(work, sorted(observables)))
    finished = [result for result in results if result is not None]
    objects = [obj for result in finished if result.ok for obj in result.objects]
    _write_bundle(bundle(objects), args.output)
    sys.stderr.write(summary_table(finished) + "\n")
    return EXIT_OK if all(result.ok for result in finished) else EXIT_FAILED


def _input_failure(value: str, entity_type: str | None, exc: InputError) -> EnrichmentResult:
    from vtframework.records import Observable

    placeholder = Observable(entity_type=entity_type or "?", value=value, stix={})
    return EnrichmentResult(placeholder, False, str(exc))


def _write_bundle(content: dict[str, Any], output: str | None) -> None:
    text = json.dumps(content, indent=2, sort_keys=False) + "\n"
    if output:
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {output}: {exc.strerror}") from None
    else:
        sys.stdout.write(text)


COMMAND = ("enrich", "enrich values and write one STIX 2.1 bundle", configure, run)
