"""A fake OpenCTI platform on 127.0.0.1 for end-to-end tests with the real pycti helper.

It answers the GraphQL operations ``OpenCTIConnectorHelper`` makes (health
check, register, ping, entity reads, work updates, playbook step, artifact
import, indicator lists), serves live streams as SSE, and, like the platform,
declares the connector's queues in a real RabbitMQ when the connector
registers. Tests publish platform-shaped messages with :meth:`FakeOpenCTI.publish`
and read what the connector pushed with :meth:`FakeOpenCTI.pushed_bundles`.
Connector state and works (what scheduled import connectors need) come from
:mod:`vtframework.testing.fakeopencti_import`.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterable

from vtframework.testing.fakeopencti_import import ExternalImportSupport, GraphQLError
from vtframework.testing.server import LocalServer

CONNECTOR_EXCHANGE = "amqp.connector.exchange"
WORKER_EXCHANGE = "amqp.worker.exchange"
_OPERATION = re.compile(r"^\s*(query|mutation)\s+(\w+)", re.MULTILINE)


@dataclass
class GraphQLCall:
    operation: str
    variables: dict[str, Any]
    headers: dict[str, str]


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
    """A JWKS with one RSA key: pycti parses it even for the AMQP listen protocol."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="fake-opencti", use="sig", alg="RS256")
    return json.dumps({"keys": [jwk]})


class FakeOpenCTI(ExternalImportSupport, LocalServer):
    """See the module docstring.

    :param amqp: ``(host, port, user, password)`` of the RabbitMQ the
        connector is told to use.
    """

    def __init__(self, amqp: tuple[str, int, str, str] = ("127.0.0.1", 5672, "guest", "guest")) -> None:
        self.amqp = amqp
        self.entities: dict[str, dict[str, Any]] = {}
        self.indicators: list[dict[str, Any]] = []
        self.artifacts: dict[str, dict[str, Any]] = {}
        self.calls: list[GraphQLCall] = []
        self.registered: dict[str, dict[str, Any]] = {}
        #: Connector ids in the order they registered (a replica registers the same id again).
        self.registrations: list[str] = []
        self.streams: dict[str, _Stream] = {}
        self.heartbeat = 1.0
        self._lock = threading.Lock()
        self._jwks = _jwks()
        self._stopping = threading.Event()
        self._init_import_support()

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


    # -- what tests set up --------------------------------------------------
    def add_entity(self, entity: dict[str, Any]) -> dict[str, Any]:
        """An entity as OpenCTI's GraphQL returns it (``id``, ``standard_id``, ``entity_type``…)."""
        observable = entity.get("entity_type") not in ("Indicator",)
        entity.setdefault("id", str(uuid.uuid4()))
        entity.setdefault("spec_version", "2.1")
        entity.setdefault("created_at", "2026-01-01T00:00:00.000Z")
        entity.setdefault("updated_at", "2026-01-01T00:00:00.000Z")
        entity.setdefault("parent_types", ["Basic-Object", "Stix-Object", "Stix-Core-Object",
                                           "Stix-Cyber-Observable" if observable else "Stix-Domain-Object"])
        entity.setdefault("createdBy", None)
        entity.setdefault("objectMarking", [])
        entity.setdefault("objectLabel", [])
        entity.setdefault("externalReferences", [])
        entity.setdefault("importFiles", [])
        with self._lock:
            self.entities[entity["id"]] = entity
            self.entities[entity["standard_id"]] = entity
        return entity

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

    def enrichment_message(
        self, entity: dict[str, Any], stix_entity: dict[str, Any] | None, work_id: str | None = None
    ) -> dict[str, Any]:
        """The message the platform sends for a manual enrichment (``enrichment_resolution: none``)."""
        work_id = work_id or f"work_{uuid.uuid4()}"
        self.declare_work(work_id, name=f"Enrichment of {entity['standard_id']}")
        return {
            "internal": {"work_id": work_id, "applicant_id": None,
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
                "work_id": None, "applicant_id": None, "trigger": "create", "mode": "auto",
                "playbook": {"event_id": str(uuid.uuid4()), "execution_id": str(uuid.uuid4()),
                             "playbook_id": str(uuid.uuid4()), "data_instance_id": entity_id,
                             "step_id": str(uuid.uuid4()), "previous_step_id": str(uuid.uuid4())},
            },
            "event": {"entity_id": entity_id, "bundle": bundle},
        }

    def pushed_bundles(self, connector_id: str, timeout: float = 10.0, expect: int = 1) -> list[dict[str, Any]]:
        """Bundles the connector pushed for import (one per object: pycti splits them)."""
        return [bundle for _work, bundle in self.pushed_messages(connector_id, timeout, expect)]

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
            for call in self.calls:
                if call.operation == "workToProcessed" and call.variables.get("id") == work_id:
                    return call
            time.sleep(0.05)
        raise AssertionError(f"work {work_id} was never reported processed")

    def wait_for(self, operation: str, timeout: float = 20.0, count: int = 1) -> list[GraphQLCall]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [c for c in self.calls if c.operation == operation]
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no {operation} call within {timeout} s")

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

    # -- GraphQL -------------------------------------------------------------
    def answer(self, operation: str, variables: dict[str, Any], files: dict[str, bytes]) -> Any:
        handler = getattr(self, f"_op_{operation}", None)
        if handler is not None:
            return handler(variables, files)
        if operation.startswith("StixNestedRefRelationships") or operation.endswith("Relationships"):
            return {_root(operation): {"edges": [], "pageInfo": {"endCursor": None, "hasNextPage": False}}}
        raise KeyError(operation)

    def _op_healthCheck(self, variables: dict, files: dict) -> Any:
        return {"about": {"version": "6.9.0"}}

    def _op_RegisterConnector(self, variables: dict, files: dict) -> Any:
        connector = variables["input"]
        connector_id = connector["id"]
        self._declare_queues(connector_id)
        self.registered[connector_id] = connector
        self.registrations.append(connector_id)
        host, port, user, password = self.amqp
        # The platform hands a known connector its state back: a restarted connector resumes.
        return {"registerConnector": {
            "id": connector_id, "connector_state": self.stored_state(connector_id), "jwks": self._jwks,
            "connector_user_id": "user--fake",
            "config": {
                "connection": {"host": host, "vhost": "/", "use_ssl": False, "port": port, "user": user, "pass": password},
                "s3": {"endpoint": "", "port": 0, "use_ssl": False, "bucket_name": "", "bucket_region": "",
                       "access_key": "", "secret_key": ""},
                "listen": f"listen_{connector_id}", "listen_routing": f"listen_routing_{connector_id}",
                "listen_exchange": CONNECTOR_EXCHANGE, "push": f"push_{connector_id}",
                "push_routing": f"push_routing_{connector_id}", "push_exchange": WORKER_EXCHANGE,
            },
        }}

    def _op_ConnectorDeletionMutation(self, variables: dict, files: dict) -> Any:
        return {"deleteConnector": variables.get("id")}

    def _read(self, variables: dict) -> Any:
        with self._lock:
            return self.entities.get(variables.get("id"))

    def _op_StixCyberObservable(self, variables: dict, files: dict) -> Any:
        return {"stixCyberObservable": self._read(variables)}

    def _op_Indicator(self, variables: dict, files: dict) -> Any:
        return {"indicator": self._read(variables)}

    def _op_StixCoreObject(self, variables: dict, files: dict) -> Any:
        return {"stixCoreObject": self._read(variables)}

    def _op_PlaybookStepExecution(self, variables: dict, files: dict) -> Any:
        return {"playbookStepExecution": True}

    def _op_StixBundlePush(self, variables: dict, files: dict) -> Any:
        return {"stixBundlePush": True}

    def _op_Indicators(self, variables: dict, files: dict) -> Any:
        edges = [{"node": indicator} for indicator in self.indicators]
        return {"indicators": {"edges": edges, "pageInfo": {"startCursor": None, "endCursor": None,
                                                            "hasNextPage": False, "hasPreviousPage": False,
                                                            "globalCount": len(edges)}}}

    def _op_ArtifactImport(self, variables: dict, files: dict) -> Any:
        upload = next(iter(files.values()))
        sha256 = upload.sha256
        artifact = {
            "id": str(uuid.uuid4()), "standard_id": f"artifact--{uuid.uuid5(uuid.NAMESPACE_URL, sha256)}",
            "entity_type": "Artifact", "observable_value": sha256,
            "hashes": [{"algorithm": "SHA-256", "hash": sha256}],
            "x_opencti_description": variables.get("x_opencti_description"),
            # What the upload asked for; GraphQL answers carry the objects themselves.
            "requested_author": variables.get("createdBy"), "requested_markings": variables.get("objectMarking") or [],
            "createdBy": {"id": variables["createdBy"]} if variables.get("createdBy") else None,
            "objectMarking": [{"id": m, "standard_id": m} for m in variables.get("objectMarking") or []],
            "size": upload.size, "name": upload.name, "data": upload.data,
        }
        self.artifacts[sha256] = artifact
        return {"artifactImport": {k: v for k, v in artifact.items() if k != "data"}}

    def _op_StixCyberObservables(self, variables: dict, files: dict) -> Any:
        wanted = {str(v).lower() for f in (variables.get("filters") or {}).get("filters", []) for v in f.get("values", [])}
        found = [a for sha, a in self.artifacts.items()
                 if sha in wanted or any(h["hash"].lower() in wanted for h in a.get("extra_hashes", []))]
        edges = [{"node": {k: v for k, v in a.items() if k != "data"}} for a in found]
        return {"stixCyberObservables": {"edges": edges, "pageInfo": {
            "startCursor": None, "endCursor": None, "hasNextPage": False, "hasPreviousPage": False,
            "globalCount": len(edges)}}}

    def _op_OrganizationAdd(self, variables: dict, files: dict) -> Any:
        from pycti import Identity

        name = variables["input"]["name"]
        return {"organizationAdd": {"id": str(uuid.uuid4()), "entity_type": "Organization",
                                    "standard_id": Identity.generate_id(name, "organization"), "name": name,
                                    "parent_types": ["Identity"], "objectMarking": [], "objectLabel": []}}


def _root(operation: str) -> str:
    return operation[0].lower() + operation[1:]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    @property
    def fake(self) -> FakeOpenCTI:
        return self.server.fake  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        length = int(self.headers.get("Content-Length") or 0)
        files: dict[str, UploadedFile] = {}
        if self.headers.get("Content-Type", "").startswith("multipart/form-data"):
            payload, files = _multipart(self.rfile, length, self.headers["Content-Type"])
        else:
            payload = json.loads(self.rfile.read(length) or b"{}")
        query = payload.get("query", "")
        match = _OPERATION.search(query)
        operation = match.group(2) if match else "anonymous"
        variables = payload.get("variables") or {}
        self.fake.calls.append(GraphQLCall(operation, variables, dict(self.headers)))
        try:
            body = {"data": self.fake.answer(operation, variables, files)}
        except KeyError:
            body = {"errors": [{"message": f"fake OpenCTI does not answer {operation}"}]}
        except GraphQLError as exc:
            body = {"errors": [{"message": str(exc)}], "data": None}
        self._send(200, json.dumps(body).encode(), "application/json")

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
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


@dataclass
class UploadedFile:
    """A file part of a multipart request, hashed while it streamed in (kept when small)."""

    name: str
    size: int
    sha256: str
    data: bytes | None


_KEEP_BELOW = 16 << 20


def _multipart(stream: Any, length: int, content_type: str) -> tuple[dict[str, Any], dict[str, "UploadedFile"]]:
    """Read a GraphQL multipart request (``operations``, ``map``, file parts) chunk by chunk.

    A 200 MB sample goes through a hash, not into memory, so the fake does not
    distort a memory benchmark run beside it.
    """
    import hashlib

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
        disposition = head.decode("utf-8", "replace")
        name = re.search(r'name="([^"]*)"', disposition).group(1)
        filename = re.search(r'filename="([^"]*)"', disposition)
        digest, size, kept = hashlib.sha256(), 0, bytearray()
        while True:
            at = buffer.find(delimiter)
            if at >= 0:
                piece, buffer = buffer[:at], buffer[at + len(delimiter):]
            else:
                # Keep a tail that may be the start of the delimiter.
                piece, buffer = buffer[: -len(delimiter)], buffer[-len(delimiter):]
            digest.update(piece)
            size += len(piece)
            if size <= _KEEP_BELOW:
                kept += piece
            if at >= 0:
                break
            if not more():
                break
        if filename is None:
            fields[name] = bytes(kept)
        else:
            files[name] = UploadedFile(filename.group(1), size, digest.hexdigest(),
                                       bytes(kept) if size <= _KEEP_BELOW else None)
    operations = json.loads(fields.get("operations", b"{}"))
    return operations, files


def iter_objects(bundles: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """All objects of the pushed bundles, de-duplicated by id (the last version wins)."""
    by_id: dict[str, dict[str, Any]] = {}
    for bundle in bundles:
        for obj in bundle.get("objects", []):
            by_id[obj["id"]] = obj
    return list(by_id.values())
