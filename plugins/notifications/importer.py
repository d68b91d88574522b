"""One run of the Livehunt notifications import: read what is new, newest first, and hand each notification on.

Per notification, in this order: the filters (nothing is downloaded or
deleted for a notification that is filtered out), its objects, one bundle,
the Sighting remembered for the end of the sweep, the checkpoint, and only
then, when configured, its deletion on VirusTotal by its notification id. A
notification that cannot be imported (malformed, its entity unusable, a
plugin failing on it) is skipped with the reason, and the run goes on: one bad
notification never jams the connector. A failure that is not the
notification's (VirusTotal unreachable, quota spent, OpenCTI refusing the
bundle) stops the run; the next run starts again at that notification.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from typing import Any

from vtframework import Observable, blocks
from vtframework.errors import AuthenticationError, ConfigError, NotFoundError, VTError

from vtframework_plugins.notifications import sightings
from vtframework_plugins.notifications.converter import notification_objects, skip_reason, stops_the_run
from vtframework_plugins.notifications.progress import Progress
from vtframework_plugins.notifications.rulesets import Rulesets
from vtframework_plugins.notifications.settings import Options, option_env
from vtframework_plugins.notifications.source import FEEDS, PAGE_SIZE, PRIVILEGE, BadItem, Notification, pages

log = logging.getLogger("vtframework.notifications")
#: Listing pages read in one run at most (40 notifications each); the next run goes on from there.
MAX_PAGES = 500


class Run:
    """The state of one run: options, progress, counters."""

    def __init__(self, context: Any, settings: Any, now: int | None = None) -> None:
        self.context = context
        self.opts = Options.from_settings(settings)
        if self.opts.filter_with_tag and any(c.isspace() for c in self.opts.filter_with_tag):
            raise ConfigError(f"{option_env('filter_with_tag')} must be one tag, without spaces "
                              f"(got {self.opts.filter_with_tag!r})", key="virustotal_livehunt_notifications.filter_with_tag")
        self.feed = FEEDS[self.opts.source]()
        self.now = int(time.time()) if now is None else now
        self.progress = Progress.load(context.checkpoint, context.connector_state, self.feed.name, self.now)
        self.rulesets = Rulesets(context.client, context.state, context.opencti, context.log)
        self.pending = sightings.namespace(settings["connector.id"])
        self.imported = 0
        self.handled = 0
        self.skipped: Counter[str] = Counter()
        self.sighted = 0
        self.deleted = 0

    # -- the listing --------------------------------------------------------------------------
    def execute(self) -> str | None:
        progress = self.progress
        progress.begin()
        newer_than, older_than = progress.bounds
        params = self.feed.params(newer_than=newer_than, older_than=older_than, tag=self.opts.filter_with_tag,
                                  limit=min(PAGE_SIZE, self.opts.limit or PAGE_SIZE))
        finished, stopped = True, False
        seen: set[str] = set()
        for number, page in enumerate(pages(self.context.client, self.feed, params), 1):
            if number > MAX_PAGES:  # a listing that never ends (a broken cursor) must not hold the run forever
                finished, stopped = False, True
                break
            for item in page:
                if self.context.stopping() or (self.opts.limit and self.handled >= self.opts.limit):
                    finished, stopped = False, True
                    break
                if self._one(item, seen) == "floor":
                    break
            else:
                # Stop before asking for a page this run may not handle.
                if not (self.context.stopping() or (self.opts.limit and self.handled >= self.opts.limit)):
                    continue
                finished, stopped = False, True
            break
        if finished:
            self._end_sweep()
        else:
            self._save()
        return self._message(stopped)

    def _one(self, item: Any, seen: set[str]) -> str:
        """Handle one listing item; ``"floor"`` once the listing has gone below what was handled before."""
        progress = self.progress
        try:
            n = self.feed.parse(item)
        except BadItem as bad:
            if bad.id is None or bad.date is None:
                # Nowhere to place it in the listing: it is reported each time it is met.
                self._skip("malformed", str(bad))
                return "skipped"
            if progress.below_floor(bad.date):
                return "floor"
            if progress.handled_before(bad.date, bad.id) or bad.id in seen:
                return "done"
            seen.add(bad.id)
            self._skip("malformed", str(bad))
            progress.handled(bad.date, bad.id)
            self.handled += 1
            return "skipped"
        if progress.below_floor(n.date):
            return "floor"
        if progress.handled_before(n.date, n.id) or n.id in seen:
            return "done"
        seen.add(n.id)
        self.handled += 1
        # What is asked of VirusTotal about the match is checked against the marking it is imported under.
        with self.context.client.scope(self._as_observable(n)):
            if self.feed.needs_entity:
                completed = self._with_entity(n)
                if completed is None:
                    progress.handled(n.date, n.id)
                    return "skipped"
                n = completed
            reason = skip_reason(n, self.opts, self.now)
            if reason is not None:
                self._skip("filtered", reason, level=logging.INFO)
                progress.handled(n.date, n.id)
                return "skipped"
            self._import(n)
        return "imported"

    def _as_observable(self, n: Notification) -> Observable:
        """The matched entity, marked as everything imported is (``…_TLP_LEVEL``)."""
        return Observable(entity_type=n.entity_type, value=n.entity_id, stix={}, markings=(self.opts.marking,),
                          tlp=self.opts.tlp)

    # -- one notification ---------------------------------------------------------------------
    def _import(self, n: Notification) -> None:
        context = self.context
        try:
            built = notification_objects(context, n, self.opts, self.rulesets)
        except Exception as exc:  # the notification's own problem: skip it, never jam the stream
            if stops_the_run(exc):
                raise
            kind = "malformed" if isinstance(exc, BadItem) else "failed"
            self._skip(kind, str(exc) if isinstance(exc, (BadItem, VTError)) else
                       f"{n.subject}: not imported ({type(exc).__name__}: {exc})", exc_info=not isinstance(exc, VTError))
            self.progress.handled(n.date, n.id)
            return
        for warning in built.warnings:
            context.warn(warning)
        # Failures to send are OpenCTI's, not the notification's: they stop the run here, before any progress.
        context.send(built.objects, n.subject)
        self.imported += 1
        if built.hunting_indicator is not None:
            sightings.record(context.state, self.pending, self.progress.sweep_id or "", n, built.hunting_indicator,
                             built.subject, built.label)
        self.progress.handled(n.date, n.id)
        self._save()
        if self.opts.delete_notification:
            self._delete(n)

    def _with_entity(self, n: Notification) -> Notification | None:
        """The matched file's object, for a listing that names the file only (cached like any lookup)."""
        try:
            answer = self.context.client.get(f"/files/{n.entity_id}", subject=f"file {n.entity_id}")
        except NotFoundError as exc:
            self._skip("malformed", f"{n.subject}: the matched file is not on VirusTotal ({exc})")
            return None
        except VTError as exc:
            if stops_the_run(exc):
                raise
            self._skip("failed", f"{n.subject}: the matched file could not be read ({exc})")
            return None
        return dataclasses.replace(n, attributes=blocks.attributes(answer))

    def _delete(self, n: Notification) -> None:
        try:
            self.context.client.delete(self.feed.delete_path(n.id), subject=f"Livehunt {n.subject}",
                                       privilege=PRIVILEGE)
            self.deleted += 1
        except NotFoundError:
            self.deleted += 1  # gone already: what was asked
        except AuthenticationError:
            raise
        except VTError as exc:
            # Imported and checkpointed already: a failed deletion costs the deletion, never the run.
            self.context.warn(f"{n.subject} was imported but not deleted from VirusTotal: {exc}")

    # -- bookkeeping ----------------------------------------------------------------------------
    def _skip(self, kind: str, reason: str, level: int = logging.WARNING, exc_info: bool = False) -> None:
        self.skipped[kind] += 1
        if level >= logging.WARNING:
            self.context.warn(reason)
            if exc_info:
                self.context.log.debug("traceback of the skipped notification", exc_info=True)
        else:
            self.context.log.log(level, "%s", reason)

    def _save(self) -> None:
        self.context.save_checkpoint(self.progress.to_checkpoint())

    def _end_sweep(self) -> None:
        """The sweep reached the floor: its Sightings go out, its top becomes the floor."""
        progress, context = self.progress, self.context
        sweep_id = progress.sweep_id or ""
        groups = sightings.pending(context.state, self.pending, sweep_id)
        made = sightings.sightings(context.factory([self.opts.marking]), groups)
        for batch in sightings.batches(made):
            context.send(batch, f"{len(batch)} Sighting(s) of hunting indicators")
        self.sighted = len(made)
        progress.finish()
        self._save()
        sightings.forget(context.state, self.pending)

    def _message(self, stopped: bool) -> str | None:
        if not (self.handled or self.sighted):
            return None
        parts = [f"{self.imported} Livehunt notification(s) imported"]
        if self.skipped:
            parts.append("skipped: " + ", ".join(f"{count} {kind}" for kind, count in sorted(self.skipped.items())))
        if self.sighted:
            parts.append(f"{self.sighted} Sighting(s) of hunting indicators")
        if self.deleted:
            parts.append(f"{self.deleted} deleted from VirusTotal")
        if stopped:
            parts.append("more are left for the next run" if not self.context.stopping() else "stopped at shutdown")
        return "; ".join(parts)


def run_import(context: Any, settings: Any) -> str | None:
    """``vtf_import``: one run of the Livehunt notifications import."""
    return Run(context, settings).execute()
