"""The fake OpenCTI's external-import side answers and refuses as the platform does."""

from __future__ import annotations

import json

import pytest

from vtframework.testing.fakeopencti import FakeOpenCTI
from vtframework.testing.fakeopencti_import import GraphQLError, ingest


@pytest.fixture
def fake():
    platform = FakeOpenCTI(amqp=("127.0.0.1", 1, "guest", "guest"))  # no broker: the queue count reads 0
    platform.registered["c1"] = {"id": "c1", "name": "Notifications", "type": "EXTERNAL_IMPORT", "scope": ["StixFile"]}
    return platform


def ping(fake, connector_id, state):
    return fake.answer("PingConnector", {"id": connector_id, "state": json.dumps(state),
                                         "connectorInfo": {"run_and_terminate": False}}, {})["pingConnector"]


def test_the_connector_state_is_kept_handed_back_and_reset_like_the_platforms(fake):
    assert json.loads(ping(fake, "c1", {"floor": 1})["connector_state"]) == {"floor": 1}
    assert fake.state_of("c1") == {"floor": 1} and fake.stored_state("c1") == '{"floor": 1}'
    fake.reset_state("c1")
    # The first ping after a reset is answered with the reset state, whatever the connector sent...
    assert ping(fake, "c1", {"floor": 2})["connector_state"] is None
    assert fake.state_of("c1") is None
    # ...and the next one is stored again.
    assert json.loads(ping(fake, "c1", {"floor": 3})["connector_state"]) == {"floor": 3}
    with pytest.raises(GraphQLError, match="Connector ghost not found"):
        ping(fake, "ghost", {})


def test_works_exist_only_for_registered_connectors_and_only_once_created(fake):
    with pytest.raises(GraphQLError, match="not found"):
        fake.answer("workAdd", {"connectorId": "ghost", "friendlyName": "run"}, {})
    work_id = fake.answer("workAdd", {"connectorId": "c1", "friendlyName": "run @ now"}, {})["workAdd"]["id"]
    fake.answer("addExpectations", {"id": work_id, "expectations": 3}, {})
    done = fake.answer("workToProcessed", {"id": work_id, "message": "2 imported", "inError": False}, {})
    assert done == {"workEdit": {"toProcessed": work_id}}
    (work,) = fake.works_of("c1")
    assert (work.status, work.message, work.expectations, work.name) == ("complete", "2 imported", 3, "run @ now")
    for operation in ("workToProcessed", "workToReceived", "addExpectations", "pingWork"):
        with pytest.raises(GraphQLError, match="WORK_NOT_ALIVE"):
            fake.answer(operation, {"id": "work_made_up", "message": "x"}, {})


def test_the_queue_check_before_a_scheduled_run(fake):
    assert fake.answer("GetConnector", {"id": "ghost"}, {}) == {"connector": None}
    fake.set_queue_size("c1", 600_000_000)
    details = fake.answer("GetConnector", {"id": "c1"}, {})["connector"]["connector_queue_details"]
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
