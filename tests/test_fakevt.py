"""The fake VirusTotal behaves like the real one where our tests rely on it."""

from __future__ import annotations

import json

import pytest
import requests

from vtframework.testing import FakeVirusTotal
from vtframework.vt.client import url_id

KEY = {"x-apikey": "test-key"}


def get(fake: FakeVirusTotal, path: str, **kw) -> requests.Response:
    kw.setdefault("headers", KEY)
    kw.setdefault("timeout", 5)
    kw.setdefault("allow_redirects", False)
    return requests.get(fake.base_url + path, **kw)


def sample_bytes(samples_dir, name: str) -> bytes:
    return (samples_dir / name).read_bytes()


@pytest.mark.parametrize(
    ("path", "sample"),
    [
        ("/files/4bc00f7d638e042da764e8648c03c0db46700599dd4f08d117e3e9e8b538519b", "file_malicious_4bc00f7d.json"),
        ("/ip_addresses/138.128.150.133", "ip_address_138.128.150.133.json"),
        ("/domains/haiku-os.org", "domain_clean_haiku-os.org.json"),
        ("/urls/2a1b402420ef46577471cdc7409b0fa2c6a204db316e59ade2d805435489a067", "url_clean_example.com_2a1b4024.json"),
        (f"/urls/{url_id('http://example.com/')}", "url_clean_example.com_2a1b4024.json"),
        ("/analyses/u-2a1b402420ef46577471cdc7409b0fa2c6a204db316e59ade2d805435489a067-1569484202",
         "analysis_url_completed_u-2a1b4024.json"),
        ("/yara_rulesets/00888403c4", "yara_ruleset_00888403c4.json"),
        ("/sigma_rules/5be9da0a90b142239a3ff2819edf2283938855da3b4c80d63d8e6db63c2c4fe7",
         "sigma_rule_5be9da0a90_CONSTRUCTED.json"),
        # Lists are served where their links.self says they were recorded (URLs: under the sha256 id).
        ("/domains/github.com/comments", "domain_comments_github.com.json"),
        ("/urls/2a1b402420ef46577471cdc7409b0fa2c6a204db316e59ade2d805435489a067/votes",
         "url_votes_example.com_page1.json"),
    ],
)
def test_serves_recorded_responses_byte_for_byte(fake_vt, samples_dir, path, sample):
    answer = get(fake_vt, path)
    assert answer.status_code == 200
    assert answer.content == sample_bytes(samples_dir, sample)


def test_files_are_found_by_every_hash(fake_vt, samples_dir):
    attrs = json.loads(sample_bytes(samples_dir, "file_clean_b8e7a581.json"))["data"]["attributes"]
    for digest in (attrs["md5"], attrs["sha1"], attrs["sha256"]):
        assert get(fake_vt, f"/files/{digest}").json()["data"]["id"] == attrs["sha256"]


def test_unknown_file_answers_virustotals_not_found(fake_vt, samples_dir):
    recorded = json.loads(sample_bytes(samples_dir, "error_404_NotFoundError_file.json"))
    missing = recorded["error"]["message"].split('"')[1]
    answer = get(fake_vt, f"/files/{missing}")
    assert answer.status_code == 404
    assert answer.json() == recorded


def test_comments_and_votes_of_a_known_object_without_any_are_an_empty_list(fake_vt):
    answer = get(fake_vt, "/files/4bc00f7d638e042da764e8648c03c0db46700599dd4f08d117e3e9e8b538519b/comments?limit=10")
    assert answer.status_code == 200
    assert answer.json()["data"] == [] and "next" not in answer.json()["links"]
    unknown = get(fake_vt, "/files/" + "0" * 64 + "/votes")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "NotFoundError")
    other = get(fake_vt, "/domains/haiku-os.org/siblings")
    assert other.status_code == 404  # only relationships the fake knows to answer empty


def test_key_is_required_when_configured(fake_vt, samples_dir):
    assert get(fake_vt, "/domains/haiku-os.org", headers={}).json()["error"]["code"] == "AuthenticationRequiredError"
    wrong = get(fake_vt, "/domains/haiku-os.org", headers={"x-apikey": "nope"})
    assert wrong.status_code == 401
    assert wrong.json() == json.loads(sample_bytes(samples_dir, "error_401_WrongCredentialsError.json"))


def test_quota_beyond_the_window_answers_429_quota_exceeded(samples_dir):
    with FakeVirusTotal(str(samples_dir), quota_per_minute=2) as fake:
        statuses = [get(fake, "/domains/haiku-os.org").status_code for _ in range(4)]
        assert statuses == [200, 200, 429, 429]
        assert get(fake, "/domains/haiku-os.org").json()["error"]["code"] == "QuotaExceededError"


def test_faults_hit_only_their_path_and_count(fake_vt):
    fake_vt.inject("503", count=2, path_prefix="/files/")
    assert get(fake_vt, "/domains/haiku-os.org").status_code == 200
    sha = "4bc00f7d638e042da764e8648c03c0db46700599dd4f08d117e3e9e8b538519b"
    assert [get(fake_vt, f"/files/{sha}").status_code for _ in range(3)] == [503, 503, 200]


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ("500", 500, None),
        ("503", 503, "TransientError"),
        ("504", 504, "DeadlineExceededError"),
        ("too_many_requests", 429, "TooManyRequestsError"),
        ("quota_exceeded", 429, "QuotaExceededError"),
    ],
)
def test_error_faults_use_virustotals_envelope(fake_vt, fault, status, code):
    fake_vt.inject(fault)
    answer = get(fake_vt, "/domains/haiku-os.org")
    assert answer.status_code == status
    if code is None:
        assert "text/html" in answer.headers["Content-Type"]
    else:
        assert answer.json()["error"]["code"] == code


def test_malformed_fault_is_broken_json(fake_vt):
    fake_vt.inject("malformed")
    answer = get(fake_vt, "/domains/haiku-os.org")
    assert answer.status_code == 200
    with pytest.raises(ValueError):
        answer.json()


def test_reset_and_hang_faults_break_the_connection(fake_vt):
    fake_vt.inject("reset")
    with pytest.raises(requests.ConnectionError):
        get(fake_vt, "/domains/haiku-os.org")
    fake_vt.inject("hang")
    with pytest.raises(requests.ReadTimeout):
        get(fake_vt, "/domains/haiku-os.org", timeout=(2, 0.2))
    assert [r.status for r in fake_vt.requests] == [0, 0]


def test_unknown_fault_is_refused(fake_vt):
    with pytest.raises(ValueError, match="unknown fault"):
        fake_vt.inject("teapot")


def test_custom_routes(fake_vt):
    fake_vt.add_route("POST", "/intelligence/hunting_rulesets", 200, {"data": {"id": "1"}}, {"X-Extra": "yes"})
    answer = requests.post(fake_vt.base_url + "/intelligence/hunting_rulesets", json={"data": {}}, headers=KEY, timeout=5)
    assert answer.json() == {"data": {"id": "1"}} and answer.headers["X-Extra"] == "yes"
    assert fake_vt.requests[-1].body == b'{"data": {}}'


def test_download_redirects_to_storage_on_the_same_server(fake_vt):
    sha = "ef" * 32
    fake_vt.add_download(sha, b"MZ\x90\x00payload")
    redirect = get(fake_vt, f"/files/{sha}/download")
    assert redirect.status_code == 302
    location = redirect.headers["Location"]
    assert location.startswith(f"{fake_vt.url}/_storage/{sha}?")
    assert requests.get(location, timeout=5).content == b"MZ\x90\x00payload"
    assert get(fake_vt, f"/files/{sha}/download_url").json()["data"].startswith(f"{fake_vt.url}/_storage/")


def test_generated_downloads_have_the_announced_size(fake_vt):
    sha = "12" * 32
    fake_vt.add_download(sha, 3 * (1 << 20) + 5)
    answer = requests.get(f"{fake_vt.url}/_storage/{sha}", timeout=5, stream=True)
    assert int(answer.headers["Content-Length"]) == sum(len(c) for c in answer.iter_content(1 << 16))


def test_request_log_hides_the_key_value(fake_vt):
    get(fake_vt, "/domains/haiku-os.org", params={"relationships": "resolutions"})
    entry = fake_vt.requests[-1]
    assert (entry.method, entry.path, entry.query, entry.status) == (
        "GET", "/api/v3/domains/haiku-os.org", "relationships=resolutions", 200,
    )
    assert entry.headers["x-apikey"] == "<redacted>"
