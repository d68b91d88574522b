"""``vtframework livehunt sync [--apply]``: show, then fix, the drift between OpenCTI and VirusTotal."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, Callable, Sequence

from vtframework import CliCommand, open_app_state, open_client

from vtframework_plugins.livehunt.sync import Comparison, Outcome, apply, compare, fetch_indicators
from vtframework_plugins.livehunt.vtapi import HuntingRulesets

PRESET = "virustotal-livehunt"
EXIT_OK, EXIT_FAILED = 0, 1
log = logging.getLogger("vtframework.livehunt")


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="livehunt_command", metavar="ACTION", required=True)
    sync = sub.add_parser(
        "sync",
        help="show how VirusTotal's Livehunt rulesets differ from OpenCTI's hunted YARA indicators",
        description="Compare the YARA indicators of OpenCTI with the Livehunt rulesets vtframework made "
        "in VirusTotal: missing, orphaned, duplicated or different rulesets. Rulesets without "
        "vtframework's marker are never touched (except the original connector's, which are adopted).",
    )
    sync.add_argument("--apply", action="store_true", help="fix the drift in VirusTotal and in the state")


def open_opencti(app: Any) -> Any:
    """pycti's API client for the configured platform."""
    import pycti

    settings = app.settings
    return pycti.OpenCTIApiClient(
        settings["opencti.url"], settings["opencti.token"], log_level="error", ssl_verify=settings["opencti.ssl_verify"]
    )


def run(args: argparse.Namespace, app_factory: Callable[..., Any]) -> int:
    app = app_factory(PRESET)
    app.settings.require("opencti.url", "opencti.token", why="to read the YARA indicators")
    key = app.preset.api_key_path if app.preset else "virustotal.token"
    app.settings.require(key, why="to manage Livehunt rulesets")
    indicators = fetch_indicators(open_opencti(app))
    state = open_app_state(app)
    try:
        with open_client(app, state) as client:
            api = HuntingRulesets(client)
            comparison = compare(indicators, list(api.iter_all()), app.settings)
            sys.stdout.write(drift_report(comparison) + "\n")
            if not args.apply or not comparison.drifts:
                if comparison.drifts:
                    sys.stdout.write("run 'vtframework livehunt sync --apply' to fix it\n")
                return EXIT_OK
            if not indicators:
                # An empty answer is more likely a token that sees nothing than an empty platform.
                sys.stderr.write(
                    "vtframework: OpenCTI returned no YARA indicator; refusing to delete every ruleset "
                    "(check that OPENCTI_TOKEN's user can read the indicators)\n"
                )
                return EXIT_FAILED
            outcomes = apply(comparison, api, state, app.settings, log)
    finally:
        state.close()
    sys.stdout.write(outcome_report(outcomes) + "\n")
    return EXIT_OK if all(o.error is None for o in outcomes) else EXIT_FAILED


def drift_report(comparison: Comparison) -> str:
    if not comparison.drifts:
        return f"in sync: {len(comparison.in_sync)} ruleset(s) match their indicators"
    rows = [("DRIFT", "INDICATOR", "RULESET", "DETAIL")]
    rows += [(d.kind, d.indicator_id, d.ruleset_id or "-", d.detail) for d in comparison.drifts]
    lines = _table(rows)
    lines.append(f"{len(comparison.drifts)} drift(s); {len(comparison.in_sync)} ruleset(s) in sync")
    return "\n".join(lines)


def outcome_report(outcomes: Sequence[Outcome]) -> str:
    failed = [o for o in outcomes if o.error]
    lines = [f"failed: {o.drift.kind} {o.drift.indicator_id}: {o.error}" for o in failed]
    lines.append(f"fixed {len(outcomes) - len(failed)} of {len(outcomes)} drift(s)")
    return "\n".join(lines)


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]


COMMAND = CliCommand(
    name="livehunt",
    help="keep VirusTotal Livehunt rulesets in step with OpenCTI (sync [--apply])",
    configure=configure,
    run=run,
)
