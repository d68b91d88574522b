"""The queue runtime's decisions, one message at a time: what waits, what fails, what is only acknowledged."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from vtframework.opencti.metrics import QueueMetrics
from vtframework.opencti.queue import Patience, ReliableListener, Unavailable, describe, system_of
from vtframework.state.sqlite import SQLiteState


class Work:
    """pycti's ``api.work`` as the listener uses it, over a platform that may refuse a number of calls."""

    def __init__(self, failures: list[BaseException] | None = None) -> None:
        self.failures = list(failures or [])
        self.calls: list[tuple[str, tuple]] = []

    def _call(self, name: str, *args: Any) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.calls.append((name, args))

    def to_received(self, *args: Any) -> None:
        self._call("to_received", *args)

    def to_processed(self, *args: Any) -> None:
        self._call("to_processed", *args)

    def processed(self) -> list[tuple]:
        return [args for name, args in self.calls if name == "to_processed"]


def helper_with(work: Work, reader: Any) -> Any:
    api = SimpleNamespace(work=work, set_draft_id=lambda _id: None,
                          stix2=SimpleNamespace(
                              get_reader=lambda _type: reader, generate_export=lambda entity: entity,
                              # pycti exports the entity read when the message carries no objects
                              prepare_export=lambda entity: [{"id": entity["standard_id"], "type": "ipv4-addr"}]))
    return SimpleNamespace(
        api=api, api_impersonate=SimpleNamespace(set_draft_id=lambda _id: None,
                                                 set_applicant_id_header=lambda _id: None),
        connect_type="INTERNAL_ENRICHMENT", applicant_id="connector-user", work_id=None,
        metric=SimpleNamespace(inc=lambda *_a: None), get_attribute_in_extension=lambda _k, _o: None,
        date_now=lambda: "2026-01-01T00:00:00Z",
    )


def message(work_id: str = "work_1") -> bytes:
    stix = {"type": "ipv4-addr", "id": "ipv4-addr--1", "value": "1.1.1.1"}
    return json.dumps({
        "internal": {"work_id": work_id, "applicant_id": None, "draft_id": None},
        "event": {"event_type": "INTERNAL_ENRICHMENT", "entity_id": "ipv4-addr--1", "entity_type": "IPv4-Addr",
                  "stix_entity": json.dumps(stix), "stix_objects": None},
    }).encode()


GRAPHQL_DOWN = ValueError({"name": "UnknownError", "error_message": "An unknown error has occurred"})


@pytest.fixture
def state(tmp_path):
    store = SQLiteState(str(tmp_path / "state.sqlite"))
    yield store
    store.close()


def listener(helper: Any, state: Any, callback: Any = lambda data: "enriched", max_wait: float = 5.0,
             registry: Any = None) -> ReliableListener:
    from prometheus_client import CollectorRegistry

    metrics = QueueMetrics(True, registry=registry or CollectorRegistry())
    return ReliableListener(helper, callback, state, pause=0.01, max_wait=max_wait, metrics=metrics)


def test_an_outage_while_reading_and_reporting_is_waited_out(state):
    reads = [GRAPHQL_DOWN, requests.ConnectionError("refused")]

    def reader(**_kwargs):
        if reads:
            raise reads.pop(0)
        return {"standard_id": "ipv4-addr--1", "entity_type": "IPv4-Addr"}

    work = Work(failures=[ValueError("<html>502 Bad Gateway</html>")])
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    outcome = listener(helper_with(work, reader), state, registry=registry).handle(message())
    assert outcome.settle == "ack"
    assert work.processed() == [("work_1", "enriched", False)]
    assert registry.get_sample_value("vtframework_platform_waits_total", {"system": "OpenCTI"}) == 3


def test_a_longer_outage_puts_the_message_back_without_an_outcome(state):
    def reader(**_kwargs):
        raise GRAPHQL_DOWN

    work = Work()
    outcome = listener(helper_with(work, reader), state, max_wait=0.05).handle(message())
    assert outcome.settle == "requeue"
    assert "OpenCTI was unavailable" in outcome.reason and "UnknownError" in outcome.reason
    assert work.processed() == []


def test_a_redelivered_message_whose_work_was_reported_is_only_acknowledged(state):
    work = Work()
    helper = helper_with(work, lambda **_k: {"standard_id": "ipv4-addr--1"})
    calls = []
    first = listener(helper, state, callback=lambda data: calls.append(1) or "enriched")
    assert first.handle(message("work_2")).settle == "ack"
    again = listener(helper, state, callback=lambda data: calls.append(1) or "enriched")
    assert again.handle(message("work_2"), redelivered=True).settle == "ack"
    assert len(work.processed()) == 1 and calls == [1]


def test_a_failure_without_a_message_still_gives_the_work_a_reason(state):
    class Silent(Exception):
        pass

    def callback(_data):
        raise Silent()

    work = Work()
    listener(helper_with(work, lambda **_k: {"standard_id": "ipv4-addr--1"}), state, callback=callback).handle(message())
    [(work_id, reason, in_error)] = work.processed()
    assert in_error is True and reason == "Silent (no message)"


def test_an_entity_the_platform_does_not_return_fails_at_once(state):
    work = Work()
    listener(helper_with(work, lambda **_k: None), state).handle(message())
    [(_id, reason, in_error)] = work.processed()
    assert in_error and "returns no entity ipv4-addr--1" in reason


def test_a_forbidden_read_is_no_outage(state):
    def reader(**_kwargs):
        raise ValueError({"name": "FORBIDDEN_ACCESS", "error_message": "You are not allowed to do this."})

    work = Work()
    listener(helper_with(work, reader), state, max_wait=60).handle(message())
    [(_id, reason, in_error)] = work.processed()
    assert in_error and "FORBIDDEN_ACCESS" in reason


def test_a_message_that_is_no_request_is_dropped_and_counted_lost(state):
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    outcome = listener(helper_with(Work(), None), state, registry=registry).handle(b"\xff not json")
    assert outcome.settle == "ack"
    assert registry.get_sample_value("vtframework_queue_messages_lost_total") == 1


def test_what_counts_as_unavailable():
    import pika.exceptions

    assert system_of(pika.exceptions.AMQPConnectionError()) == "RabbitMQ"
    assert system_of(requests.ReadTimeout()) == "OpenCTI"
    assert system_of(GRAPHQL_DOWN) == "OpenCTI"
    assert system_of(ValueError("")) == "OpenCTI"  # a non-200 answer with an empty body
    assert system_of(ValueError("Nothing to import")) is None
    assert system_of(KeyError("x")) is None
    assert describe(pika.exceptions.AMQPConnectionError()) == "AMQPConnectionError (no message)"


def test_patience_gives_up_after_its_bound():
    from prometheus_client import CollectorRegistry

    attempts = []

    def down():
        attempts.append(1)
        raise requests.ConnectionError("refused")

    with pytest.raises(Unavailable, match="OpenCTI was unavailable"):
        Patience(0.01, 0.1, QueueMetrics(True, registry=CollectorRegistry())).call("testing", down)
    assert 2 <= len(attempts) <= 6


def test_a_message_whose_process_dies_each_time_is_failed_after_three_attempts(state):
    """A request that kills the process every time (out of memory…) must not loop for ever."""
    work = Work()
    calls = []
    runtime = listener(helper_with(work, lambda **_k: {"standard_id": "ipv4-addr--1"}), state,
                       callback=lambda data: calls.append(1) or "enriched")
    key = runtime.journal.key_of({"internal": {"work_id": "work_9"}}, b"")
    runtime.journal.attempt(key)  # the second start (the first died too)
    runtime.journal.attempt(key)  # the third
    assert runtime.handle(message("work_9"), redelivered=True).settle == "ack"
    [(_id, reason, in_error)] = work.processed()
    assert in_error and reason.startswith("abandoned after 3 attempts that never finished") and calls == []


def test_an_outage_is_no_attempt_of_the_messages_own(state):
    def reader(**_kwargs):
        raise GRAPHQL_DOWN

    work = Work()
    runtime = listener(helper_with(work, reader), state, max_wait=0.02)
    for _ in range(5):  # five requeues in a long outage
        assert runtime.handle(message("work_8"), redelivered=True).settle == "requeue"
    runtime.helper.api.stix2.get_reader = lambda _type: lambda **_k: {"standard_id": "ipv4-addr--1"}
    assert runtime.handle(message("work_8"), redelivered=True).settle == "ack"
    assert work.processed() == [("work_8", "enriched", False)]


@pytest.mark.parametrize("protocol", ["API", "api"])
def test_the_api_listen_protocol_is_served_by_pycti_with_the_same_callback(state, protocol):
    """CONNECTOR_LISTEN_PROTOCOL=API: OpenCTI calls the connector over HTTP, so the queue is not consumed."""
    helper = helper_with(Work(), reader=None)
    served = []
    helper.listen_protocol = protocol
    helper.listen = lambda message_callback: served.append(message_callback)
    runtime = listener(helper, state)
    runtime.run = lambda: pytest.fail("the RabbitMQ queue must not be consumed with the API protocol")
    runtime.serve()
    assert served == [runtime.callback]


def test_amqp_is_consumed_by_this_runtime(state):
    helper = helper_with(Work(), reader=None)
    helper.listen_protocol = "AMQP"
    helper.listen = lambda message_callback: pytest.fail("pycti's own listener acknowledges on receipt")
    runtime = listener(helper, state)
    consumed = []
    runtime.run = lambda: consumed.append(True)
    runtime.serve()
    assert consumed == [True]
