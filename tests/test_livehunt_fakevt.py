"""The fake VirusTotal's Livehunt rulesets behave like the real endpoints the plugin relies on."""

from __future__ import annotations

import json

import requests
from test_fakevt import KEY, get  # noqa: F401 (fake_vt: fixture from conftest)

RULES = 'rule foobar { strings: $ = "foobar" condition: all of them }'


def post(fake, path, body):
    return requests.post(fake.base_url + path, json=body, headers=KEY, timeout=5)


def create(fake, **attributes):
    body = {"data": {"type": "hunting_ruleset", "attributes": {"rules": RULES, **attributes}}}
    return post(fake, "/intelligence/hunting_rulesets", body)


def test_created_ruleset_has_the_shape_of_the_recorded_answer(fake_vt, samples_dir):
    recorded = json.loads((samples_dir / "hunting_ruleset_created_5551558908215296.json").read_text())["data"]
    answer = create(fake_vt, name="a new rule")
    assert answer.status_code == 200
    data = answer.json()["data"]
    assert data.keys() == recorded.keys() and data["attributes"].keys() == recorded["attributes"].keys()
    assert data["id"].isdigit() and data["type"] == "hunting_ruleset"
    assert data["attributes"]["rule_names"] == ["foobar"] and data["attributes"]["enabled"] is False
    assert create(fake_vt, name="another").json()["data"]["id"] != data["id"]


def test_rules_it_cannot_compile_are_a_bad_request(fake_vt):
    for rules in ("strings: $a = 1", "rule x { condition: true", "rule x { condition: true }}"):
        answer = create(fake_vt, name="bad", rules=rules)
        assert answer.status_code == 400
        assert answer.json()["error"]["code"] == "BadRequestError"
    assert fake_vt.hunting_rulesets == {}


def test_listing_pages_with_limit_and_cursor(fake_vt):
    made = [fake_vt.add_hunting_ruleset(f"rule {i}", RULES) for i in range(7)]
    seen, params = [], {"limit": 3}
    while True:
        page = get(fake_vt, "/intelligence/hunting_rulesets", params=params).json()
        assert len(page["data"]) <= 3
        seen += [r["id"] for r in page["data"]]
        if "cursor" not in page["meta"]:
            assert "next" not in page["links"]
            break
        params = {"limit": 3, "cursor": page["meta"]["cursor"]}
    assert seen == made


def test_listing_filter_matches_whole_words(fake_vt):
    fake_vt.add_hunting_ruleset("emotet loader", "// vtframework: x vtfabc123\n" + RULES, enabled=True)
    fake_vt.add_hunting_ruleset("emotets", RULES, enabled=False)

    def names(text):
        page = get(fake_vt, "/intelligence/hunting_rulesets", params={"filter": text}).json()
        return [r["attributes"]["name"] for r in page["data"]]

    assert names("name:emotet") == ["emotet loader"]
    assert names("rules:vtfabc123") == ["emotet loader"]
    assert names("rules:vtfabc") == []
    assert names("enabled:false") == ["emotets"]
    assert names("enabled:true name:emotets") == []


def test_patch_delete_and_editors(fake_vt):
    ident = fake_vt.add_hunting_ruleset("r", RULES)
    path = f"/intelligence/hunting_rulesets/{ident}"
    patched = requests.patch(fake_vt.base_url + path, headers=KEY, timeout=5, json={
        "data": {"type": "hunting_ruleset", "id": ident, "attributes": {"name": "renamed"}}}).json()["data"]
    assert patched["attributes"]["name"] == "renamed" and patched["attributes"]["rules"] == RULES
    editors = [{"type": "user", "id": "alice"}, {"type": "group", "id": "cti"}]
    assert post(fake_vt, path + "/relationships/editors", {"data": editors}).status_code == 200
    assert fake_vt.hunting_rulesets[ident]["editors"] == editors
    assert requests.delete(fake_vt.base_url + path, headers=KEY, timeout=5).status_code == 200
    assert get(fake_vt, path).json()["error"]["code"] == "NotFoundError"
    assert [(r.method, r.status) for r in fake_vt.requests] == [
        ("PATCH", 200), ("POST", 200), ("DELETE", 200), ("GET", 404)]
