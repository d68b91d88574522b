"""The ip plugin on real VirusTotal answers (cassettes): what an analyst sees in OpenCTI."""

from __future__ import annotations

import contextlib
import json

import pytest
import stix2

from vtframework.app import build_app
from vtframework.client import ClientConfig, VTClient
from vtframework.observables import from_value
from vtframework.pipeline import Pipeline, bundle
from vtframework.state import SQLiteState
from vtframework.stix import AUTHOR_ID, STIX_EXT_OCTI_SCO, TLP_MARKINGS
from vtframework.testing import FakeClock, assert_valid_bundle

AMBER = TLP_MARKINGS["TLP:AMBER"]["id"]
IPV4 = "138.128.150.133"
# No recorded IPv6 answer exists: its cassette is the real IPV4 answer with only the id,
# the self link and the network changed to this address (CONSTRUCTED, see its header).
IPV6 = "2001:db8:85a3::8a2e:370:7334"
ALL_ON = {
    "VIRUSTOTAL_IP_ADD_RELATIONSHIPS": "true",
    "VIRUSTOTAL_INCLUDE_ATTRIBUTES_IN_NOTE": "true",
    # 4 engines flag the recorded address; the default threshold of 10 would hide the indicator.
    "VIRUSTOTAL_IP_INDICATOR_CREATE_POSITIVES": "4",
}


def make_app(**env):
    return build_app("virustotal", env={"VTF_DISABLE_PLUGINS": "hello", **env}, config_file=None)


@contextlib.contextmanager
def make_client(tmp_path, **config):
    state = SQLiteState(str(tmp_path / "state.sqlite3"))
    config = ClientConfig(api_key="test-key", detect_quota=False, requests_per_minute=1000, **config)
    try:
        with VTClient(config, state, clock=FakeClock()) as vt:
            yield vt
    finally:
        state.close()


@pytest.fixture
def client(tmp_path):
    """A client whose requests the test's cassette answers."""
    with make_client(tmp_path) as vt:
        yield vt


@pytest.fixture
def fake_client(tmp_path, fake_vt):
    """A client of the fake VirusTotal, for answers no cassette holds."""
    with make_client(tmp_path, base_url=fake_vt.base_url) as vt:
        yield vt


def enrich(app, client, value, tlp="TLP:AMBER", entity_type=None):
    result = Pipeline(app, client).enrich(from_value(value, entity_type, tlp=tlp))
    assert result.ok, result.message
    assert_valid_bundle(bundle(result.objects))
    return result


def by_type(result, stix_type):
    return [obj for obj in result.objects if obj["type"] == stix_type]


def notes(result):
    return {note["abstract"]: note for note in by_type(result, "note")}


def relationships(result):
    return {(r["relationship_type"], r["source_ref"], r["target_ref"]) for r in by_type(result, "relationship")}


def assert_ours(result):
    """Everything we create carries the VirusTotal author and the observable's marking."""
    for obj in result.objects:
        if obj["type"] in ("note", "indicator", "relationship", "location"):
            assert obj["created_by_ref"] == AUTHOR_ID, obj["id"]
            assert obj["object_marking_refs"] == [AMBER], obj["id"]
        elif obj["type"] == "autonomous-system":
            assert obj["x_opencti_created_by_ref"] == AUTHOR_ID
            assert obj["object_marking_refs"] == [AMBER]


@pytest.mark.vcr
def test_ipv4_with_as_and_country(client):
    result = enrich(make_app(**ALL_ON), client, IPV4)
    assert (result.summary["malicious"], result.summary["total"], result.summary["score"]) == (4, 92, 4)
    assert result.requests == 1

    (address,) = by_type(result, "ipv4-addr")
    ext = address["extensions"][STIX_EXT_OCTI_SCO]
    assert ext["score"] == 4
    assert ext["external_references"] == [{
        "source_name": "VirusTotal",
        "url": f"https://www.virustotal.com/gui/ip-address/{IPV4}",
        "description": "VirusTotal Report",
    }]

    (note,) = by_type(result, "note")
    assert note["abstract"] == f"VirusTotal Results (IPv4-Addr: {IPV4})"
    assert note["object_refs"] == [address["id"]]
    assert "| 92 | 4 | 0 | 77 | 12 |" in note["content"]
    for row in ("| Country | GB |", "| Autonomous System Label | CLOUD-SOUTH |", "| ASN | 13886 |",
                "| Network | 138.128.150.0/24 |", "| RIR | RIPE NCC |"):
        assert row in note["content"]

    (indicator,) = by_type(result, "indicator")
    assert indicator["pattern"] == f"[ipv4-addr:value = '{IPV4}']"
    assert indicator["x_opencti_main_observable_type"] == "IPv4-Addr"
    assert indicator["x_opencti_score"] == 4

    (system,) = by_type(result, "autonomous-system")
    assert (system["number"], system["name"], system["rir"]) == (13886, "CLOUD-SOUTH", "RIPE NCC")
    assert system["id"] == stix2.AutonomousSystem(number=13886).id  # the id OpenCTI derives too

    (country,) = by_type(result, "location")
    # Named like OpenCTI's own country entities, so it merges with them instead of duplicating.
    assert (country["name"], country["country"]) == ("United Kingdom", "GB")
    assert country["x_opencti_location_type"] == "Country"

    assert relationships(result) == {
        ("based-on", indicator["id"], address["id"]),
        ("belongs-to", address["id"], system["id"]),
        ("located-at", address["id"], country["id"]),
    }
    assert_ours(result)


@pytest.mark.vcr("test_ipv4_with_as_and_country.yaml")
def test_relationships_and_attributes_are_off_by_default(client):
    result = enrich(make_app(), client, IPV4)
    assert by_type(result, "autonomous-system") == by_type(result, "location") == []
    assert by_type(result, "indicator") == []  # 4 engines, below the default threshold of 10
    (note,) = by_type(result, "note")
    assert "Attributes" not in note["content"]


def assert_repeat_is_free(app, client, value):
    """A second enrichment within the cache TTL: no request, and the very same objects."""
    first, again = enrich(app, client, value), enrich(app, client, value)
    assert (first.requests, again.requests, again.cache_hits) == (1, 0, 1)
    assert sorted(o["id"] for o in first.objects) == sorted(o["id"] for o in again.objects)


@pytest.mark.vcr("test_ipv4_with_as_and_country.yaml")
def test_repeat_within_cache_ttl_costs_nothing_and_duplicates_nothing(client):
    assert_repeat_is_free(make_app(**ALL_ON), client, IPV4)


@pytest.mark.vcr
def test_old_ip_report_without_statistics(client):
    result = enrich(make_app(**ALL_ON), client, "1.1.1.1")
    assert result.requests == 1
    assert by_type(result, "note") == []  # nothing to report without analysis statistics
    assert "no detection statistics" in result.message
    (address,) = by_type(result, "ipv4-addr")
    assert "score" not in address.get("extensions", {}).get(STIX_EXT_OCTI_SCO, {})
    (system,) = by_type(result, "autonomous-system")
    assert (system["number"], system["name"], system["rir"]) == (13335, "Cloudflare, Inc.", "APNIC")
    (country,) = by_type(result, "location")
    assert country["name"] == "Australia"


@pytest.mark.vcr
def test_ipv6_address(client):
    result = enrich(make_app(**ALL_ON), client, IPV6)
    assert result.requests == 1
    (address,) = by_type(result, "ipv6-addr")
    assert address["extensions"][STIX_EXT_OCTI_SCO]["score"] == 4
    (note,) = by_type(result, "note")
    assert note["abstract"] == f"VirusTotal Results (IPv6-Addr: {IPV6})"
    (indicator,) = by_type(result, "indicator")
    assert indicator["pattern"] == f"[ipv6-addr:value = '{IPV6}']"
    assert indicator["x_opencti_main_observable_type"] == "IPv6-Addr"
    (system,) = by_type(result, "autonomous-system")
    (country,) = by_type(result, "location")
    assert ("belongs-to", address["id"], system["id"]) in relationships(result)
    assert ("located-at", address["id"], country["id"]) in relationships(result)
    assert_ours(result)


def test_partial_report_skips_what_is_missing(fake_vt, fake_client, samples_dir, caplog):
    # CONSTRUCTED: the real answer without asn, country and RIR, as a partial object would come.
    answer = json.loads((samples_dir / "ip_address_138.128.150.133.json").read_text())
    for key in ("asn", "country", "regional_internet_registry"):
        del answer["data"]["attributes"][key]
    fake_vt.add_route("GET", f"/ip_addresses/{IPV4}", body=answer)
    with caplog.at_level("DEBUG", "vtframework"):
        result = enrich(make_app(**ALL_ON), fake_client, IPV4)
    assert by_type(result, "autonomous-system") == by_type(result, "location") == []
    assert {r[0] for r in relationships(result)} == {"based-on"}
    (note,) = by_type(result, "note")
    assert "| ASN | N/A |" in note["content"] and "| Autonomous System Label | CLOUD-SOUTH |" in note["content"]
    assert "no ASN" in caplog.text and "no known country code" in caplog.text
