"""``vtframework enrich``: enrich values from the command line into one STIX bundle."""

from __future__ import annotations

import argparse
import codecs
import contextlib
import hashlib
import json
import logging
import os
import sys
import tempfile
import uuid
from collections import deque
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, Callable, Iterable, Iterator, Mapping

from vtframework.cli.common import EXIT_FAILED, EXIT_OK, UsageError
from vtframework.context import EnrichmentResult
from vtframework.errors import ConfigError, InputError, clean_text
from vtframework.records import Observable

if TYPE_CHECKING:
    from vtframework.host.app import App

# The pipeline, the client and STIX are imported when values are enriched: `vtframework --help` lists this
# command without paying for them.

log = logging.getLogger("vtframework.cli")

#: Longest input line read, in bytes; a longer one is a named failure and costs no memory.
MAX_LINE = 4096

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


def read_inputs(args: argparse.Namespace) -> tuple[list[str], list[EnrichmentResult]]:
    """The values to enrich (each once), and a named failure for each input line that cannot be read."""
    values = list(args.values)
    failures: list[EnrichmentResult] = []
    if args.input:
        try:
            handle: BinaryIO = sys.stdin.buffer if args.input == "-" else open(args.input, "rb")
        except OSError as exc:
            raise UsageError(f"cannot read --input {args.input}: {exc.strerror}") from None
        with handle if args.input != "-" else contextlib.nullcontext(handle):
            for number, value, problem in input_lines(handle, "stdin" if args.input == "-" else args.input):
                if problem:
                    failures.append(_input_failure(f"line {number}", None, InputError(problem)))
                elif value and not value.startswith("#"):
                    values.append(value)
    if not values and not failures and args.replay:
        values = list(REPLAY_VALUES)
    if not values and not failures:
        raise UsageError("enrich: give at least one VALUE or --input FILE")
    return list(dict.fromkeys(values)), failures


def input_lines(handle: BinaryIO, name: str) -> Iterator[tuple[int, str, str | None]]:
    """``(line number, value, problem)`` for each line of an input file, read as UTF-8 line by line.

    A UTF-8 byte order mark is dropped; a line that is not UTF-8 (Latin-1, a
    binary blob) or longer than :data:`MAX_LINE` bytes comes with the problem,
    in words, and the lines after it are read as usual.
    """
    number = 0
    while True:
        raw = handle.readline(MAX_LINE + 1)
        if not raw:
            return
        number += 1
        if number == 1 and raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            raise UsageError(f"--input {name} is UTF-16 text: save it as UTF-8 (one value per line)")
        if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
            while (more := handle.readline(1 << 16)) and not more.endswith(b"\n"):
                pass
            yield number, "", f"{name} line {number} is longer than {MAX_LINE} bytes: skipped"
            continue
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8):]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield number, "", (
                f"{name} line {number} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
                "save the file as UTF-8"
            )
            continue
        yield number, text.strip(), None


@contextlib.contextmanager
def _replay_server() -> Iterator[str]:
    from vtframework.testing.fakevt import FakeVirusTotal

    with FakeVirusTotal(str(REPLAY_DIR)) as server:
        yield server.base_url


@contextlib.contextmanager
def _services(app: App, replay: bool) -> Iterator[Any]:
    from vtframework.host.services import open_app_state, open_client

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


@dataclass(frozen=True, slots=True)
class SummaryRow:
    """What the summary table keeps of one result: its cells and its messages, not its objects.

    A run of 50,000 values keeps 50,000 of these: the cells are one string.
    """

    packed: str
    ok: bool
    lines: tuple[str, ...] = ()
    #: Plugins that failed to load: the same for every value, said once below the table.
    load_failures: tuple[str, ...] = ()

    @property
    def cells(self) -> list[str]:
        return self.packed.split("\0")

    @classmethod
    def of(cls, result: EnrichmentResult) -> "SummaryRow":
        summary = result.summary
        # Values come from the user's file, messages partly from VirusTotal: neither may drive the terminal
        # (clean_text also takes out the NUL that separates the cells).
        value = clean_text(result.observable.value, 64)
        detections = f"{summary['malicious']}/{summary['total']}" if "malicious" in summary else "-"
        score = str(summary.get("score", "-")) if result.ok else "-"
        hit = "yes" if result.cache_hits and not result.requests else "no"
        cells = (value, clean_text(result.observable.entity_type, 20), clean_text(detections, 20),
                 clean_text(score, 10), str(len(result.objects)), str(result.requests), hit, _outcome(result))
        lines: list[str] = []
        if not result.ok:
            lines.append(f"failed: {clean_text(result.message, 1000)}")
        for warning in result.warnings:
            lines.append(f"warning: {clean_text(result.observable.value, 80)}: {clean_text(warning, 1000)}")
        load_failures: list[str] = []
        for failure in result.plugin_errors:
            if failure.hook is None:
                load_failures.append(str(failure))
            elif result.ok:
                lines.append(f"plugin error: {clean_text(result.observable.value, 80)}: {clean_text(failure, 1000)}")
        return cls("\0".join(cells), result.ok, tuple(lines), tuple(load_failures))


#: Bytes of summary rows kept in memory before they go to a temporary file.
SUMMARY_IN_MEMORY = 1 << 20

HEADER = ("VALUE", "TYPE", "MALICIOUS", "SCORE", "OBJECTS", "VT REQUESTS", "CACHE HIT", "RESULT")


class Summary:
    """The summary table of a run, kept row by row in a temporary file past a MiB: memory holds its column widths.

    :meth:`lines` gives the table (a row per value, in the order added), then
    what went wrong with each, then each plugin that failed to load, once.
    """

    def __init__(self) -> None:
        # In memory up to a MiB (a run of a few thousand values never touches the disk), then a file.
        self._spool: IO[str] = tempfile.SpooledTemporaryFile(  # type: ignore[assignment]
            max_size=SUMMARY_IN_MEMORY, mode="w+", encoding="utf-8", prefix="vtf-summary-"
        )
        self.widths = [len(name) for name in HEADER]
        self.all_ok = True
        self._load_failures: dict[str, None] = {}

    def add(self, item: EnrichmentResult | SummaryRow) -> None:
        row = item if isinstance(item, SummaryRow) else SummaryRow.of(item)
        self.widths = [max(width, len(cell)) for width, cell in zip(self.widths, row.cells)]
        self.all_ok = self.all_ok and row.ok
        self._load_failures.update(dict.fromkeys(row.load_failures))
        self._spool.write(json.dumps([row.packed, row.lines]) + "\n")

    def _rows(self) -> Iterator[tuple[str, list[str]]]:
        self._spool.seek(0)
        for line in self._spool:
            packed, lines = json.loads(line)
            yield packed, lines
        self._spool.seek(0, os.SEEK_END)

    def lines(self) -> Iterator[str]:
        def aligned(cells: Iterable[str]) -> str:
            return "  ".join(cell.ljust(width) for cell, width in zip(cells, self.widths)).rstrip()

        yield aligned(HEADER)
        for packed, _lines in self._rows():
            yield aligned(packed.split("\0"))
        for _packed, lines in self._rows():
            yield from lines
        for failure in self._load_failures:
            yield f"plugin error: {clean_text(failure, 1000)}"

    def write(self, stream: IO[str]) -> None:
        for line in self.lines():
            stream.write(line + "\n")

    def close(self) -> None:
        self._spool.close()


def summary_table(results: Iterable[EnrichmentResult | SummaryRow]) -> str:
    summary = Summary()
    try:
        for result in results:
            summary.add(result)
        return "\n".join(summary.lines())
    finally:
        summary.close()


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
    from vtframework.host.app import with_paid_features
    from vtframework.policy.tlp import normalize_tlp
    from vtframework.stix.observables import entity_type_name

    if args.workers < 1:
        raise UsageError("enrich: --workers must be at least 1")
    try:
        tlp = normalize_tlp(args.tlp)
    except ValueError:
        raise UsageError(f"enrich: --tlp {args.tlp!r} is not a TLP (CLEAR, GREEN, AMBER, AMBER+STRICT, RED)") from None
    if args.type:
        try:
            args.type = entity_type_name(args.type)
        except InputError as exc:
            raise UsageError(f"enrich: --type: {exc}") from None
    if args.output:
        _check_output(args.output)
    values, unreadable = read_inputs(args)
    app = app_factory("virustotal")
    if args.replay:  # recorded answers cost no quota: show the features that spend it too
        app = with_paid_features(app)
    with _quiet_pipeline(not getattr(args, "verbose", 0)):
        return _enrich_all(args, app, values, unreadable, tlp)


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


def _enrich_all(
    args: argparse.Namespace, app: App, values: list[str], unreadable: list[EnrichmentResult], tlp: str
) -> int:
    """Enrich ``values`` on ``--workers`` threads, each result written into the bundle as it comes.

    Results are taken in input order from a window of a few per worker, so
    memory holds a few results, never all of them; the summary keeps one
    small row per value.
    """
    from vtframework.pipeline.enrich import Pipeline, failure_message
    from vtframework.stix.ids import settle_file_id
    from vtframework.stix.observables import from_value

    summary = Summary()
    for failure in unreadable:
        summary.add(failure)
    progress = Progress(len(values), sys.stderr)
    writer = BundleWriter(args.output)
    try:
        with _services(app, args.replay) as client:
            pipeline = Pipeline(app, client, strict=args.strict)

            def work(value: str) -> EnrichmentResult:
                try:
                    observable = from_value(value, args.type, tlp=tlp)
                except InputError as exc:
                    return _input_failure(value, args.type, exc)
                try:
                    result = pipeline.enrich(observable)
                except Exception as exc:  # the pipeline reports failures itself; this is the last guard
                    return EnrichmentResult(observable, False, failure_message(observable, exc))
                if result.ok and result.observable.entity_type == "StixFile":
                    result.objects = settle_file_id(result.objects, result.observable.id)
                return result

            with ThreadPoolExecutor(max_workers=args.workers) as pool:
                for result in in_order(pool, work, values, window=4 * args.workers):
                    progress.step()
                    if result.ok:
                        writer.add(result.objects)
                    summary.add(result)
            if client.key_rejected is not None:
                # Nothing more can succeed with this key: say so once, not once per value.
                raise ConfigError(str(client.key_rejected))
        writer.finish()
        summary.write(sys.stderr)
        return EXIT_OK if summary.all_ok else EXIT_FAILED
    except OSError as exc:
        if writer.failed is not exc:
            raise
        summary.write(sys.stderr)
        sys.stderr.write(
            f"vtframework: cannot write the bundle to {args.output} ({exc.strerror or exc}); "
            "any previous file there is unchanged\n"
        )
        return EXIT_FAILED
    finally:
        writer.discard()
        summary.close()


def in_order(pool: Executor, work: Callable[[str], Any], items: Iterable[str], *, window: int) -> Iterator[Any]:
    """``work(item)`` for each item, run on ``pool``, yielded in the items' order; at most ``window`` pending."""
    pending: deque[Future[Any]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(work, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


def _input_failure(value: str, entity_type: str | None, exc: InputError) -> EnrichmentResult:
    placeholder = Observable(entity_type=entity_type or "?", value=value, stix={})
    return EnrichmentResult(placeholder, False, str(exc))


def _check_output(output: str) -> None:
    """Refuse, before any request, an output the bundle could never be written to."""
    target = Path(output)
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise UsageError(f"enrich: -o {output} is a directory; give a file name")
    if not parent.is_dir():
        raise UsageError(f"enrich: -o {output}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"enrich: -o {output}: the directory {parent} is not writable")


class BundleWriter:
    """A STIX bundle written object by object, as ``json.dumps(bundle, indent=2)`` would write it whole.

    Objects go to a temporary file as they come (in the output's directory,
    or a spool for stdout), each id once: the first object with an id is
    kept, later ones with the same id are dropped, so only the ids are held.
    :meth:`finish` moves the file over the output in one rename (a crash or a
    full disk leaves any previous file whole) or copies the spool to stdout.
    A write that fails is remembered in :attr:`failed` and raised by
    :meth:`finish`; nothing more is written after it.
    """

    def __init__(self, output: str | None) -> None:
        self.output = Path(output) if output else None
        self.failed: OSError | None = None
        self.count = 0
        self._seen: set[bytes] = set()
        self._handle: IO[str] | None = None

    def _open(self) -> IO[str]:
        if self._handle is None:
            if self.output is None:
                self._handle = tempfile.TemporaryFile("w+", encoding="utf-8", prefix="vtf-bundle-")
            else:
                self._handle = tempfile.NamedTemporaryFile(
                    "w", encoding="utf-8", dir=self.output.parent, prefix=f".{self.output.name}.", suffix=".tmp",
                    delete=False,
                )
            self._handle.write(f'{{\n  "type": "bundle",\n  "id": "bundle--{uuid.uuid4()}",\n  "objects": [')
        return self._handle

    def add(self, objects: Iterable[Mapping[str, Any]]) -> None:
        if self.failed is not None:
            return
        try:
            handle = self._open()
            for obj in objects:
                # 16 bytes of the id's hash stand for it: half the memory of the id itself, over 50,000 values.
                key = hashlib.blake2b(str(obj.get("id")).encode("utf-8", "surrogatepass"), digest_size=16).digest()
                if key in self._seen:
                    continue
                self._seen.add(key)
                text = json.dumps(obj, indent=2, allow_nan=False).replace("\n", "\n    ")
                handle.write(("\n    " if not self.count else ",\n    ") + text)
                self.count += 1
        except OSError as exc:
            self.failed = exc

    def finish(self) -> None:
        """Close the bundle and put it where it goes; raises the write's :class:`OSError` if one failed."""
        if self.failed is None:
            try:
                handle = self._open()
                handle.write("\n  ]\n}\n" if self.count else "]\n}\n")
                handle.flush()
                if self.output is not None:
                    os.fsync(handle.fileno())
                    handle.close()
                    os.chmod(handle.name, _file_mode(self.output))
                    os.replace(handle.name, self.output)
                    self._handle = None
            except OSError as exc:
                self.failed = exc
        if self.failed is not None:
            raise self.failed
        if self.output is None:  # stdout's own errors (a closed pipe) are not the bundle's
            handle.seek(0)
            while chunk := handle.read(1 << 16):
                sys.stdout.write(chunk)

    def discard(self) -> None:
        """Close and remove the temporary file, if it is still there (after a failure)."""
        handle, self._handle = self._handle, None
        if handle is None:
            return
        with contextlib.suppress(OSError):
            handle.close()
        if self.output is not None:
            with contextlib.suppress(OSError):
                os.unlink(handle.name)


def _file_mode(target: Path) -> int:
    """The mode of the file being replaced, or a new file's under the umask."""
    try:
        return target.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


COMMAND = ("enrich", "enrich values and write one STIX 2.1 bundle", configure, run)
