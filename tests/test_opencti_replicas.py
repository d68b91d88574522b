"""Two connector replicas on one OpenCTI queue share one VirusTotal quota through Redis."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

import pytest

from vtframework.policy.markings import TLP_MARKINGS
from vtframework.testing import FakeVirusTotal
from vtframework.testing.connector import RABBITMQ, Connector, marking, require_service
from vtframework.testing.fakeopencti import FakeOpenCTI

pytestmark = pytest.mark.services

SAMPLES = Path(__file__).parent / "samples"
QUOTA = 3
VALUES = ["138.128.150.133", "1.1.1.1", "tawuhoju.com", "haiku-os.org", "github.com",
          "4bc00f7d638e042da764e8648c03c0db46700599dd4f08d117e3e9e8b538519b"]


def message_for(opencti: FakeOpenCTI, value: str) -> dict:
    entity_type, stix_type = (
        ("IPv4-Addr", "ipv4-addr") if value[0].isdigit() and "." in value and len(value) < 20
        else ("StixFile", "file") if len(value) == 64 else ("Domain-Name", "domain-name")
    )
    standard_id = f"{stix_type}--{uuid.uuid4()}"
    hashes = {"SHA-256": value} if stix_type == "file" else None
    entity = opencti.add_entity({
        "standard_id": standard_id, "entity_type": entity_type, "observable_value": value,
        "objectMarking": [marking("TLP:GREEN")],
        "hashes": [{"algorithm": "SHA-256", "hash": value}] if hashes else [],
    })
    stix_entity = {"type": stix_type, "spec_version": "2.1", "id": standard_id,
                   "object_marking_refs": [TLP_MARKINGS["TLP:GREEN"]["id"]],
                   **({"hashes": hashes} if hashes else {"value": value})}
    return opencti.enrichment_message(entity, stix_entity)


@pytest.mark.parametrize("shared", [True, False], ids=["shared-redis", "separate-state"])
def test_replicas_never_exceed_a_shared_quota(redis_url, tmp_path, shared):
    require_service(RABBITMQ, "RabbitMQ")
    key = f"key-{uuid.uuid4()}"  # a fresh quota bucket for this run
    with FakeOpenCTI() as opencti, FakeVirusTotal(str(SAMPLES), quota_per_minute=QUOTA) as vt:
        env = {
            "VIRUSTOTAL_TOKEN": key, "VIRUSTOTAL_REQUESTS_PER_MINUTE": str(QUOTA),
            # No waiting: what the shared limiter refuses fails at once instead of after a minute.
            "VIRUSTOTAL_MAX_QUOTA_WAIT": "0",
            # Every lookup must reach the limiter: no answer may come from an earlier run's cache.
            "VIRUSTOTAL_CACHE_TTL": "0",
        }
        if shared:
            env["VTF_REDIS_URL"] = redis_url
        first = Connector("enrichment", opencti, vt.base_url, tmp_path, **env)
        second = Connector("enrichment", opencti, vt.base_url, tmp_path, **env)
        second.id = first.id  # the same connector, scaled to two replicas on one queue
        second.env["CONNECTOR_ID"] = first.id
        with contextlib.ExitStack() as stack:
            for replica in (first, second):
                replica.start()
                stack.callback(replica.stop)
            opencti.wait_consumers(first.id, 2)
            messages = [message_for(opencti, value) for value in VALUES]
            for message in messages:
                opencti.publish(first.id, message)
            done = [opencti.wait_processed(m["internal"]["work_id"]) for m in messages]
        refused = [d for d in done if d.variables["inError"]]
        served = vt.count("/api/v3/", status=200)
        too_many = vt.count("/api/v3/", status=429)
    if shared:
        assert too_many == 0, "a replica went over the quota VirusTotal enforces"
        assert served == QUOTA, [d.variables["message"] for d in done]
        assert len(refused) == len(VALUES) - QUOTA
        assert all("quota" in d.variables["message"].lower() for d in refused)
    else:
        # The control: without shared state each replica spends the whole quota on its own.
        assert served + too_many > QUOTA
