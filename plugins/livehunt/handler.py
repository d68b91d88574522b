"""Keeps one VirusTotal Livehunt ruleset in step with each hunted OpenCTI YARA indicator.

Every stream event about a YARA indicator comes down to one question: should a
ruleset run for it, and does the one in VirusTotal say what it should? The
answer is applied with the fewest requests: none when nothing changed, a PATCH
of the changed attributes (never DELETE + POST, so the ruleset id and its
notification history survive), a POST only when no ruleset exists, neither in
the state nor, found by its marker, in VirusTotal.

The state also remembers, per indicator, the version (``modified``) last
applied, even after its ruleset is gone: a replayed event carrying an older
version is skipped, so a replay never recreates a ruleset only to delete it
again, nor resends a rule whose indicator has since become too restricted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from vtframework import EgressPolicy
from vtframework.errors import (
    BadRequestError,
    ForbiddenError,
    InputError,
    MalformedResponse,
    NotFoundError,
    VTError,
)

from vtframework_plugins.livehunt.indicator import (
    YaraIndicator,
    is_yara_indicator,
    older,
    parse_indicator,
    version_of,
)
from vtframework_plugins.livehunt.ruleset import desired_attributes, differences, digest, parse_owner
from vtframework_plugins.livehunt.vtapi import HuntingRulesets

#: State namespace: indicator STIX id -> what we know of its ruleset.
NS = "livehunt"


def state_entry(
    ruleset_id: str, attributes: Mapping[str, Any], editors: list[str], version: str = ""
) -> dict[str, Any]:
    """What the state keeps per indicator: the ruleset id, what the ruleset says, the version applied."""
    return {
        "ruleset_id": str(ruleset_id),
        "version": version,
        "name": attributes.get("name"),
        "rules_sha256": digest(str(attributes.get("rules") or "")),
        "enabled": attributes.get("enabled") is True,
        "limit": attributes.get("limit"),
        "notification_emails": sorted(attributes.get("notification_emails") or []),
        "editors": list(editors),
    }


def changes_since(entry: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes of ``wanted`` the ruleset recorded in ``entry`` does not have yet."""
    recorded = {
        "name": entry.get("name"),
        "enabled": entry.get("enabled"),
        "limit": entry.get("limit"),
        "notification_emails": entry.get("notification_emails") or [],
    }
    changed = differences(recorded, {k: v for k, v in wanted.items() if k != "rules"})
    if entry.get("rules_sha256") != digest(wanted["rules"]):
        changed["rules"] = wanted["rules"]
    return changed


def egress_refusal(indicator: YaraIndicator, settings: Mapping[str, Any]) -> str | None:
    """Why the indicator's rule may not go to VirusTotal (its markings: TLP above ``VIRUSTOTAL_MAX_TLP``,
    PAP:RED, a marking the policy cannot place), or None. The client enforces the same policy on every request."""
    return EgressPolicy.from_settings(settings).refusal(indicator.marked, "livehunt")


def live(record: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The state record if it names a ruleset; None for no record or a tombstone (version only)."""
    return dict(record) if record and record.get("ruleset_id") else None


def merged_sources(context: Mapping[str, Any], target_id: str) -> list[tuple[str, str]]:
    """``(id, version)`` of the indicators a merge event folded into ``target_id``."""
    found = []
    for source in context.get("sources") or []:
        ident = source.get("id") if isinstance(source, Mapping) else source
        if isinstance(ident, str) and ident.startswith("indicator--") and ident != target_id:
            found.append((ident, version_of(source) if isinstance(source, Mapping) else ""))
    return found


def share_with_owners(
    api: HuntingRulesets, entry: dict[str, Any], settings: Mapping[str, Any], subject: str, log: logging.Logger
) -> bool:
    """Add the configured shared owners the ruleset in ``entry`` lacks (one request each, so one
    unknown name does not keep the others out); updates ``entry["editors"]``. True when any was added."""
    owners = list(settings["virustotal_livehunt.shared_owners"])
    missing = [owner for owner in owners if owner not in entry.get("editors", [])]
    for owner in missing:
        try:
            api.add_editors(entry["ruleset_id"], [parse_owner(owner)], subject=subject)
        except MalformedResponse as err:
            # A 2xx without a JSON envelope: VirusTotal took the request (its body is not documented).
            if not (err.status and 200 <= err.status < 300):
                raise
        except (BadRequestError, NotFoundError, ForbiddenError) as err:
            # Recorded anyway: an unknown name would otherwise cost a request on every update.
            log.warning("could not share Livehunt ruleset %s with %s: %s", entry["ruleset_id"], owner, err)
    if missing:
        entry["editors"] = owners
    return bool(missing)


class Livehunt:
    def __init__(self, client: Any, state: Any, settings: Mapping[str, Any], log: logging.Logger | None = None):
        self.client = client
        self.api = HuntingRulesets(client)
        self.state = state
        self.settings = settings
        self.log = log or logging.getLogger("vtframework.livehunt")

    # -- stream events -------------------------------------------------------------
    def handle(self, event: Any) -> str | None:
        """Apply one stream event; a short account of what was done, or None when nothing was."""
        data = event.data
        if not is_yara_indicator(data):
            return None
        if event.type == "delete":
            return self._deleted(data)
        if event.type not in ("create", "update", "merge"):
            return None
        try:
            indicator = parse_indicator(data)
        except InputError as exc:
            return self._skip(str(exc))
        record = self.state.kv_get(NS, indicator.id)
        if self._stale(indicator.id, indicator.version, record):
            return None
        # Every request below is about this indicator: the client checks each against its markings.
        with self.client.scope(indicator.marked):
            return self._apply(event, indicator, record)

    def _apply(self, event: Any, indicator: YaraIndicator, record: Mapping[str, Any] | None) -> str | None:
        done = []
        if event.type == "merge":
            for source_id, version in merged_sources(event.context or {}, indicator.id):
                why = f"it was merged into {indicator.id}"
                done.append(self.forget(source_id, why, version, look_up=self._may_send(indicator)))
        done.append(self.reconcile(indicator, record))
        return "; ".join(message for message in done if message) or None

    def _deleted(self, data: Mapping[str, Any]) -> str | None:
        if not self.settings["connector.live_stream_listen_delete"]:
            return None
        ident = data.get("id")
        if not isinstance(ident, str) or not ident.startswith("indicator--"):
            return self._skip("delete event of a YARA indicator without a STIX id: skipped")
        version = version_of(data)
        if self._stale(ident, version, self.state.kv_get(NS, ident)):
            return None
        try:
            look_up = self._may_send(parse_indicator(data))
        except InputError:
            look_up = True  # the id is all a lookup sends
        return self.forget(ident, "the indicator was deleted", version, look_up=look_up, deleted=True)

    def _stale(self, indicator_id: str, version: str, record: Mapping[str, Any] | None) -> bool:
        recorded = (record or {}).get("version") or ""
        # After a delete, even an event of the same version (the last update, replayed) is history.
        replayed_after_delete = bool(record and record.get("deleted") and version and not older(recorded, version))
        if replayed_after_delete or (record and older(version, recorded)):
            self.log.info("indicator %s: skipped a replayed event of version %s (version %s already applied)",
                          indicator_id, version, record.get("version"))
            return True
        return False

    # -- the decision --------------------------------------------------------------
    def reconcile(self, indicator: YaraIndicator, record: Mapping[str, Any] | None = None) -> str | None:
        record = record if record is not None else self.state.kv_get(NS, indicator.id)
        entry = live(record)
        refusal = egress_refusal(indicator, self.settings)
        if refusal:
            return self._too_restricted(indicator, entry, refusal)
        if not indicator.hunted:
            return self._retire(indicator, entry) if entry else None
        wanted = desired_attributes(indicator, self.settings)
        if entry is None and record and record.get("rejected") == digest(wanted["rules"]):
            return None  # VirusTotal already refused this very rule; a replay must not spend quota on it again
        if entry is None:
            found = self.api.marked(indicator.id)
            if found:
                return self._adopt(indicator, found, wanted)
            return self._create(indicator, wanted)
        return self._update(indicator, entry, wanted)

    def forget(
        self, indicator_id: str, why: str, version: str = "", look_up: bool = True, deleted: bool = False
    ) -> str | None:
        """Delete the ruleset of an indicator that is gone; VirusTotal is searched when the state has none."""
        record = self.state.kv_get(NS, indicator_id)
        entry = live(record)
        ids = [entry["ruleset_id"]] if entry else []
        if not ids and look_up:
            ids = [r["id"] for r in self.api.marked(indicator_id)]
        for ruleset_id in ids:
            self.api.delete(ruleset_id, subject=_subject(indicator_id))
        self._tombstone(indicator_id, version, record, deleted)
        if not ids:
            return None
        return self._done(f"deleted Livehunt ruleset {', '.join(ids)} of indicator {indicator_id}: {why}")

    def _tombstone(
        self, indicator_id: str, version: str, record: Mapping[str, Any] | None, deleted: bool = False
    ) -> None:
        """Forget the ruleset but remember the version, so older replayed events stay ignored."""
        if version:
            self.state.kv_set(NS, indicator_id, {"ruleset_id": None, "version": version, "deleted": deleted})
        elif record is not None:
            self.state.kv_delete(NS, indicator_id)

    # -- actions -------------------------------------------------------------------
    def _create(self, indicator: YaraIndicator, wanted: dict[str, Any]) -> str:
        try:
            created = self.api.create(wanted, subject=_subject(indicator.id))
        except BadRequestError as err:
            self.state.kv_set(NS, indicator.id, {"ruleset_id": None, "version": indicator.version,
                                                 "rejected": digest(wanted["rules"])})
            return self._rejected(indicator, err)
        entry = state_entry(created["id"], wanted, editors=[], version=indicator.version)
        self.state.kv_set(NS, indicator.id, entry)
        # Said as soon as it is true: a request below may fail (quota) and the retry finds the ruleset made.
        message = self._done(f"created Livehunt ruleset {created['id']} \"{wanted['name']}\" for {indicator.label}")
        self._share(indicator, entry)
        # Another replica may have created one at the same moment: every replica keeps the same one.
        found = self.api.marked(indicator.id)
        if len(found) > 1:
            editors = entry["editors"] if found[0]["id"] == created["id"] else []
            return self._adopt(indicator, found, wanted, editors)
        return message

    def _adopt(
        self,
        indicator: YaraIndicator,
        found: list[dict[str, Any]],
        wanted: dict[str, Any],
        editors: list[str] | tuple[str, ...] = (),
    ) -> str:
        """Take over the rulesets VirusTotal holds for the indicator: keep the first, delete the rest."""
        keep, extras = found[0], found[1:]
        for extra in extras:
            self.api.delete(extra["id"], subject=_subject(indicator.id))
        attributes = dict(keep.get("attributes") or {})
        changes = differences(attributes, wanted)
        notes = [f"adopted Livehunt ruleset {keep['id']} of {indicator.label}"]
        if extras:
            notes.append(f"deleted duplicate {', '.join(e['id'] for e in extras)}")
        if changes:
            try:
                self.api.patch(keep["id"], changes, subject=_subject(indicator.id))
                attributes.update(changes)
                notes.append(f"updated {', '.join(sorted(changes))}")
            except BadRequestError as err:
                notes.append(self._rejected(indicator, err))
        entry = state_entry(keep["id"], attributes, editors=list(editors), version=indicator.version)
        self.state.kv_set(NS, indicator.id, entry)
        self._share(indicator, entry)
        return self._done("; ".join(notes))

    def _update(self, indicator: YaraIndicator, entry: dict[str, Any], wanted: dict[str, Any]) -> str | None:
        changes = changes_since(entry, wanted)
        if changes:
            try:
                self.api.patch(entry["ruleset_id"], changes, subject=_subject(indicator.id))
            except NotFoundError:
                # Deleted in VirusTotal behind our back: the state is stale, start over.
                self.log.warning("Livehunt ruleset %s of %s is gone from VirusTotal; recreating it",
                                 entry["ruleset_id"], indicator.label)
                tombstone = {"ruleset_id": None, "version": entry.get("version") or ""}
                self.state.kv_set(NS, indicator.id, tombstone)
                return self.reconcile(indicator, tombstone)
            except BadRequestError as err:
                return self._rejected(indicator, err)
            entry = state_entry(entry["ruleset_id"], wanted, entry.get("editors") or [], indicator.version)
            self.state.kv_set(NS, indicator.id, entry)
        shared = self._share(indicator, entry)
        if not changes and not shared:
            return None
        what = ", ".join(sorted(changes)) if changes else "editors"
        return self._done(f"updated Livehunt ruleset {entry['ruleset_id']} of {indicator.label}: {what}")

    def _retire(self, indicator: YaraIndicator, entry: dict[str, Any]) -> str | None:
        why = "the indicator is revoked" if indicator.revoked else "detection is off"
        if self.settings["virustotal_livehunt.on_detection_false"] != "disable":
            return self.forget(indicator.id, why, indicator.version)
        if not entry.get("enabled"):
            return None
        try:
            self.api.patch(entry["ruleset_id"], {"enabled": False}, subject=_subject(indicator.id))
        except NotFoundError:
            self._tombstone(indicator.id, indicator.version, entry)
            return self._done(f"Livehunt ruleset {entry['ruleset_id']} of {indicator.label} was already gone")
        self.state.kv_set(NS, indicator.id, {**entry, "enabled": False, "version": indicator.version})
        return self._done(f"disabled Livehunt ruleset {entry['ruleset_id']} of {indicator.label}: {why}")

    def _too_restricted(self, indicator: YaraIndicator, entry: dict[str, Any] | None, refusal: str) -> str:
        message = refusal
        if entry:
            # The rule must not stay where its marking no longer lets it be.
            self.api.delete(entry["ruleset_id"], subject=_subject(indicator.id))
            self._tombstone(indicator.id, indicator.version, entry)
            message += f"; its Livehunt ruleset {entry['ruleset_id']} was deleted"
        self.log.warning(message)
        return message

    def _share(self, indicator: YaraIndicator, entry: dict[str, Any]) -> bool:
        """Give the configured owners edit rights they do not have yet; True when any request was made."""
        if not share_with_owners(self.api, entry, self.settings, _subject(indicator.id), self.log):
            return False
        self.state.kv_set(NS, indicator.id, entry)
        return True

    # -- helpers -------------------------------------------------------------------
    def _may_send(self, indicator: YaraIndicator) -> bool:
        return egress_refusal(indicator, self.settings) is None

    def _rejected(self, indicator: YaraIndicator, err: VTError) -> str:
        message = f"VirusTotal rejected the YARA rule of {indicator.label}: {err.vt_message or err}"
        self.log.warning(message)
        return message

    def _skip(self, message: str) -> str:
        self.log.warning(message)
        return message

    def _done(self, message: str) -> str:
        self.log.info(message)
        return message


def _subject(indicator_id: str) -> str:
    return f"Livehunt ruleset of {indicator_id}"
