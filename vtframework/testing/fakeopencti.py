"""A fake OpenCTI platform on 127.0.0.1 for end-to-end tests with the real pycti helper.

It executes the GraphQL that ``OpenCTIConnectorHelper`` sends against the part
of OpenCTI's schema it models (``fakeopencti.graphql``), as the platform of the
version it announces (by default the installed pycti's): a field, argument or
type the platform has not is refused with the platform's message, and so is
anything the fake does not model, so nothing is answered with a made-up
``{}``. Refusals are kept in :attr:`FakeOpenCTI.refusals`.

What it models, like the platform: registration (declaring the connector's
queues in a real RabbitMQ), pings that keep the connector's state, works,
entity reads, paged lists with real cursors and filters, the Artifact upload
(an upload that opens as a ZIP is replaced by its first entry; the hashes are
those of what is stored), file downloads from ``/storage/get``, live streams
as SSE, playbook steps and bundle pushes. Outages: :meth:`FakeOpenCTI.outage`
answers every request with GraphQL errors or HTTP 502s for a while. Tests publish platform-shaped
messages with :meth:`FakeOpenCTI.publish` and read what the connector pushed
with :meth:`FakeOpenCTI.pushed_bundles`.

Adding an operation: declare it in ``fakeopencti.graphql`` and add a
``_resolve_<root field>`` method here; construction fails while a root field
has no resolver.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import tempfile
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO, Any, Iterable

from graphql import ExecutionResult, GraphQLError, parse, validate
from graphql.execution import execute_sync
from graphql.language import OperationDefinitionNode

from vtframework.policy.markings import TLP_MARKINGS
from vtframework.testing.fakeopencti_schema import schema_for, validation_rules, version_tuple
from vtframework.testing.server import LocalServer

CONNECTOR_EXCHANGE = "amqp.connector.exchange"
WORKER_EXCHANGE = "amqp.worker.exchange"
#: The platform's largest page (ES_MAX_PAGINATION): a larger ``first`` is capped to it.
MAX_PAGE_SIZE = 5000
#: What a platform having a bad minute answers: ``(HTTP status, content type, body)``.
OUTAGES = {
    # The API is up but its database is not: every operation fails with the platform's unknown error.
    "graphql_error": (200, "application/json", json.dumps({
        "errors": [{"message": "An unknown error has occurred", "name": "UnknownError",
                    "extensions": {"code": "INTERNAL_SERVER_ERROR"}}],
        "data": None,
    }).encode()),
    # The reverse proxy in front of the platform has no backend (a restart, a rolling upgrade).
    "http_502": (502, "text/html", b"<html><head><title>502 Bad Gateway</title></head>"
                                   b"<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center>"
                                   b"</body></html>"),
}
DEFAULT_PAGE_SIZE = 500
#: Uploads that stay in memory; larger ones go to a temporary file.
_KEEP_BELOW = 16 << 20
#: Office Open XML types the platform stores as uploaded instead of extracting their first entry;
#: recent platforms only (modelled from the 7.x line on).
OOXML_TYPES = (
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
)
OOXML_EXTENSIONS = (".docx", ".xlsx", ".pptx")
OOXML_EXEMPT_SINCE = "7.0.0"

#: OpenCTI entity type -> GraphQL type of the objects the fake returns.
GRAPHQL_TYPES = {
    "StixFile": "StixFile", "Artifact": "Artifact", "IPv4-Addr": "IPv4Addr", "IPv6-Addr": "IPv6Addr",
    "Domain-Name": "DomainName", "Hostname": "Hostname", "Url": "Url", "Indicator": "Indicator",
    "Organization": "Organization", "Marking-Definition": "MarkingDefinition", "Label": "Label",
    "External-Reference": "ExternalReference", "Kill-Chain-Phase": "KillChainPhase",
}
_CORE = ["Basic-Object", "Stix-Object", "Stix-Core-Object"]
PARENT_TYPES = {
    **{t: [*_CORE, "Stix-Cyber-Observable"] for t in ("IPv4-Addr", "IPv6-Addr", "Domain-Name", "Hostname", "Url")},
    "StixFile": [*_CORE, "Stix-Cyber-Observable", "Hashed-Observable"],
    "Artifact": [*_CORE, "Stix-Cyber-Observable", "Hashed-Observable"],
    "Indicator": [*_CORE, "Stix-Domain-Object"],
    "Organization": [*_CORE, "Stix-Domain-Object", "Identity"],
    "Marking-Definition": ["Basic-Object", "Stix-Object", "Stix-Meta-Object"],
}
_TLP_ORDER = {"TLP:CLEAR": 1, "TLP:GREEN": 2, "TLP:AMBER": 3, "TLP:AMBER+STRICT": 3, "TLP:RED": 4}
_TLP_COLOR = {"TLP:CLEAR": "#ffffff", "TLP:GREEN": "#2e7d32", "TLP:AMBER": "#d84315",
              "TLP:AMBER+STRICT": "#d84315", "TLP:RED": "#c62828"}
_EPOCH = "2026-01-01T00:00:00.000Z"


def installed_pycti_version() -> str:
    """The version of the installed pycti: what the fake announces unless told otherwise."""
    from importlib.metadata import version

    return version("pycti")


@dataclass
class GraphQLCall:
    operation: str
    variables: dict[str, Any]
    headers: dict[str, str]


@dataclass(frozen=True)
class Work:
    """A work as the platform holds it (what :meth:`FakeOpenCTI.works_of` gives tests)."""

    id: str
    connector_id: str | None
    name: str
    status: str
    message: str | None
    in_error: bool
    expectations: int


@dataclass
class UploadedFile:
    """A file part of a multipart request, hashed while it streamed in (spooled to disk when large)."""

    name: str
    size: int
    sha256: str
    content_type: str
    stream: IO[bytes]

    def read(self) -> bytes:
        self.stream.seek(0)
        return self.stream.read()


@dataclass
class _Stream:
    """A live stream's history: every connection replays what follows its Last-Event-ID."""

    events: list[tuple[str, str, str]] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    connections: int = 0
    last_event_ids: list[str] = field(default_factory=list)

    def after(self, event_id: str) -> int:
        """Index of the first event after ``event_id`` (0 for an unknown id, like ``0-0``)."""
        ids = [item[1] for item in self.events]
        return ids.index(event_id) + 1 if event_id in ids else 0


def _jwks() -> str:
    """A JWKS with one RSA key (pycti 7 parses it even for the AMQP listen protocol)."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="fake-opencti", use="sig", alg="RS256")
    return json.dumps({"keys": [jwk]})


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _cursor(index: int) -> str:
    return base64.b64encode(json.dumps([index]).encode()).decode()


def _connection(nodes: list[Any]) -> dict[str, Any]:
    """A whole list as one page (nested connections: the platform answers them in one page too)."""
    edges = [{"cursor": _cursor(i), "node": node} for i, node in enumerate(nodes)]
    return {"edges": edges, "pageInfo": {"startCursor": edges[0]["cursor"] if edges else "",
                                         "endCursor": edges[-1]["cursor"] if edges else "",
                                         "hasNextPage": False, "hasPreviousPage": False,
                                         "globalCount": len(edges)}}


class _Root:
    """The root value: root field ``x`` is resolved by ``FakeOpenCTI._resolve_x``."""

    def __init__(self, fake: "FakeOpenCTI") -> None:
        self._fake = fake

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fake, f"_resolve_{name}")


class FakeOpenCTI(LocalServer):
    """See the module docstring.

    :param amqp: ``(host, port, user, password)`` of the RabbitMQ the
        connector is told to use.
    :param version: the platform version it announces and whose schema it
        answers with (default: the installed pycti's, as a matching deployment).
    :param token: the only token accepted (default: any bearer token).
    :param max_page_size: the platform's page cap; lower it to make a few
        items span several pages.
    """

    def __init__(
        self,
        amqp: tuple[str, int, str, str] = ("127.0.0.1", 5672, "guest", "guest"),
        version: str | None = None,
        token: str | None = None,
        max_page_size: int = MAX_PAGE_SIZE,
        artifact_zip_password: str = "infected",
    ) -> None:
        self.amqp = amqp
        self.version = version or installed_pycti_version()
        version_tuple(self.version)
        self.token = token
        self.max_page_size = max_page_size
        self.artifact_zip_password = artifact_zip_password
        self.schema = schema_for(self.version)
        self._rules = validation_rules(self.version)
        missing = [name for root in (self.schema.query_type, self.schema.mutation_type) if root is not None
                   for name in root.fields if not callable(getattr(self, f"_resolve_{name}", None))]
        if missing:
            raise TypeError(f"fake OpenCTI: root fields without a resolver: {', '.join(missing)}")
        self.entities: dict[str, dict[str, Any]] = {}
        #: YARA and other indicators the platform holds, in list order.
        self.indicators: list[dict[str, Any]] = []
        #: Artifacts by the SHA-256 of the file the platform stored.
        self.artifacts: dict[str, dict[str, Any]] = {}
        self.files: dict[str, dict[str, Any]] = {}
        self.calls: list[GraphQLCall] = []
        #: What the fake refused, one line each (operation: message): empty in a run that went right.
        self.refusals: list[str] = []
        self.registered: dict[str, dict[str, Any]] = {}
        #: Connector ids in the order they registered (a replica registers the same id again).
        self.registrations: list[str] = []
        self.connectors: dict[str, dict[str, Any]] = {}
        self.works: dict[str, dict[str, Any]] = {}
        #: Connectors whose state the UI reset: their next ping is answered with no state.
        self._resets: set[str] = set()
        #: What ``connector_queue_details.messages_size`` reports, per connector.
        self._queue_bytes: dict[str, int] = {}
        self.streams: dict[str, _Stream] = {}
        self.heartbeat = 1.0
        self._lock = threading.RLock()
        self._jwks_text: str | None = None
        self._stopping = threading.Event()
        self._spooled: list[IO[bytes]] = []
        self._markings = {tlp: self._tlp_marking(tlp) for tlp in TLP_MARKINGS}
        #: The outage under way: ``(kind, monotonic end)``, or None.
        self._outage: tuple[str, float] | None = None
        #: Requests an outage answered (their operation names), in order.
        self.outage_refused: list[str] = []

    # -- lifecycle --------------------------------------------------------
    def start(self) -> "FakeOpenCTI":
        self._serve(ThreadingHTTPServer, _Handler, name="fake-opencti")
        return self

    def stop(self) -> None:
        self._stopping.set()
        for stream in self.streams.values():
            with stream.changed:
                stream.changed.notify_all()
        self._shutdown()
        for connector_id in list(self.registered):
            self._delete_queues(connector_id)
        for spooled in self._spooled:
            spooled.close()

    # -- what tests set up --------------------------------------------------
    def add_entity(self, entity: dict[str, Any]) -> dict[str, Any]:
        """An entity as OpenCTI's GraphQL returns it (``standard_id``, ``entity_type``…; the rest defaulted).

        Lists given for connections (``externalReferences``, ``importFiles``,
        ``indicators``) become connections; markings given by their standard
        id become the platform's marking definitions.
        """
        entity_type = entity.get("entity_type")
        if entity_type not in PARENT_TYPES:
            raise ValueError(f"fake OpenCTI does not model {entity_type!r} entities")
        if not entity.get("standard_id"):
            raise ValueError("an entity needs its standard_id")
        self._complete(entity)
        with self._lock:
            for key in (entity["id"], entity["standard_id"], *entity["x_opencti_stix_ids"]):
                self.entities[key] = entity
            if entity_type == "Indicator" and entity not in self.indicators:
                self.indicators.append(entity)
        return entity

    def enrichment_message(
        self, entity: dict[str, Any], stix_entity: dict[str, Any] | None, work_id: str | None = None
    ) -> dict[str, Any]:
        """The message the platform sends for a manual enrichment (``enrichment_resolution: none``)."""
        work_id = work_id or self._new_work(f"Enrichment of {entity['standard_id']}")
        return {
            "internal": {"work_id": work_id, "applicant_id": None, "draft_id": None,
                         "trigger": "update", "mode": "manual"},
            "event": {
                "event_type": "INTERNAL_ENRICHMENT",
                "entity_id": entity["standard_id"],
                "entity_type": entity["entity_type"],
                "stix_entity": json.dumps(stix_entity) if stix_entity is not None else None,
                "stix_objects": None,
            },
        }

    def playbook_message(self, entity_id: str, bundle: dict[str, Any]) -> dict[str, Any]:
        return {
            "internal": {
                "work_id": None, "applicant_id": None, "draft_id": None, "trigger": "create", "mode": "auto",
                "playbook": {"event_id": str(uuid.uuid4()), "execution_id": str(uuid.uuid4()),
                             "playbook_id": str(uuid.uuid4()), "data_instance_id": entity_id,
                             "step_id": str(uuid.uuid4()), "previous_step_id": str(uuid.uuid4())},
            },
            "event": {"entity_id": entity_id, "bundle": bundle},
        }

    def outage(self, kind: str, seconds: float) -> None:
        """Answer every GraphQL request as :data:`OUTAGES` ``[kind]`` for ``seconds`` from now.

        Nothing is executed meanwhile (a ``workToProcessed`` refused is not
        recorded in :attr:`calls`); the refused operations are listed in
        :attr:`outage_refused`.
        """
        if kind not in OUTAGES:
            raise ValueError(f"unknown outage {kind!r}; choose one of {', '.join(OUTAGES)}")
        with self._lock:
            self._outage = (kind, time.monotonic() + seconds)

    def end_outage(self) -> None:
        with self._lock:
            self._outage = None

    def _outage_answer(self, operation: str) -> tuple[int, str, bytes] | None:
        with self._lock:
            if self._outage is None or time.monotonic() >= self._outage[1]:
                return None
            self.outage_refused.append(operation)
            return OUTAGES[self._outage[0]]

    def processed_counts(self, work_ids: Iterable[str]) -> dict[str, int]:
        """How many ``workToProcessed`` each work received (exactly 1 each when nothing was lost or doubled)."""
        counts = {work_id: 0 for work_id in work_ids}
        for call in list(self.calls):
            if call.operation == "workToProcessed" and call.variables.get("id") in counts:
                counts[call.variables["id"]] += 1
        return counts

    def reset_state(self, connector_id: str) -> None:
        """The UI's "reset the connector state": the connector learns it at its next ping."""
        with self._lock:
            self._resets.add(connector_id)

    def set_queue_size(self, connector_id: str, size_bytes: int) -> None:
        """What ``connector_queue_details.messages_size`` reports (pycti skips a scheduled run above its threshold)."""
        with self._lock:
            self._queue_bytes[connector_id] = size_bytes

    def state_of(self, connector_id: str) -> Any:
        """The connector state as the platform holds it (parsed), or None."""
        with self._lock:
            raw = (self.connectors.get(connector_id) or {}).get("connector_state")
        return json.loads(raw) if raw else None

    def works_of(self, connector_id: str) -> list[Work]:
        """The works a connector created (``workAdd``), oldest first."""
        with self._lock:
            return [Work(w["id"], w["connector_id"], w["name"], w["status"], w["message"], w["in_error"],
                         w["expectations"]) for w in self.works.values() if w["connector_id"] == connector_id]

    def publish(self, connector_id: str, message: dict[str, Any]) -> None:
        """Publish a platform-shaped message on the connector's listen queue."""
        import pika

        with self._channel() as channel:
            channel.basic_publish(
                exchange=CONNECTOR_EXCHANGE,
                routing_key=f"listen_routing_{connector_id}",
                body=json.dumps(message),
                properties=pika.BasicProperties(delivery_mode=2, content_encoding="utf-8"),
            )

    def pushed_messages(
        self, connector_id: str, timeout: float = 10.0, expect: int = 1
    ) -> list[tuple[str | None, dict[str, Any]]]:
        """``(work id, bundle)`` of each message the connector pushed, taken off its queue."""
        deadline = time.monotonic() + timeout
        found: list[tuple[str | None, dict[str, Any]]] = []
        with self._channel() as channel:
            while time.monotonic() < deadline:
                method, _props, body = channel.basic_get(f"push_{connector_id}", auto_ack=True)
                if method is None:
                    if len(found) >= expect:
                        break
                    time.sleep(0.05)
                    continue
                envelope = json.loads(body)
                found.append((envelope.get("work_id"), json.loads(base64.b64decode(envelope["content"]))))
        return found

    def pushed_bundles(self, connector_id: str, timeout: float = 10.0, expect: int = 1) -> list[dict[str, Any]]:
        """Bundles the connector pushed for import (one per object: pycti splits them)."""
        return [bundle for _work, bundle in self.pushed_messages(connector_id, timeout, expect)]

    def wait_consumers(self, connector_id: str, count: int = 1, timeout: float = 20.0) -> None:
        """Wait until ``count`` connector processes consume the listen queue."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._channel() as channel:
                declared = channel.queue_declare(queue=f"listen_{connector_id}", passive=True)
            if declared.method.consumer_count >= count:
                return
            time.sleep(0.05)
        raise AssertionError(f"fewer than {count} consumers on listen_{connector_id} after {timeout} s")

    def work_updates(self, work_id: str) -> list[GraphQLCall]:
        return [c for c in self.calls if c.operation in ("workToReceived", "workToProcessed")
                and c.variables.get("id") == work_id]

    def wait_processed(self, work_id: str, timeout: float = 20.0) -> GraphQLCall:
        """The ``workToProcessed`` call of a work, waiting for it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for call in list(self.calls):
                if call.operation == "workToProcessed" and call.variables.get("id") == work_id:
                    return call
            time.sleep(0.05)
        raise AssertionError(f"work {work_id} was never reported processed; refused: {self.refusals}")

    def wait_for(self, operation: str, timeout: float = 20.0, count: int = 1) -> list[GraphQLCall]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [c for c in list(self.calls) if c.operation == operation]
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no {operation} call within {timeout} s; refused: {self.refusals}")

    def stream_event(
        self, stream_id: str, event_type: str, data: dict[str, Any], event_id: str | None = None,
        context: dict[str, Any] | None = None,
    ) -> str:
        """Queue one live-stream event (``create``/``update``/``delete``)."""
        stream = self.streams.setdefault(stream_id, _Stream())
        with stream.changed:
            event_id = event_id or f"{int(time.time() * 1000)}-{len(stream.events)}"
            payload = {"data": data, "message": f"{event_type} {data.get('name', '')}", "origin": {}, "version": "4"}
            if context:
                payload["context"] = context
            stream.events.append((event_type, event_id, json.dumps(payload)))
            stream.changed.notify_all()
        return event_id

    # -- GraphQL -------------------------------------------------------------
    def authorized(self, headers: dict[str, str]) -> bool:
        bearer = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        token = bearer[7:].strip() if bearer.lower().startswith("bearer ") else ""
        return bool(token) and (self.token is None or token == self.token)

    def execute(self, payload: dict[str, Any], files: dict[str, UploadedFile], headers: dict[str, str]) -> tuple[int, dict]:
        """Run one GraphQL request as the platform would: ``(HTTP status, JSON body)``."""
        query = payload.get("query")
        variables = dict(payload.get("variables") or {})
        try:
            document = parse(query if isinstance(query, str) else "")
        except GraphQLError as error:
            return self._refuse("(unparsable)", [error], 400, "GRAPHQL_PARSE_FAILED")
        operation = next((d for d in document.definitions if isinstance(d, OperationDefinitionNode)), None)
        name = operation.name.value if operation is not None and operation.name else "(anonymous)"
        call = GraphQLCall(name, _loggable(variables), dict(headers))
        self.calls.append(call)
        errors = validate(self.schema, document, self._rules)
        if errors:
            return self._refuse(name, errors, 400, "GRAPHQL_VALIDATION_FAILED")
        if not self.authorized(headers):
            return self._refuse(name, [GraphQLError("You must be logged in to do this.")], 200, "AUTH_REQUIRED")
        try:
            for key, paths in (payload.get("_files_map") or {}).items():
                for path in paths:
                    _place(variables, path, files[key])
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            return self._refuse(name, [GraphQLError(f"multipart map does not fit the request: {exc}")], 400,
                                "BAD_USER_INPUT")
        call.variables = _loggable(variables)
        result: ExecutionResult = execute_sync(
            self.schema, document, root_value=_Root(self), variable_values=variables,
            operation_name=payload.get("operationName"), type_resolver=self._type_of,
        )
        if result.errors:
            return self._refuse(name, result.errors, 200, "INTERNAL_SERVER_ERROR", result.data)
        return 200, {"data": result.data}

    def _refuse(self, name: str, errors: Iterable[GraphQLError], status: int, code: str,
                data: Any = None) -> tuple[int, dict]:
        errors = list(errors)
        for error in errors:
            self.refusals.append(f"{name}: {error.message}")
        body: dict[str, Any] = {"errors": [{**error.formatted, "extensions": {"code": code}} for error in errors]}
        if data is not None:
            body["data"] = data
        return status, body

    def _type_of(self, value: Any, info: Any, abstract_type: Any) -> str:
        entity_type = value.get("entity_type") if isinstance(value, dict) else None
        if entity_type not in GRAPHQL_TYPES:
            raise GraphQLError(f"fake OpenCTI does not model {entity_type!r} objects")
        return GRAPHQL_TYPES[entity_type]

    # Queries
    def _resolve_about(self, info: Any) -> dict[str, Any]:
        return {"version": self.version}

    def _read(self, entity_id: str, parent: str | None = None) -> dict[str, Any] | None:
        with self._lock:
            entity = self.entities.get(entity_id)
        if entity is None or (parent is not None and parent not in entity["parent_types"]):
            return None
        return entity

    def _resolve_connector(self, info: Any, id: str) -> dict[str, Any] | None:  # noqa: A002 - GraphQL name
        with self._lock:
            connector = self.connectors.get(id)
            if connector is None:
                return None
            registered = self.registered.get(id) or {}
            return {
                "id": id, "name": connector["name"], "active": connector.get("active"), "auto": connector.get("auto"),
                "only_contextual": registered.get("only_contextual"), "connector_type": connector.get("connector_type"),
                "connector_scope": connector.get("connector_scope"), "connector_state": connector["connector_state"],
                "connector_queue_details": {"messages_number": self._queued(id),
                                            "messages_size": self._queue_bytes.get(id, 0)},
                "updated_at": _now(), "created_at": _now(), "built_in": False,
                "config": {"listen": f"listen_{id}", "listen_exchange": CONNECTOR_EXCHANGE, "push": f"push_{id}",
                           "push_exchange": WORKER_EXCHANGE, "push_routing": f"push_routing_{id}"},
            }

    def _queued(self, connector_id: str) -> int:
        try:
            with self._channel() as channel:
                return channel.queue_declare(queue=f"push_{connector_id}", passive=True).method.message_count
        except Exception:  # no broker, or the queue is gone at teardown: the platform would say 0
            return 0

    def _resolve_stixCoreObject(self, info: Any, id: str) -> dict[str, Any] | None:  # noqa: A002 - GraphQL name
        return self._read(id, "Stix-Core-Object")

    def _resolve_stixCyberObservable(self, info: Any, id: str) -> dict[str, Any] | None:  # noqa: A002
        return self._read(id, "Stix-Cyber-Observable")

    def _resolve_indicator(self, info: Any, id: str) -> dict[str, Any] | None:  # noqa: A002
        found = self._read(id)
        return found if found is not None and found["entity_type"] == "Indicator" else None

    def _resolve_stixCyberObservables(self, info: Any, types: list[str] | None = None, filters: dict | None = None,
                                      first: int | None = None, after: str | None = None, toStix: bool | None = None,
                                      **ordering: Any) -> dict[str, Any]:
        _not_modelled(toStix, "toStix")
        _not_modelled(ordering.get("search"), "search")
        _check_filters(filters)
        with self._lock:
            candidates = list({id(e): e for e in self.entities.values()
                               if "Stix-Cyber-Observable" in e["parent_types"]}.values())
        wanted = [e for e in candidates if (not types or e["entity_type"] in types)
                  and (filters is None or _group_matches(e, filters))]
        return self._page(wanted, first, after)

    def _resolve_indicators(self, info: Any, filters: dict | None = None, first: int | None = None,
                            after: str | None = None, toStix: bool | None = None, **ordering: Any) -> dict[str, Any]:
        _not_modelled(toStix, "toStix")
        _not_modelled(ordering.get("search"), "search")
        _check_filters(filters)
        with self._lock:
            for indicator in self.indicators:
                self._complete(indicator)
            wanted = [i for i in self.indicators if filters is None or _group_matches(i, filters)]
        return self._page(wanted, first, after)

    def _resolve_stixNestedRefRelationships(self, info: Any, first: int | None = None, after: str | None = None,
                                            filters: dict | None = None, toStix: bool | None = None,
                                            **selection: Any) -> dict[str, Any]:
        # Entities the tests add carry no nested references (no file contains another, no message a sender).
        _not_modelled(toStix, "toStix")
        _check_filters(filters)
        return self._page([], first, after)

    def _page(self, items: list[Any], first: int | None, after: str | None) -> dict[str, Any]:
        size = min(first if first is not None else DEFAULT_PAGE_SIZE, self.max_page_size)
        if size < 0:
            raise GraphQLError("first must be a positive number")
        start = 0
        if after:
            try:
                start = json.loads(base64.b64decode(after))[0] + 1
            except (ValueError, TypeError, IndexError, KeyError):
                raise GraphQLError(f"invalid cursor {after!r}") from None
        edges = [{"cursor": _cursor(i), "node": items[i]} for i in range(start, min(start + size, len(items)))]
        return {"edges": edges, "pageInfo": {
            "startCursor": edges[0]["cursor"] if edges else "",
            "endCursor": edges[-1]["cursor"] if edges else "",
            "hasNextPage": start + len(edges) < len(items),
            "hasPreviousPage": start > 0,
            "globalCount": len(items),
        }}

    # Mutations: connectors and works
    def _resolve_registerConnector(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:  # noqa: A002
        connector_id = input["id"]
        self._declare_queues(connector_id)
        with self._lock:
            self.registered[connector_id] = dict(input)
            self.registrations.append(connector_id)
            connector = self.connectors.setdefault(connector_id, {"connector_state": None, "connector_info": None})
            connector.update(name=input["name"], connector_type=input["type"], connector_scope=input.get("scope"),
                             auto=input.get("auto"), active=True)
        host, port, user, password = self.amqp
        return {
            "id": connector_id, "name": input["name"], "connector_state": connector["connector_state"],
            "connector_user_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"fake-opencti-user/{connector_id}")),
            "connector_info": connector["connector_info"], "jwks": lambda _info: self._jwks(),
            "config": {
                "connection": {"host": host, "vhost": "/", "use_ssl": False, "port": port, "user": user,
                               "pass": password},
                "s3": {"endpoint": "", "port": 0, "use_ssl": False, "bucket_name": "", "bucket_region": "",
                       "access_key": "", "secret_key": ""},
                "listen": f"listen_{connector_id}", "listen_routing": f"listen_routing_{connector_id}",
                "listen_exchange": CONNECTOR_EXCHANGE, "push": f"push_{connector_id}",
                "push_routing": f"push_routing_{connector_id}", "push_exchange": WORKER_EXCHANGE,
                "dead_letter_routing": "dead_letter_routing",
            },
        }

    def _resolve_pingConnector(self, info: Any, id: str, state: str | None = None,  # noqa: A002
                               connectorInfo: dict | None = None) -> dict[str, Any]:
        with self._lock:
            connector = self.connectors.get(id)
            if connector is None:
                raise GraphQLError(f"Connector {id} not found")
            if id in self._resets:  # the UI reset the state: the connector hears it at this ping
                self._resets.discard(id)
                state = None
            connector["connector_state"] = None if state in (None, "", "null") else state
            connector["connector_info"] = connectorInfo
            return {"id": id, "name": connector["name"], "connector_state": connector["connector_state"],
                    "connector_info": connectorInfo}

    def _resolve_deleteConnector(self, info: Any, id: str) -> str:  # noqa: A002
        with self._lock:
            self.connectors.pop(id, None)
        return id

    def _new_work(self, name: str, connector_id: str | None = None) -> str:
        work_id = f"work_{uuid.uuid4()}"
        with self._lock:
            self.works[work_id] = {"id": work_id, "name": name, "timestamp": _now(), "status": "wait",
                                   "connector_id": connector_id, "message": None, "in_error": False,
                                   "expectations": 0}
        return work_id

    def _resolve_workAdd(self, info: Any, connectorId: str, friendlyName: str | None = None,
                         isMultiPartWork: bool | None = None) -> dict[str, Any]:
        with self._lock:
            if connectorId not in self.connectors:
                raise GraphQLError(f"Connector {connectorId} not found")
        return self.works[self._new_work(friendlyName or connectorId, connectorId)]

    def _resolve_workEdit(self, info: Any, id: str) -> dict[str, Any]:  # noqa: A002
        with self._lock:
            work = self.works.get(id)
        if work is None:
            raise GraphQLError(f"Work {id} not found")

        def status(value: str) -> Any:
            def change(_info: Any, message: str | None = None, inError: bool | None = None) -> str:
                with self._lock:
                    work["status"] = value
                    if message is not None:
                        work["message"] = message
                    work["in_error"] = bool(inError)
                return id
            return change

        def add_expectations(_info: Any, expectations: int | None = None) -> str:
            with self._lock:
                work["expectations"] += int(expectations or 0)
            return id

        def unchanged(_info: Any, **_args: Any) -> str:
            return id

        return {"delete": unchanged, "ping": unchanged, "reportExpectation": unchanged,
                "addExpectations": add_expectations, "addDraftContext": unchanged,
                "toReceived": status("progress"), "toProcessed": status("complete")}

    def _resolve_playbookStepExecution(self, info: Any, **_step: Any) -> bool:
        return True

    def _resolve_stixBundlePush(self, info: Any, connectorId: str, bundle: str, work_id: str | None = None) -> bool:
        json.loads(bundle)
        return True

    # Mutations: knowledge
    def _resolve_organizationAdd(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:  # noqa: A002
        from pycti import Identity

        standard_id = Identity.generate_id(input["name"], "organization")
        with self._lock:
            existing = self.entities.get(standard_id)
        if existing is not None:  # the platform upserts on the standard id
            return existing
        return self.add_entity({
            "standard_id": standard_id, "entity_type": "Organization", "name": input["name"],
            "description": input.get("description"), "identity_class": "organization",
            "objectMarking": [self._marking(m) for m in input.get("objectMarking") or []],
        })

    def _resolve_artifactImport(self, info: Any, file: UploadedFile, x_opencti_description: str | None = None,
                                createdBy: str | None = None, objectMarking: list[str] | None = None,
                                objectLabel: list[str] | None = None) -> dict[str, Any]:
        author = None
        if createdBy:
            author = self._read(createdBy)
            if author is None or "Identity" not in author["parent_types"]:
                raise GraphQLError(f"Identity {createdBy} (createdBy) not found")
        markings = [self._marking(m) for m in objectMarking or []]
        name, mime_type, stream = self._stored_file(file)
        digests = {"MD5": hashlib.md5(), "SHA-1": hashlib.sha1(), "SHA-256": hashlib.sha256(),
                   "SHA-512": hashlib.sha512()}
        kept = tempfile.SpooledTemporaryFile(max_size=_KEEP_BELOW)
        self._spooled.append(kept)
        size = 0
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            for digest in digests.values():
                digest.update(chunk)
            kept.write(chunk)
            size += len(chunk)
        hashes = {algorithm: digest.hexdigest() for algorithm, digest in digests.items()}
        with self._lock:
            existing = self.artifacts.get(hashes["SHA-256"])
            if existing is not None:
                known = {m["standard_id"] for m in existing["objectMarking"]}
                existing["objectMarking"] += [m for m in markings if m["standard_id"] not in known]
                return existing
        internal_id = str(uuid.uuid4())
        file_id = f"import/Artifact/{internal_id}/{name}"
        stored = {"id": file_id, "entity_type": "InternalFile", "name": name, "size": size,
                  "lastModified": _now(), "metaData": {"mimetype": mime_type, "version": _now()},
                  "objectMarking": []}
        self.files[file_id] = {**stored, "content": kept}
        artifact = self.add_entity({
            "id": internal_id, "entity_type": "Artifact",
            "standard_id": _artifact_id(hashes),
            # The platform displays an Artifact by its SHA-512.
            "observable_value": hashes["SHA-512"],
            "hashes": [{"algorithm": a, "hash": h} for a, h in hashes.items()],
            "mime_type": mime_type, "x_opencti_additional_names": [name],
            "x_opencti_description": x_opencti_description or "Artifact uploaded",
            "createdBy": author, "objectMarking": markings, "importFiles": [stored],
        })
        kept.seek(0)
        artifact_record = {**artifact, "name": name, "size": size, "upload_name": file.name,
                           "upload_type": file.content_type,
                           "data": kept.read() if size <= _KEEP_BELOW else None}
        with self._lock:
            self.artifacts[hashes["SHA-256"]] = artifact_record
        return artifact

    def _stored_file(self, upload: UploadedFile) -> tuple[str, str, IO[bytes]]:
        """What the platform stores for an upload: ``(name, MIME type, content)``.

        Like ``artifactImport``: an upload that opens as a ZIP (entries
        encrypted with ``app:artifact_zip_password`` or not) is replaced by its
        first entry, when that entry's type is recognised; Office Open XML
        uploads are stored as they are on recent platforms only.
        """
        import filetype

        upload.stream.seek(0)
        ooxml = upload.content_type in OOXML_TYPES or upload.name.lower().endswith(OOXML_EXTENSIONS)
        exempt = ooxml and version_tuple(self.version) >= version_tuple(OOXML_EXEMPT_SINCE)
        if not exempt:
            try:
                archive = zipfile.ZipFile(upload.stream)
                first = archive.infolist()[0]
                entry = archive.open(first, pwd=self.artifact_zip_password.encode())
                head = entry.peek(8192)[:8192] if hasattr(entry, "peek") else b""
                kind = filetype.guess(head)
                mime = kind.mime if kind is not None else _sniff_more(head)
                if mime is not None:
                    return first.filename, mime, entry
            except (zipfile.BadZipFile, IndexError, RuntimeError, NotImplementedError, OSError, EOFError):
                pass  # the platform keeps the upload when it is not an archive it can open
        upload.stream.seek(0)
        return upload.name, upload.content_type, upload.stream

    # -- entities ----------------------------------------------------------------
    def _tlp_marking(self, tlp: str) -> dict[str, Any]:
        return {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"fake-opencti/{tlp}")), "standard_id": TLP_MARKINGS[tlp]["id"],
            "entity_type": "Marking-Definition", "parent_types": PARENT_TYPES["Marking-Definition"],
            "spec_version": "2.1", "created_at": _EPOCH, "updated_at": _EPOCH, "x_opencti_stix_ids": [],
            "creators": [], "created": _EPOCH, "modified": _EPOCH, "definition_type": "TLP", "definition": tlp,
            "x_opencti_order": _TLP_ORDER[tlp], "x_opencti_color": _TLP_COLOR[tlp],
        }

    def _marking(self, reference: Any) -> dict[str, Any]:
        """A marking by id, standard id or as given (a test's own marking definition)."""
        if isinstance(reference, dict):
            known = next((m for m in self._markings.values() if m["standard_id"] == reference.get("standard_id")), None)
            if known is not None:
                return {**known, **{k: v for k, v in reference.items() if k not in ("id",)}}
            marking = dict(reference)
            marking.setdefault("id", str(uuid.uuid4()))
            for key, value in (("entity_type", "Marking-Definition"), ("parent_types", PARENT_TYPES["Marking-Definition"]),
                               ("spec_version", "2.1"), ("created_at", _EPOCH), ("updated_at", _EPOCH),
                               ("x_opencti_stix_ids", []), ("creators", []), ("x_opencti_order", 0)):
                marking.setdefault(key, value)
            return marking
        for marking in self._markings.values():
            if reference in (marking["id"], marking["standard_id"]):
                return marking
        raise GraphQLError(f"Marking definition {reference} not found")

    def _complete(self, entity: dict[str, Any]) -> None:
        """Fill what the platform always has (idempotent)."""
        entity_type = entity["entity_type"]
        entity.setdefault("id", str(uuid.uuid4()))
        entity.setdefault("parent_types", PARENT_TYPES.get(entity_type, _CORE))
        for key, value in (("spec_version", "2.1"), ("created_at", _EPOCH), ("updated_at", _EPOCH),
                           ("x_opencti_stix_ids", []), ("creators", []), ("createdBy", None),
                           ("objectOrganization", []), ("objectLabel", [])):
            entity.setdefault(key, value)
        entity["objectMarking"] = [self._marking(m) for m in entity.get("objectMarking") or []]
        for key in ("externalReferences", "importFiles"):
            if not isinstance(entity.get(key), dict):
                entity[key] = _connection(list(entity.get(key) or []))
        if "Stix-Cyber-Observable" in entity["parent_types"]:
            if not isinstance(entity.get("indicators"), dict):
                entity["indicators"] = _connection(list(entity.get("indicators") or []))
            entity.setdefault("observable_value", _display_value(entity))
        if "Stix-Domain-Object" in entity["parent_types"]:
            for key, value in (("revoked", False), ("customFieldValues", []), ("created", entity["created_at"]),
                               ("modified", entity["updated_at"])):
                entity.setdefault(key, value)
        if entity_type == "Indicator":
            # The platform always dates an indicator (valid_until from its decay rule when not given).
            entity.setdefault("valid_from", entity["created"])
            entity.setdefault("valid_until", "2027-01-01T00:00:00.000Z")
            entity.setdefault("x_opencti_score", 50)
            entity.setdefault("x_opencti_detection", False)
            entity.setdefault("killChainPhases", [])
            entity.setdefault("x_opencti_observable_values", [])
            if not isinstance(entity.get("observables"), dict):
                entity["observables"] = _connection(list(entity.get("observables") or []))

    # -- RabbitMQ ----------------------------------------------------------
    def _channel(self) -> Any:
        import contextlib

        import pika

        @contextlib.contextmanager
        def channel() -> Any:
            host, port, user, password = self.amqp
            connection = pika.BlockingConnection(
                pika.ConnectionParameters(host, port, credentials=pika.PlainCredentials(user, password))
            )
            try:
                yield connection.channel()
            finally:
                connection.close()

        return channel()

    def _declare_queues(self, connector_id: str) -> None:
        with self._channel() as channel:
            for exchange in (CONNECTOR_EXCHANGE, WORKER_EXCHANGE):
                channel.exchange_declare(exchange=exchange, exchange_type="direct", durable=True)
            for kind, exchange in (("listen", CONNECTOR_EXCHANGE), ("push", WORKER_EXCHANGE)):
                name = f"{kind}_{connector_id}"
                channel.queue_declare(queue=name, durable=True)
                channel.queue_bind(queue=name, exchange=exchange, routing_key=f"{kind}_routing_{connector_id}")

    def _delete_queues(self, connector_id: str) -> None:
        try:
            with self._channel() as channel:
                for kind in ("listen", "push"):
                    channel.queue_delete(queue=f"{kind}_{connector_id}")
        except Exception:  # the broker may already be gone at teardown
            pass

    def _jwks(self) -> str:
        with self._lock:
            if self._jwks_text is None:
                self._jwks_text = _jwks()
            return self._jwks_text


def _display_value(entity: dict[str, Any]) -> str:
    """``observable_value`` as the platform computes it: the value, else a hash (SHA-512 first for Artifacts)."""
    if entity.get("value"):
        return str(entity["value"])
    hashes = {h.get("algorithm"): h.get("hash") for h in entity.get("hashes") or []}
    order = ("SHA-512", "SHA-256", "SHA-1", "MD5") if entity["entity_type"] == "Artifact" else ("SHA-256", "SHA-1", "MD5", "SHA-512")
    return next((hashes[a] for a in order if hashes.get(a)), entity.get("name") or "")


def _sniff_more(head: bytes) -> str | None:
    """Types the platform's sniffer (file-type) knows and ``filetype`` does not: XML, Java classes."""
    if head.lstrip().startswith(b"<?xml"):
        return "application/xml"
    if head.startswith(b"\xca\xfe\xba\xbe"):
        return "application/java-vm"
    return None


def _artifact_id(hashes: dict[str, str]) -> str:
    """STIX's deterministic Artifact id from its hashes (one of them, MD5 first), as the platform derives it."""
    from stix2.canonicalization.Canonicalize import canonicalize

    chosen = next((a for a in ("MD5", "SHA-1", "SHA-256", "SHA-512") if hashes.get(a)))
    data = canonicalize({"hashes": {chosen: hashes[chosen]}}, utf8=False)
    return f"artifact--{uuid.uuid5(uuid.UUID('00abedb4-aa42-466c-9c01-fed23315a9b7'), data)}"


def _not_modelled(value: Any, argument: str) -> None:
    if value:
        raise GraphQLError(f"fake OpenCTI does not model the argument {argument!r}")


#: Filter keys the fake evaluates, and where the value is read.
_FILTER_KEYS = ("entity_type", "standard_id", "value", "name", "pattern_type", "x_opencti_detection", "revoked")


def _check_filters(group: dict[str, Any] | None) -> None:
    """Refuse a filter the fake cannot evaluate before looking at any data, as the platform checks its keys."""
    if group is None:
        return
    for item in group.get("filters") or []:
        operator = item.get("operator") or "eq"
        if operator not in ("eq", "not_eq"):
            raise GraphQLError(f"fake OpenCTI does not model the filter operator {operator!r}")
        for key in item["key"]:
            if not key.startswith("hashes.") and key not in _FILTER_KEYS:
                raise GraphQLError(f"fake OpenCTI does not model the filter key {key!r}")
    for inner in group.get("filterGroups") or []:
        _check_filters(inner)


def _group_matches(entity: dict[str, Any], group: dict[str, Any]) -> bool:
    results = [_filter_matches(entity, f) for f in group.get("filters") or []]
    results += [_group_matches(entity, g) for g in group.get("filterGroups") or []]
    if not results:
        return True
    return all(results) if group.get("mode", "and") == "and" else any(results)


def _filter_matches(entity: dict[str, Any], item: dict[str, Any]) -> bool:
    operator = item.get("operator") or "eq"
    actual: list[Any] = []
    for key in item["key"]:
        if key.startswith("hashes."):
            actual += [h.get("hash") for h in entity.get("hashes") or [] if h.get("algorithm") == key[len("hashes."):]]
        else:
            actual.append(entity.get(key))
    found = {str(a).lower() for a in actual if a is not None}
    hits = [str(v).lower() in found for v in item.get("values") or []]
    matched = (all(hits) if item.get("mode") == "and" else any(hits)) if hits else False
    return matched if operator == "eq" else not matched


def _place(variables: dict[str, Any], path: str, value: Any) -> None:
    """Put an uploaded file where the multipart ``map`` says (``variables.file``, ``variables.input.files.0``)."""
    parts = str(path).split(".")
    if parts[0] != "variables" or len(parts) < 2:
        raise ValueError(f"path {path!r} does not point into the variables")
    target: Any = variables
    for part in parts[1:-1]:
        target = target[int(part)] if isinstance(target, list) else target[part]
    last = parts[-1]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value


def _loggable(variables: dict[str, Any]) -> dict[str, Any]:
    """Variables as recorded: uploaded files by name, not by content."""
    return json.loads(json.dumps(variables, default=lambda o: f"<file {o.name}>" if isinstance(o, UploadedFile) else str(o)))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, the body waits for the
    # client's delayed ACK and every answer gains ~40 ms the real platform does not have.
    disable_nagle_algorithm = True

    @property
    def fake(self) -> FakeOpenCTI:
        return self.server.fake  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        if self.path.split("?")[0].rstrip("/") != "/graphql":
            self._send(404, b"not found", "text/plain")
            return
        length = int(self.headers.get("Content-Length") or 0)
        files: dict[str, UploadedFile] = {}
        try:
            if self.headers.get("Content-Type", "").startswith("multipart/form-data"):
                payload, files, files_map = _multipart(self.rfile, length, self.headers["Content-Type"])
                payload["_files_map"] = files_map
            else:
                payload = json.loads(self.rfile.read(length) or b"{}")
        except (ValueError, KeyError, AttributeError) as exc:
            self._send(400, json.dumps({"errors": [{"message": f"bad request: {exc}"}]}).encode(), "application/json")
            return
        query = payload.get("query") if isinstance(payload.get("query"), str) else ""
        named = re.match(r"^\s*(?:query|mutation)\s+(\w+)", query)
        outage = self.fake._outage_answer(named.group(1) if named else "(anonymous)")
        if outage is not None:
            self._send(outage[0], outage[2], outage[1])
            return
        status, body = self.fake.execute(payload, files, dict(self.headers))
        self._send(status, json.dumps(body).encode(), "application/json")

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        if not self.fake.authorized(dict(self.headers)):
            self._send(401, b"unauthorized", "text/plain")
            return
        storage = re.match(r"^/storage/get/(.+)$", self.path)
        if storage:
            stored = self.fake.files.get(storage.group(1))
            if stored is None:
                self._send(404, b"not found", "text/plain")
                return
            stored["content"].seek(0)
            self._send(200, stored["content"].read(), stored["metaData"]["mimetype"] or "application/octet-stream")
            return
        match = re.match(r"^/stream/([^/?]+)", self.path)
        if not match:
            self._send(404, b"not found", "text/plain")
            return
        self._serve_stream(match.group(1))

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _serve_stream(self, stream_id: str) -> None:
        stream = self.fake.streams.setdefault(stream_id, _Stream())
        stream.connections += 1
        stream.last_event_ids.append(self.headers.get("Last-Event-ID", ""))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        last_id = self.headers.get("Last-Event-ID") or "0-0"
        self.close_connection = True
        try:
            self._write_event("connected", None, json.dumps({"connectionId": str(uuid.uuid4())}))
            position = stream.after(last_id)
            while not self.fake._stopping.is_set():
                with stream.changed:
                    if position >= len(stream.events):
                        stream.changed.wait(timeout=self.fake.heartbeat)
                    pending = stream.events[position:]
                if not pending:
                    self._write_event("heartbeat", last_id, json.dumps({}))
                    continue
                for event_type, event_id, data in pending:
                    self._write_event(event_type, event_id, data)
                    last_id = event_id
                position += len(pending)
        except (BrokenPipeError, ConnectionResetError):
            return

    def _write_event(self, event: str, event_id: str | None, data: str) -> None:
        lines = [f"event: {event}"]
        if event_id is not None:
            lines.append(f"id: {event_id}")
        lines.append(f"data: {data}")
        self.wfile.write(("\n".join(lines) + "\n\n").encode())
        self.wfile.flush()


def _multipart(stream: Any, length: int, content_type: str) -> tuple[dict[str, Any], dict[str, UploadedFile], dict]:
    """Read a GraphQL multipart request (``operations``, ``map``, file parts) chunk by chunk.

    A 200 MB sample goes through a hash into a temporary file, not into
    memory, so the fake does not distort a memory benchmark run beside it.
    """
    boundary = b"--" + re.search(r'boundary="?([^";]+)"?', content_type).group(1).encode()
    delimiter = b"\r\n" + boundary
    remaining = length
    buffer = b""

    def more() -> bool:
        nonlocal buffer, remaining
        if remaining <= 0:
            return False
        chunk = stream.read(min(1 << 20, remaining))
        remaining -= len(chunk)
        buffer += chunk
        return bool(chunk)

    while boundary not in buffer and more():
        pass
    buffer = buffer[buffer.index(boundary) + len(boundary):]
    fields: dict[str, bytes] = {}
    files: dict[str, UploadedFile] = {}
    while True:
        while b"\r\n\r\n" not in buffer and more():
            pass
        if buffer.startswith(b"--") or b"\r\n\r\n" not in buffer:
            break
        head, buffer = buffer.split(b"\r\n\r\n", 1)
        headers = head.decode("utf-8", "replace")
        name = re.search(r'name="([^"]*)"', headers).group(1)
        filename = re.search(r'filename="([^"]*)"', headers)
        part_type = re.search(r"(?im)^content-type:\s*([^\s;]+)", headers)
        digest, size = hashlib.sha256(), 0
        spool = tempfile.SpooledTemporaryFile(max_size=_KEEP_BELOW)
        while True:
            at = buffer.find(delimiter)
            if at >= 0:
                piece, buffer = buffer[:at], buffer[at + len(delimiter):]
            else:
                # Keep a tail that may be the start of the delimiter.
                piece, buffer = buffer[: -len(delimiter)], buffer[-len(delimiter):]
            digest.update(piece)
            size += len(piece)
            spool.write(piece)
            if at >= 0 or not more():
                break
        if filename is None:
            spool.seek(0)
            fields[name] = spool.read()
            spool.close()
        else:
            spool.seek(0)
            files[name] = UploadedFile(filename.group(1), size, digest.hexdigest(),
                                       part_type.group(1) if part_type else "application/octet-stream", spool)
    operations = json.loads(fields.get("operations", b"{}"))
    files_map = json.loads(fields.get("map", b"{}"))
    return operations, files, files_map


def iter_objects(bundles: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """All objects of the pushed bundles, de-duplicated by id (the last version wins)."""
    by_id: dict[str, dict[str, Any]] = {}
    for bundle in bundles:
        for obj in bundle.get("objects", []):
            by_id[obj["id"]] = obj
    return list(by_id.values())
