"""The enrichment connector end to end: real pycti helper, real RabbitMQ, fake OpenCTI, fake VirusTotal."""

from __future__ import annotations

import uuid

import pytest

from vtframework.context import STIX_EXT_OCTI, STIX_EXT_OCTI_SCO
from vtframework.policy.markings import TLP_MARKINGS
from vtframework.stix.factory import AUTHOR_ID
from vtframework.testing import FakeVirusTotal, assert_valid_bundle
from vtframework.testing.connector import Connector, marking, running
from vtframework.testing.fakeopencti import iter_objects

pytestmark = pytest.mark.services

MALICIOUS = "4bc00f7d638e042da764e8648c03c0db46700599dd4f08d117e3e9e8b538519b"
UNKNOWN = "0" * 64
AMBER = TLP_MARKINGS["TLP:AMBER"]["id"]


@pytest.fixture(scope="module")
def vt(samples):
    with FakeVirusTotal(str(samples)) as fake:
        yield fake


@pytest.fixture(scope="module")
def samples():
    from pathlib import Path

    return Path(__file__).parent / "samples"


@pytest.fixture(scope="module")
def connector(opencti, vt, tmp_path_factory):
    process = Connector(
        "enrichment", opencti, vt.base_url, tmp_path_factory.mktemp("enrichment"),
        VIRUSTOTAL_IP_ADD_RELATIONSHIPS="true", VIRUSTOTAL_MAX_QUOTA_WAIT="0",
    )
    yield from running(process)


def observable(opencti, entity_type, stix_type, value, tlp="TLP:AMBER", hashes=None, **stix):
    standard_id = f"{stix_type}--{uuid.uuid4()}"
    entity = {
        "standard_id": standard_id, "entity_type": entity_type, "observable_value": value,
        "objectMarking": [marking(tlp)],
        "hashes": [{"algorithm": k, "hash": v} for k, v in (hashes or {}).items()],
    }
    opencti.add_entity(entity)
    stix_entity = {
        "type": stix_type, "spec_version": "2.1", "id": standard_id, "object_marking_refs": [TLP_MARKINGS[tlp]["id"]],
        "extensions": {STIX_EXT_OCTI_SCO: {"extension_type": "property-extension", "id": entity["id"],
                                          "type": entity_type, "score": 50}},
        **({"hashes": hashes} if hashes else {"value": value}), **stix,
    }
    return entity, stix_entity


def enrich(opencti, connector, entity, stix_entity):
    message = opencti.enrichment_message(entity, stix_entity)
    opencti.publish(connector.id, message)
    work_id = message["internal"]["work_id"]
    done = opencti.wait_processed(work_id)
    return done, work_id


def test_registers_its_manifest_version_and_slug_where_pycti_reports_them(opencti, connector):
    from vtframework.host.manifest import version
    from vtframework.testing.fakeopencti_schema import version_tuple

    registered = opencti.registered[connector.id]
    if version_tuple(opencti.version) >= version_tuple("7.261008.0"):
        assert (registered["version"], registered["slug"]) == (version(), "vtframework-virustotal")
    else:  # older platforms have no such fields, and the pycti that matches them sends none
        assert "version" not in registered and "slug" not in registered


def test_file_enrichment_lands_on_the_push_queue(opencti, connector, vt):
    entity, stix_entity = observable(opencti, "StixFile", "file", MALICIOUS, hashes={"SHA-256": MALICIOUS})
    done, work_id = enrich(opencti, connector, entity, stix_entity)
    assert done.variables["inError"] is False, done.variables["message"]
    assert "47/74 engines flag it, score 72" in done.variables["message"]
    objects = iter_objects(opencti.pushed_bundles(connector.id, expect=8))
    # The platform's own marking definitions come back as pycti exported them; the checker accepts OpenCTI's.
    assert_valid_bundle({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects})
    file = next(o for o in objects if o["id"] == stix_entity["id"])
    assert file["extensions"][STIX_EXT_OCTI_SCO]["score"] == 72
    indicators = [o for o in objects if o["type"] == "indicator"]
    assert {i["pattern_type"] for i in indicators} == {"stix", "yara"}
    for obj in objects:
        if obj["type"] in ("indicator", "note", "relationship"):
            assert obj["created_by_ref"] == AUTHOR_ID and obj["object_marking_refs"] == [AMBER]


def test_ip_enrichment_with_country_and_as(opencti, connector):
    entity, stix_entity = observable(opencti, "IPv4-Addr", "ipv4-addr", "138.128.150.133")
    done, _ = enrich(opencti, connector, entity, stix_entity)
    assert done.variables["inError"] is False, done.variables["message"]
    objects = iter_objects(opencti.pushed_bundles(connector.id, expect=5))
    kinds = {(o["type"], o.get("relationship_type")) for o in objects}
    assert ("relationship", "belongs-to") in kinds and ("relationship", "located-at") in kinds
    country = next(o for o in objects if o["type"] == "location")
    assert (country["name"], country["country"]) == ("United Kingdom of Great Britain and Northern Ireland", "GB")
    assert "object_marking_refs" not in country  # the platform's country stays visible to everyone


@pytest.mark.parametrize("entity_type,stix_type,value", [
    ("Domain-Name", "domain-name", "tawuhoju.com"),
    ("Hostname", "hostname", "tawuhoju.com"),
    ("Url", "url", "http://soclosebutyetqq.com/69.exe"),
])
def test_domain_hostname_and_url(opencti, connector, entity_type, stix_type, value):
    entity, stix_entity = observable(opencti, entity_type, stix_type, value)
    done, _ = enrich(opencti, connector, entity, stix_entity)
    assert done.variables["inError"] is False, done.variables["message"]
    objects = iter_objects(opencti.pushed_bundles(connector.id, expect=3))
    notes = [o["abstract"] for o in objects if o["type"] == "note"]
    assert f"VirusTotal Results ({entity_type}: {value})" in notes


def test_indicator_enrichment_attaches_to_the_indicator(opencti, connector):
    standard_id = f"indicator--{uuid.uuid4()}"
    pattern = f"[file:hashes.'SHA-256' = '{MALICIOUS}'] OR [ipv4-addr:value = '138.128.150.133']"
    entity = {"standard_id": standard_id, "entity_type": "Indicator", "name": "two things",
              "pattern": pattern, "pattern_type": "stix", "objectMarking": [marking("TLP:GREEN")]}
    opencti.add_entity(entity)
    stix_entity = {"type": "indicator", "spec_version": "2.1", "id": standard_id, "name": "two things",
                   "pattern": pattern, "pattern_type": "stix", "valid_from": "2026-01-01T00:00:00Z",
                   "created": "2026-01-01T00:00:00Z", "modified": "2026-01-01T00:00:00Z",
                   "object_marking_refs": [TLP_MARKINGS["TLP:GREEN"]["id"]]}
    done, _ = enrich(opencti, connector, entity, stix_entity)
    assert done.variables["inError"] is False, done.variables["message"]
    objects = iter_objects(opencti.pushed_bundles(connector.id, expect=4))
    indicator = next(o for o in objects if o["id"] == standard_id)
    assert indicator["extensions"][STIX_EXT_OCTI]["score"] == 72  # the highest of the two
    notes = [o for o in objects if o["type"] == "note"]
    assert notes and all(n["object_refs"] == [standard_id] for n in notes)
    assert not [o for o in objects if o["type"] == "indicator" and o["pattern_type"] == "stix" and o["id"] != standard_id]


def test_tlp_red_makes_no_request_and_the_work_says_why(opencti, connector, vt):
    secret = "b8e7a581d85807ea6659ea2f681bd16d5baa7017ff144aa3030aefba9cbcdfd3"
    before = vt.count(f"/api/v3/files/{secret}")
    entity, stix_entity = observable(opencti, "StixFile", "file", secret, tlp="TLP:RED", hashes={"SHA-256": secret})
    done, _ = enrich(opencti, connector, entity, stix_entity)
    assert done.variables["inError"] is True
    assert "TLP:RED, above VIRUSTOTAL_MAX_TLP=TLP:AMBER: nothing was sent to VirusTotal" in done.variables["message"]
    assert vt.count(f"/api/v3/files/{secret}") == before


def test_not_found_is_failed_work_with_a_reason(opencti, connector):
    entity, stix_entity = observable(opencti, "StixFile", "file", UNKNOWN, hashes={"SHA-256": UNKNOWN})
    done, _ = enrich(opencti, connector, entity, stix_entity)
    assert done.variables["inError"] is True
    assert UNKNOWN in done.variables["message"] and "not found" in done.variables["message"].lower()


def test_exhausted_quota_is_failed_work_never_an_empty_success(opencti, connector, vt):
    value = "001015aafcae8a6942366cbb0e7d39c0738752a7800c41ea1c655d47b0a4d04c"
    vt.inject("quota_exceeded", count=5, path_prefix=f"/files/{value}")
    entity, stix_entity = observable(opencti, "StixFile", "file", value, hashes={"SHA-256": value})
    done, _ = enrich(opencti, connector, entity, stix_entity)
    assert done.variables["inError"] is True
    assert "quota" in done.variables["message"].lower()


def test_entity_rebuilt_by_pycti_with_flat_keys(opencti, connector):
    """With no STIX entity in the message, pycti rebuilds the objects from the GraphQL entity."""
    entity, _ = observable(opencti, "IPv4-Addr", "ipv4-addr", "1.1.1.1", tlp="TLP:GREEN")
    entity.update(x_opencti_score=10, value="1.1.1.1", spec_version="2.1")
    message = opencti.enrichment_message(entity, None)
    opencti.publish(connector.id, message)
    done = opencti.wait_processed(message["internal"]["work_id"])
    assert done.variables["inError"] is False, done.variables["message"]


def test_playbook_returns_the_enriched_bundle(opencti, connector):
    entity, stix_entity = observable(opencti, "IPv4-Addr", "ipv4-addr", "138.128.150.133")
    before = len([c for c in opencti.calls if c.operation == "PlaybookStepExecution"])
    bundle = {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": [stix_entity]}
    opencti.publish(connector.id, opencti.playbook_message(stix_entity["id"], bundle))
    call = opencti.wait_for("PlaybookStepExecution", count=before + 1)[-1]
    import json

    sent = json.loads(call.variables["bundle"])
    ip = next(o for o in sent["objects"] if o["id"] == stix_entity["id"])
    assert ip["extensions"][STIX_EXT_OCTI_SCO]["score"] == 4  # 4 of the engines that judged it
    assert any(o["type"] == "note" for o in sent["objects"])
