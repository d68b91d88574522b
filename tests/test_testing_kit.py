"""vtframework.testing as a plugin's author uses it: any recorded object, extra routes, bundle checks."""

from __future__ import annotations

import json
import types

import pytest
import requests

from vtframework import hookimpl
from vtframework.testing import FakeVirusTotal, assert_valid_bundle, enrich_offline, objects_of, plugin_app

MALICIOUS = "4bc00f7d638e042da764e8648c03c0db46700599dd4f08d117e3e9e8b538519b"
VOTE_ID = "f-275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f-bd9b1994"
#: CONSTRUCTED from the documented shape of a crowdsourced Sigma rule object (no real answer is recorded).
SIGMA_RULE = {
    "data": {
        "type": "sigma_rule",
        "id": "6b5e1d4a0c3f8e2b",
        "attributes": {"title": "Suspicious PowerShell Download", "level": "high", "rule": "title: ..."},
    }
}


def get(fake: FakeVirusTotal, path: str) -> requests.Response:
    return requests.get(fake.base_url + path, headers={"x-apikey": "test-key"}, timeout=5)


def test_any_recorded_object_is_served_at_its_collection(fake_vt, samples_dir):
    answer = get(fake_vt, f"/votes/{VOTE_ID}")
    assert answer.status_code == 200
    assert answer.content == (samples_dir / "vote_created_file_275a021b.json").read_bytes()
    missing = get(fake_vt, "/votes/f-0-0")
    assert missing.status_code == 404
    assert missing.json() == {"error": {"message": 'Vote "f-0-0" not found', "code": "NotFoundError"}}


def test_objects_added_in_a_test_are_served_and_junk_is_refused(fake_vt):
    fake_vt.add_object(SIGMA_RULE)
    assert get(fake_vt, "/sigma_rules/6b5e1d4a0c3f8e2b").json() == SIGMA_RULE
    assert get(fake_vt, "/sigma_rules/0000").json()["error"]["message"] == 'Sigma rule "0000" not found'
    with pytest.raises(ValueError, match="not a VirusTotal object answer"):
        fake_vt.add_object({"data": [SIGMA_RULE["data"]]})


def test_a_samples_file_that_is_not_json_is_named(tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="broken.json is not JSON"):
        FakeVirusTotal(str(tmp_path))


def _follow_up(observable, context):
    rule = context.client.get("/sigma_rules/6b5e1d4a0c3f8e2b", subject="Sigma rule 6b5e1d4a0c3f8e2b")
    resolutions = context.client.get(f"/files/{observable.value}/contacted_ips", subject="contacted IPs")
    title = rule["data"]["attributes"]["title"]
    return [context.factory.note(title, json.dumps(resolutions["data"]), [context.target_id])]


def test_enrich_offline_serves_extra_samples_and_routes(tmp_path, samples_dir):
    (tmp_path / "sigma.json").write_text(json.dumps(SIGMA_RULE))
    plugin = types.SimpleNamespace(vtf_stix_objects=hookimpl(_follow_up))
    routes = {f"/files/{MALICIOUS}/contacted_ips": {"data": [{"type": "ip_address", "id": "192.0.2.7"}]}}
    with plugin_app(plugin, name="sigmahq") as app:
        result = enrich_offline(app, MALICIOUS, samples_dir=[samples_dir, tmp_path], routes=routes)
        assert result.ok and not result.plugin_errors, result.message
        (note,) = [n for n in objects_of(result, "note") if n["abstract"] == "Suspicious PowerShell Download"]
        assert json.loads(note["content"]) == [{"type": "ip_address", "id": "192.0.2.7"}]
        gone = enrich_offline(app, MALICIOUS, routes={f"/files/{MALICIOUS}/contacted_ips": (404, {})})
    assert gone.ok and [f.plugin for f in gone.plugin_errors] == ["sigmahq"]
    assert "NotFoundError" in gone.plugin_errors[0].message


def test_assert_valid_bundle_takes_a_result_its_objects_or_a_bundle():
    with plugin_app() as app:
        result = enrich_offline(app, MALICIOUS)
    assert_valid_bundle(result)
    assert_valid_bundle(result.objects)
    assert_valid_bundle({"type": "bundle", "id": "bundle--0b5c6f1e-62ad-4b4f-9a4b-5e7b1f7c2a10", "objects": result.objects})
    broken = [dict(obj, created="yesterday") if obj["type"] == "note" else obj for obj in result.objects]
    with pytest.raises(AssertionError, match="not valid STIX 2.1: stix2 cannot parse it: .*created"):
        assert_valid_bundle(broken)
    with plugin_app() as app:
        failed = enrich_offline(app, "0" * 64)
    with pytest.raises(AssertionError, match="the enrichment failed"):
        assert_valid_bundle(failed)
