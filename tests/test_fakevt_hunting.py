"""The fake VirusTotal's Livehunt notifications behave like the listings the notifications importer reads."""

from __future__ import annotations

import json

import requests

from vtframework.testing import FakeVirusTotal

KEY = {"x-apikey": "test-key"}
CYBERGATE = "843bdd8f7843fd1f9ce488666dd6cf88e79c6b098e9c9aada96af1d802aab7e2"


def recorded(samples_dir, name):
    return json.loads((samples_dir / name).read_text())


def cybergate_file(samples_dir):
    item = recorded(samples_dir, "hunting_notification_files_list_cybergate.json")["data"][0]
    return {key: value for key, value in item.items() if key != "context_attributes"}


def get(fake, path, **params):
    answer = requests.get(fake.base_url + path, params=params, headers=KEY, timeout=5)
    return answer.status_code, answer.json() if answer.content else None


def test_listings_have_the_shape_of_the_recorded_answers(fake_vt, samples_dir):
    fake_vt.add_hunting_notification(
        cybergate_file(samples_dir), ruleset_id="5883562783178752", rule_name="CyberGate",
        ruleset_name="rats", date=1617025254, snippet="23 23 *begin_highlight*40*end_highlight*",
    )
    legacy = recorded(samples_dir, "hunting_notifications_list_cybergate.json")
    files = recorded(samples_dir, "hunting_notification_files_list_cybergate.json")

    status, answer = get(fake_vt, "/intelligence/hunting_notifications", limit=1)
    assert status == 200
    (item,) = answer["data"]
    assert item.keys() == legacy["data"][0].keys() and item["type"] == "hunting_notification"
    assert item["attributes"].keys() == legacy["data"][0]["attributes"].keys()
    assert item["id"].startswith("5883562783178752-") and item["id"].split("-")[2] == CYBERGATE
    assert answer["meta"]["count"] == 1 and "/users/" in answer["links"]["self"]

    status, answer = get(fake_vt, "/intelligence/hunting_notification_files", limit=1)
    (item,) = answer["data"]
    assert item["context_attributes"].keys() == files["data"][0]["context_attributes"].keys()
    assert item["context_attributes"]["notification_id"] == get(
        fake_vt, "/intelligence/hunting_notifications")[1]["data"][0]["id"]
    assert item["attributes"]["sha256"] == CYBERGATE

    status, answer = get(fake_vt, "/ioc_stream", filter="source_type:hunting_ruleset")
    (item,) = answer["data"]
    context = item["context_attributes"]
    assert context["origin"] == "hunting" and context["notification_id"].isdigit()
    assert context["sources"] == [{"id": "5883562783178752", "type": "hunting_ruleset", "label": "rats"}]
    assert context["hunting_info"]["rule_name"] == "CyberGate" and item["attributes"]["sha256"] == CYBERGATE
    status, answer = get(fake_vt, "/ioc_stream", descriptors_only="true")
    assert answer["data"][0].keys() == {"type", "id", "context_attributes"}


def test_newest_first_and_new_arrivals_do_not_shift_the_next_pages(fake_vt):
    for date in range(1000, 1025):
        fake_vt.add_hunting_notification({"type": "url", "id": f"u{date}", "attributes": {}},
                                         ruleset_id="1", rule_name="r", date=date)
    status, first = get(fake_vt, "/ioc_stream", limit=10)
    assert [i["id"] for i in first["data"]] == [f"u{d}" for d in range(1024, 1014, -1)]
    fake_vt.add_hunting_notification({"type": "url", "id": "late", "attributes": {}},
                                     ruleset_id="1", rule_name="r", date=2000)
    seen = [i["id"] for i in first["data"]]
    cursor = first["meta"]["cursor"]
    while cursor:
        status, page = get(fake_vt, "/ioc_stream", limit=10, cursor=cursor)
        seen += [i["id"] for i in page["data"]]
        cursor = (page.get("meta") or {}).get("cursor")
    assert seen == [f"u{d}" for d in range(1024, 999, -1)]
    status, oldest = get(fake_vt, "/ioc_stream", limit=3, order="date+", filter="date:1020+")
    assert [i["id"] for i in oldest["data"]] == ["u1020", "u1021", "u1022"]


def test_filters_the_real_listings_know_and_refuse_others(fake_vt):
    file_object = {"type": "file", "id": "a" * 64, "attributes": {"sha256": "a" * 64}}
    fake_vt.add_hunting_notification(file_object, ruleset_id="1", rule_name="Emotet", date=100)
    fake_vt.add_hunting_notification({"type": "domain", "id": "evil.example", "attributes": {}},
                                     ruleset_id="2", rule_name="Phish", date=200)
    assert [i["id"] for i in get(fake_vt, "/ioc_stream", filter="date:150+")[1]["data"]] == ["evil.example"]
    assert [i["id"] for i in get(fake_vt, "/ioc_stream", filter="date:1970-01-01T00:01:40-")[1]["data"]] == ["a" * 64]
    assert len(get(fake_vt, "/ioc_stream", filter="entity_type:file notification_tag:emotet")[1]["data"]) == 1
    # The legacy listings never showed network matches.
    assert [i["id"] for i in get(fake_vt, "/intelligence/hunting_notification_files")[1]["data"]] == ["a" * 64]
    assert len(get(fake_vt, "/intelligence/hunting_notifications", filter="date:150+")[1]["data"]) == 0
    for path, bad in (("/ioc_stream", "notification_tags:x"), ("/intelligence/hunting_notifications", "source_type:x"),
                      ("/ioc_stream", "date:yesterday+")):
        status, answer = get(fake_vt, path, filter=bad)
        assert status == 400 and answer["error"]["code"] == "InvalidArgumentError", bad
    assert get(fake_vt, "/intelligence/hunting_notifications", order="date+")[0] == 400


def test_a_notification_deleted_by_either_id_is_gone_everywhere(fake_vt):
    file_object = {"type": "file", "id": "b" * 64, "attributes": {}}
    one = fake_vt.add_hunting_notification(file_object, ruleset_id="1", rule_name="r", date=10)
    two = fake_vt.add_hunting_notification(file_object, ruleset_id="1", rule_name="r", date=20)
    delete = requests.delete(f"{fake_vt.base_url}/ioc_stream_notifications/{one.stream_id}", headers=KEY, timeout=5)
    assert delete.status_code == 200
    delete = requests.delete(f"{fake_vt.base_url}/intelligence/hunting_notifications/{two.legacy_id}",
                             headers=KEY, timeout=5)
    assert delete.status_code == 200
    assert fake_vt.hunting.matches == []
    again = requests.delete(f"{fake_vt.base_url}/ioc_stream_notifications/{one.stream_id}", headers=KEY, timeout=5)
    assert again.status_code == 404 and again.json()["error"]["code"] == "NotFoundError"


def test_the_ruleset_name_comes_from_the_fakes_own_rulesets():
    with FakeVirusTotal(api_key="test-key") as fake:
        ruleset_id = fake.add_hunting_ruleset("Emotet loader [8e2e2d2b]", "rule x { condition: true }")
        match = fake.add_hunting_notification({"type": "file", "id": "c" * 64, "attributes": {}},
                                              ruleset_id=ruleset_id, rule_name="x")
        assert match.ruleset_name == "Emotet loader [8e2e2d2b]"
        assert "emotet_loader__8e2e2d2b_" in match.tags
