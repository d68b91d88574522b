"""External-import support of the fake OpenCTI: connector state, works, the queue check, and the worker's view.

Mixed into :class:`~vtframework.testing.fakeopencti.FakeOpenCTI`. It models
what pycti's scheduled (external-import) connectors rely on, as the platform
does it:

- the **connector state**: ``PingConnector`` stores what the connector sends
  and answers with it; ``RegisterConnector`` hands the stored state back, so a
  restarted connector resumes where it was; :meth:`reset_state` is the UI's
  "reset the state" (the next ping answers with no state);
- **works**: ``workAdd`` for a registered connector only; ``workToReceived``,
  ``workToProcessed``, ``addExpectations``, ``pingWork``, ``reportExpectation``
  on a known work only (``WORK_NOT_ALIVE`` otherwise, as the platform says);
- ``GetConnector`` (pycti's queue check before each scheduled run): the
  connector with ``connector_queue_details``, the message count read from its
  queue in RabbitMQ and a size set by :meth:`set_queue_size`.

:func:`ingest` is what OpenCTI's worker makes of pushed bundles where it
matters for imports: one object per id, and a Sighting arriving again with a
wider first/last seen is widened and its count added (the platform's upsert
rule), while a Sighting arriving again unchanged changes nothing.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable


class GraphQLError(Exception):
    """An error the platform answers in GraphQL's ``errors`` list (HTTP 200)."""


@dataclass
class Work:
    id: str
    connector_id: str | None
    name: str
    status: str = "wait"
    message: str | None = None
    in_error: bool = False
    expectations: int = 0
    created: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat())


class ExternalImportSupport:
    """The platform's side of connector state and works (see the module docstring)."""

    def _init_import_support(self) -> None:
        self.connector_states: dict[str, str | None] = {}
        self.connector_infos: dict[str, dict[str, Any]] = {}
        self.works: dict[str, Work] = {}
        self._resets: set[str] = set()
        self._queue_bytes: dict[str, int] = {}
        self._works_lock = threading.Lock()

    # -- what tests do ------------------------------------------------------------------
    def reset_state(self, connector_id: str) -> None:
        """The UI's "reset the connector state": the connector learns it at its next ping."""
        self._resets.add(connector_id)

    def set_queue_size(self, connector_id: str, size_bytes: int) -> None:
        """What ``connector_queue_details.messages_size`` reports (pycti skips runs above its threshold)."""
        self._queue_bytes[connector_id] = size_bytes

    def declare_work(self, work_id: str, connector_id: str | None = None, name: str = "") -> None:
        """A work the platform created itself (an enrichment request's)."""
        with self._works_lock:
            self.works.setdefault(work_id, Work(work_id, connector_id, name))

    def state_of(self, connector_id: str) -> Any:
        """The connector state as the platform holds it (parsed), or None."""
        import json

        raw = self.connector_states.get(connector_id)
        return json.loads(raw) if raw else None

    def works_of(self, connector_id: str) -> list[Work]:
        with self._works_lock:
            return [w for w in self.works.values() if w.connector_id == connector_id]

    # -- GraphQL --------------------------------------------------------------------------
    def stored_state(self, connector_id: str) -> str | None:
        return self.connector_states.get(connector_id)

    def _op_PingConnector(self, variables: dict, files: dict) -> Any:
        connector_id = variables.get("id")
        if connector_id not in self.registered:  # type: ignore[attr-defined]
            raise GraphQLError(f"Connector {connector_id} not found")
        if connector_id in self._resets:
            self._resets.discard(connector_id)
            self.connector_states[connector_id] = None
        else:
            state = variables.get("state")
            self.connector_states[connector_id] = None if state in (None, "null", "") else state
        self.connector_infos[connector_id] = dict(variables.get("connectorInfo") or {})
        return {"pingConnector": {"id": connector_id, "connector_state": self.connector_states[connector_id],
                                  "connector_info": self.connector_infos[connector_id]}}

    def _op_GetConnector(self, variables: dict, files: dict) -> Any:
        connector_id = variables.get("id")
        connector = self.registered.get(connector_id)  # type: ignore[attr-defined]
        if connector is None:
            return {"connector": None}
        return {"connector": {
            "id": connector_id, "name": connector.get("name"), "active": True, "auto": connector.get("auto"),
            "only_contextual": connector.get("only_contextual"), "connector_type": connector.get("type"),
            "connector_scope": connector.get("scope"), "connector_state": self.connector_states.get(connector_id),
            "connector_queue_details": {"messages_number": self._queued(connector_id),
                                        "messages_size": self._queue_bytes.get(connector_id, 0)},
            "updated_at": "2026-01-01T00:00:00.000Z", "created_at": "2026-01-01T00:00:00.000Z",
            "config": {"listen": f"listen_{connector_id}", "listen_exchange": "amqp.connector.exchange",
                       "push": f"push_{connector_id}", "push_exchange": "amqp.worker.exchange",
                       "push_routing": f"push_routing_{connector_id}"},
            "built_in": False,
        }}

    def _queued(self, connector_id: str) -> int:
        try:
            with self._channel() as channel:  # type: ignore[attr-defined]
                return channel.queue_declare(queue=f"push_{connector_id}", passive=True).method.message_count
        except Exception:  # the queue may be gone at teardown
            return 0

    def _op_workAdd(self, variables: dict, files: dict) -> Any:
        connector_id = variables.get("connectorId")
        if connector_id not in self.registered:  # type: ignore[attr-defined]
            raise GraphQLError(f"Connector {connector_id} not found")
        work = Work(f"work_{connector_id}_{uuid.uuid4()}", connector_id, str(variables.get("friendlyName") or ""))
        with self._works_lock:
            self.works[work.id] = work
        return {"workAdd": {"id": work.id}}

    _op_WorkAdd = _op_workAdd

    def _work(self, variables: dict) -> Work:
        with self._works_lock:
            work = self.works.get(variables.get("id"))
        if work is None:
            raise GraphQLError(f"WORK_NOT_ALIVE: work {variables.get('id')} does not exist")
        return work

    def _op_workToReceived(self, variables: dict, files: dict) -> Any:
        work = self._work(variables)
        work.status = "progress"
        return {"workEdit": {"toReceived": work.id}}

    def _op_workToProcessed(self, variables: dict, files: dict) -> Any:
        work = self._work(variables)
        work.status, work.message, work.in_error = "complete", variables.get("message"), bool(variables.get("inError"))
        return {"workEdit": {"toProcessed": work.id}}

    def _op_addExpectations(self, variables: dict, files: dict) -> Any:
        work = self._work(variables)
        work.expectations += int(variables.get("expectations") or 0)
        return {"workEdit": {"addExpectations": work.id}}

    def _op_pingWork(self, variables: dict, files: dict) -> Any:
        return {"workEdit": {"ping": self._work(variables).id}}

    def _op_reportExpectation(self, variables: dict, files: dict) -> Any:
        return {"workEdit": {"reportExpectation": self._work(variables).id}}


def ingest(bundles: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What the platform holds after importing ``bundles`` in order, by STIX id (see the module docstring)."""
    held: dict[str, dict[str, Any]] = {}
    for bundle in bundles:
        for obj in bundle.get("objects", []):
            current = held.get(obj["id"])
            if current is None:
                held[obj["id"]] = dict(obj)
            elif obj.get("type") == "sighting":
                first = min(current["first_seen"], obj["first_seen"], key=_moment)
                last = max(current["last_seen"], obj["last_seen"], key=_moment)
                if (first, last) != (current["first_seen"], current["last_seen"]):
                    current.update(first_seen=first, last_seen=last, count=current["count"] + obj.get("count", 1))
            else:
                held[obj["id"]] = {**current, **obj}
    return held


def _moment(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
