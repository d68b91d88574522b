"""The response cache: answers reused for their TTL, "not found" briefly, other errors
never; identical lookups in flight together become one request."""

from __future__ import annotations

import json
import threading

import pytest

from vtframework.errors import NotFoundError, TransientError
from vtframework.testing import FakeClock
from vtframework.vt.client import ClientConfig, VTClient

SHA256 = "4bc00f7d638e042da764e8648c03c0db46700599dd4f08d117e3e9e8b538519b"
FILE = f"/files/{SHA256}"
MISSING = "/files/" + "0" * 64


@pytest.fixture
def client(fake_vt, sqlite_state):
    vt = VTClient(
        ClientConfig(
            api_key="test-key", base_url=fake_vt.base_url, requests_per_minute=1000,
            cache_ttl=3600, not_found_ttl=600, max_retries=0,
        ),
        sqlite_state,
        clock=FakeClock(),
    )
    yield vt
    vt.close()


def files_requested(fake_vt) -> int:
    return fake_vt.count("/api/v3/files")


def test_answer_is_reused_until_its_ttl(client, fake_vt):
    first = client.get(FILE)
    client.clock.advance(3599)
    assert client.get(FILE) == first
    assert files_requested(fake_vt) == 1
    client.clock.advance(2)
    client.get(FILE)
    assert files_requested(fake_vt) == 2


def test_not_found_is_remembered_briefly(client, fake_vt):
    for _ in range(3):
        with pytest.raises(NotFoundError) as caught:
            client.get(MISSING, subject="file 0000")
    assert files_requested(fake_vt) == 1
    assert caught.value.subject == "file 0000" and caught.value.status == 404
    client.clock.advance(601)
    with pytest.raises(NotFoundError):
        client.get(MISSING)
    assert files_requested(fake_vt) == 2
    assert client.stats.cache_hits == 2


def test_other_errors_are_never_cached(client, fake_vt):
    fake_vt.inject("503", count=1)
    with pytest.raises(TransientError):
        client.get(FILE)
    assert client.get(FILE)["data"]["id"] == SHA256
    assert files_requested(fake_vt) == 2


def test_cache_can_be_bypassed(client, fake_vt):
    client.get(FILE)
    client.get(FILE, cache=False)
    assert files_requested(fake_vt) == 2


def test_uncached_reads_leave_nothing_behind(client, fake_vt):
    """Polls and listings (cache=False) must not fill the cache with answers that go stale."""
    client.get(FILE, cache=False)
    client.get(FILE)
    assert files_requested(fake_vt) == 2


def test_query_parameters_are_part_of_the_key(client, fake_vt):
    client.get(FILE, {"relationships": "contacted_ips"})
    client.get(FILE, {"relationships": "contacted_domains"})
    client.get(FILE, {"relationships": "contacted_ips"})
    assert files_requested(fake_vt) == 2


def test_cache_is_shared_through_the_state(client, fake_vt, sqlite_state):
    client.get(FILE)
    other = VTClient(
        ClientConfig(api_key="test-key", base_url=fake_vt.base_url), sqlite_state, clock=client.clock
    )
    assert other.get(FILE)["data"]["id"] == SHA256
    assert files_requested(fake_vt) == 1


def run_together(n: int, call) -> list:
    """Start ``n`` threads at the same moment; collect each one's result or exception."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def worker(i: int) -> None:
        barrier.wait()
        try:
            results[i] = call()
        except Exception as exc:  # the test inspects what each caller got
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_identical_lookups_in_flight_become_one_request(client, fake_vt):
    fake_vt.latency = 0.5
    results = run_together(8, lambda: client.get(FILE))
    assert files_requested(fake_vt) == 1
    assert all(r["data"]["id"] == SHA256 for r in results)
    assert client.stats.requests == 1 and client.stats.cache_hits == 7


def test_callers_sharing_a_request_share_its_error(client, fake_vt):
    fake_vt.latency = 0.5
    fake_vt.inject("503", count=1)
    results = run_together(6, lambda: client.get(FILE))
    assert files_requested(fake_vt) == 1
    assert all(isinstance(r, TransientError) for r in results)
    # The failure is not remembered: the next lookup asks again.
    fake_vt.latency = 0
    assert client.get(FILE)["data"]["id"] == SHA256


def test_fresh_read_replaces_a_cached_not_found(client, fake_vt, samples_dir):
    """After a submission, re-reading the report must not leave the old 404 in the cache."""
    with pytest.raises(NotFoundError):
        client.get(MISSING)
    # The file, analysed since: a real report, given the id asked for (an answer for another id is refused).
    report = json.loads((samples_dir / "file_clean_b8e7a581.json").read_bytes())
    report["data"]["id"] = report["data"]["attributes"]["sha256"] = MISSING.rsplit("/", 1)[1]
    fake_vt.add_route("GET", MISSING, 200, report)
    fresh = client.get(MISSING, cache="refresh")
    assert client.get(MISSING) == fresh
    assert files_requested(fake_vt) == 2


def test_ttl_zero_never_reuses_what_a_shared_store_holds(fake_vt, sqlite_state):
    def client(ttl):
        config = ClientConfig(api_key="test-key", base_url=fake_vt.base_url, requests_per_minute=1000,
                              cache_ttl=ttl, max_retries=0)
        return VTClient(config, sqlite_state, clock=FakeClock())

    client(3600).get(FILE)  # another replica, configured to cache, fills the shared store
    client(0).get(FILE)
    assert files_requested(fake_vt) == 2
