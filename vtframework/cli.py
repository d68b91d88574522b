"""The ``vtframework`` command line.

Exit codes: 0 success, 1 some work failed (each failure says why), 2 a usage or
configuration error (one line on stderr).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, Callable, Sequence

from vtframework.app import App, build_app
from vtframework.errors import ConfigError, PluginError
from vtframework.plugins import build_host
from vtframework.presets import PRESETS, get_preset

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A wrong command line: reported in one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        raise UsageError(f"{self.prog}: {message} (see --help)")


def _table(rows: Sequence[Sequence[str]], out: Any) -> None:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths)]
        out.write("  ".join(cells).rstrip() + "\n")


# -- vtframework plugins ----------------------------------------------------
def cmd_plugins(args: argparse.Namespace, app_factory: Callable[..., App]) -> int:
    preset = get_preset(args.preset)
    host = build_host(preset_plugins=preset.plugins if preset else None)
    rows = [("NAME", "ORIGIN", "VERSION", "STATUS")]
    rows += [(i.name, i.origin, i.version, i.status) for i in host.infos.values()]
    _table(rows, sys.stdout)
    return EXIT_OK


# -- vtframework config -----------------------------------------------------
def cmd_config(args: argparse.Namespace, app_factory: Callable[..., App]) -> int:
    app = app_factory(args.preset)
    rows = [("ENVIRONMENT", "CONFIG.YML", "DEFAULT", "VALUE", "SOURCE")]
    for entry in app.settings.entries():
        key = entry.key
        default = entry.__class__(key, key.default, "default").shown if key.default is not None else ""
        rows.append((key.env_name, key.path, default, entry.shown, entry.source))
    _table(rows, sys.stdout)
    where = app.settings.config_file or "none (environment and defaults only)"
    sys.stdout.write(f"\nconfig.yml: {where}; preset: {app.preset.name if app.preset else 'none'}\n")
    return EXIT_OK


CORE: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[..., int]]] = {}


def _configure_plugins(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(PRESETS), help="show the plugins a preset loads")


def _configure_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(PRESETS), help="apply a preset's plugins and defaults")


CORE["plugins"] = ("list the plugins: name, origin, version, status", _configure_plugins, cmd_plugins)
CORE["config"] = ("list every configuration key, its value and where it came from", _configure_config, cmd_config)


def build_parser(plugin_commands: Sequence[Any] = ()) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="vtframework",
        description="VirusTotal for OpenCTI: enrichment, sample downloader and Livehunt, "
        "as connectors or from the command line.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (help_text, configure, _run) in CORE.items():
        configure(sub.add_parser(name, help=help_text, description=help_text))
    for command in plugin_commands:
        command.configure(sub.add_parser(command.name, help=command.help, description=command.help))
    return parser


def _plugin_commands() -> list[Any]:
    # Commands contributed by plugins are known only once plugins are loaded;
    # a broken plugin must not break --help, so failures are ignored here.
    try:
        return list(build_host().commands.values())
    except PluginError:
        return []


#: Modules that add a core command through a ``COMMAND = (name, help, configure, run)`` attribute.
CORE_COMMAND_MODULES = ("vtframework.enrich_cli", "vtframework.runtime_cli")


def _load_core_commands() -> None:
    import importlib

    for module in CORE_COMMAND_MODULES:
        name, help_text, configure, run = importlib.import_module(module).COMMAND
        CORE[name] = (help_text, configure, run)


def main(argv: Sequence[str] | None = None, app_factory: Callable[..., App] = build_app) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _load_core_commands()
    plugin_commands = _plugin_commands()
    parser = build_parser(plugin_commands)
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        sys.stderr.write(f"{exc}\n")
        return EXIT_USAGE
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.command:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        if args.command in CORE:
            return CORE[args.command][2](args, app_factory)
        command = next(c for c in plugin_commands if c.name == args.command)
        return command.run(args, app_factory)
    except (ConfigError, PluginError, UsageError) as exc:
        sys.stderr.write(f"vtframework: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("vtframework: interrupted\n")
        return 130
    except BrokenPipeError:  # output piped into head & co
        sys.stderr.close()
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
