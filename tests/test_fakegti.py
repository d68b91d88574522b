"""The fake GTI answers lookups and relationships in the shapes VirusTotal gives a GTI key, and refuses as it does."""

from __future__ import annotations

import json

import requests

from vtframework.testing import FakeGTI

KEY = {"x-apikey": "k", "x-tool": "tests"}
SHA256 = "4bc00f7d638e042da764e8648c03c0db46700599dd4f08d117e3e9e8b538519b"
FAMILIES = [{"type": "collection", "id": f"malware--{n}", "attributes": {"name": f"Family {n}", "origin": "Partner",
                                                                           "collection_type": "malware-family"}}
            for n in range(25)]


def get(fake, path, headers=KEY, **params):
    return requests.get(fake.base_url + path, params=params, headers=headers, timeout=5)


def fake_with_families(samples_dir, **kw):
    fake = FakeGTI(str(samples_dir), api_key="k", **kw)
    fake.add_relation("files", SHA256, "malware_families", FAMILIES)
    return fake


def test_relationships_come_only_when_asked_with_the_attributes_asked(samples_dir):
    with fake_with_families(samples_dir) as fake:
        plain = get(fake, f"/files/{SHA256}").json()["data"]
        assert "relationships" not in plain
        asked = get(fake, f"/files/{SHA256}", relationships="malware_families,last_serving_ip_address",
                    **{"relationship_attributes[malware_families]": "name"}).json()["data"]["relationships"]
    families = asked["malware_families"]
    assert len(families["data"]) == 20 and families["meta"] == {"cursor": families["meta"]["cursor"]}
    assert families["data"][0] == {"type": "collection", "id": "malware--0", "attributes": {"name": "Family 0"}}
    assert families["links"]["self"].endswith(f"/files/{SHA256}/relationships/malware_families?limit=20")
    # A relationship to one object that has none answers data: null.
    assert asked["last_serving_ip_address"]["data"] is None


def test_without_attributes_asked_the_items_are_descriptors(samples_dir):
    with fake_with_families(samples_dir) as fake:
        block = get(fake, f"/files/{SHA256}", relationships="malware_families").json()["data"]["relationships"]
    assert block["malware_families"]["data"][3] == {"type": "collection", "id": "malware--3"}


def test_the_relationship_endpoint_pages_through_everything(samples_dir):
    with fake_with_families(samples_dir) as fake:
        first = get(fake, f"/files/{SHA256}/malware_families", limit="10", attributes="name,origin").json()
        second = get(fake, f"/files/{SHA256}/malware_families", limit="10", cursor=first["meta"]["cursor"]).json()
        last = get(fake, f"/files/{SHA256}/malware_families", limit="10", cursor=second["meta"]["cursor"]).json()
    assert [len(page["data"]) for page in (first, second, last)] == [10, 10, 5]
    assert first["data"][0]["attributes"] == {"name": "Family 0", "origin": "Partner"}
    assert "next" in first["links"] and "meta" not in last and "next" not in last["links"]


def test_gti_assessment_only_for_a_request_that_names_its_tool(samples_dir):
    with FakeGTI(str(samples_dir), api_key="k") as fake:
        report = json.loads((samples_dir / "file_malicious_52d3df0e.json").read_text())
        report["data"]["attributes"]["gti_assessment"] = {"verdict": {"value": "VERDICT_MALICIOUS"}}
        fake.add_object(report)
        sha = report["data"]["id"]
        with_tool = get(fake, f"/files/{sha}").json()["data"]["attributes"]
        without = get(fake, f"/files/{sha}", headers={"x-apikey": "k"}).json()["data"]["attributes"]
    assert "gti_assessment" in with_tool and "gti_assessment" not in without


def test_a_relationship_outside_the_licence_is_refused_and_so_is_the_lookup_naming_it(samples_dir):
    with fake_with_families(samples_dir, licensed=("reports",)) as fake:
        lookup = get(fake, f"/files/{SHA256}", relationships="reports,malware_families")
        endpoint = get(fake, f"/files/{SHA256}/malware_families")
        granted = get(fake, f"/files/{SHA256}", relationships="reports,last_serving_ip_address")
    assert (lookup.status_code, endpoint.status_code, granted.status_code) == (403, 403, 200)
    assert lookup.json()["error"]["code"] == "ForbiddenError"
    assert granted.json()["data"]["relationships"]["reports"]["data"] == []


def test_relationships_of_an_unknown_object_are_not_found(samples_dir):
    with FakeGTI(str(samples_dir), api_key="k") as fake:
        answer = get(fake, "/files/" + "0" * 64 + "/malware_families")
    assert answer.status_code == 404
