"""The fake OpenCTI's external-import side (connector state, works, the queue check) answers as the platform does."""

from __future__ import annotations

import json

import pytest
import requests

from vtframework.testing.fakeopencti import FakeOpenCTI
from vtframework.testing.opencti_worker import ingest

TOKEN = "d434ce02-e58e-4cac-8b4c-42bf16748e84"
REGISTER = """mutation RegisterConnector($input: RegisterConnectorInput) {
  registerConnector(input: $input) { id connector_state }
}"""
PING = """mutation PingConnector($id: ID!, $state: String, $connectorInfo: ConnectorInfoInput) {
  pingConnector(id: $id, state: $state, connectorInfo: $connectorInfo) { id connector_state }
}"""
WORK_ADD = """mutation WorkAdd($connectorId: String!, $friendlyName: String) {
  workAdd(connectorId: $connectorId, friendlyName: $friendlyName) { id }
}"""
ADD_EXPECTATIONS = """mutation AddExpectations($id: ID!, $expectations: Int) {
  workEdit(id: $id) { addExpectations(expectations: $expectations) }
}"""
TO_PROCESSED = """mutation WorkToProcessed($id: ID!, $message: String, $inError: Boolean) {
  workEdit(id: $id) { toProcessed(message: $message, inError: $inError) }
}"""
GET_CONNECTOR = """query GetConnector($id: String!) {
  connector(id: $id) { id connector_state connector_queue_details { messages_number messages_size } }
}"""


pytestmark = pytest.mark.services


@pytest.fixture
def fake():
    """A platform of its own per test, registering connectors' queues in the real RabbitMQ."""
    from vtframework.testing.connector import RABBITMQ, require_service

    require_service(RABBITMQ, "RabbitMQ")
    with FakeOpenCTI(token=TOKEN) as opencti:
        yield opencti


def post(fake, query, variables):
    response = requests.post(f"{fake.url}/graphql", json={"query": query, "variables": variables},
                             headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def register(fake, connector_id="c1"):
    return post(fake, REGISTER, {"input": {"id": connector_id, "name": "Notifications", "type": "EXTERNAL_IMPORT",
                                           "scope": ["StixFile"], "auto": False, "only_contextual": False}})


def ping(fake, connector_id, state):
    answer = post(fake, PING, {"id": connector_id, "state": json.dumps(state),
                               "connectorInfo": {"run_and_terminate": False, "buffering": False,
                                                 "queue_threshold": 500.0, "queue_messages_size": 0.0}})
    return answer if answer.get("errors") else answer["data"]["pingConnector"]


def test_the_connector_state_is_kept_handed_back_and_reset_like_the_platforms(fake):
    register(fake)
    assert json.loads(ping(fake, "c1", {"floor": 1})["connector_state"]) == {"floor": 1}
    assert fake.state_of("c1") == {"floor": 1}
    # A restarted connector registers again and is handed its state back.
    assert json.loads(register(fake)["data"]["registerConnector"]["connector_state"]) == {"floor": 1}
    fake.reset_state("c1")
    # The first ping after a reset is answered with the reset state, whatever the connector sent...
    assert ping(fake, "c1", {"floor": 2})["connector_state"] is None
    assert fake.state_of("c1") is None
    # ...and the next one is stored again.
    assert json.loads(ping(fake, "c1", {"floor": 3})["connector_state"]) == {"floor": 3}
    assert ping(fake, "ghost", {})["errors"][0]["message"] == "Connector ghost not found"
    assert fake.refusals == ["PingConnector: Connector ghost not found"]


def test_works_exist_only_for_registered_connectors_and_only_once_created(fake):
    assert post(fake, WORK_ADD, {"connectorId": "ghost", "friendlyName": "run"})["errors"][0]["message"] == (
        "Connector ghost not found")
    register(fake)
    work_id = post(fake, WORK_ADD, {"connectorId": "c1", "friendlyName": "run @ now"})["data"]["workAdd"]["id"]
    post(fake, ADD_EXPECTATIONS, {"id": work_id, "expectations": 3})
    done = post(fake, TO_PROCESSED, {"id": work_id, "message": "2 imported", "inError": False})
    assert done == {"data": {"workEdit": {"toProcessed": work_id}}}
    (work,) = fake.works_of("c1")
    assert (work.status, work.message, work.expectations, work.name, work.in_error) == (
        "complete", "2 imported", 3, "run @ now", False)
    refused = post(fake, TO_PROCESSED, {"id": "work_made_up", "message": "x"})
    assert refused["errors"][0]["message"] == "Work work_made_up not found"
    assert fake.refusals == ["WorkAdd: Connector ghost not found", "WorkToProcessed: Work work_made_up not found"]


def test_the_queue_check_before_a_scheduled_run(fake):
    assert post(fake, GET_CONNECTOR, {"id": "ghost"}) == {"data": {"connector": None}}
    register(fake)
    fake.set_queue_size("c1", 600_000_000)
    answer = post(fake, GET_CONNECTOR, {"id": "c1"})
    assert "errors" not in answer, answer
    details = answer["data"]["connector"]["connector_queue_details"]
    assert details == {"messages_number": 0, "messages_size": 600_000_000}


def test_the_worker_widens_a_sighting_and_adds_its_count_only_when_it_widens():
    def sighting(first, last, count):
        return {"type": "bundle", "objects": [{"type": "sighting", "id": "sighting--1", "first_seen": first,
                                               "last_seen": last, "count": count}]}

    held = ingest([sighting("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", 2),
                   sighting("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", 2),  # sent again: nothing changes
                   sighting("2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z", 1)])
    assert held["sighting--1"]["count"] == 3
    assert (held["sighting--1"]["first_seen"], held["sighting--1"]["last_seen"]) == (
        "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z")
