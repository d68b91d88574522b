"""The ip plugin on real VirusTotal answers (cassettes): what an analyst sees in OpenCTI."""

from __future__ import annotations

import json

import pytest
import stix2
from pycti import Location

from vtframework import STIX_EXT_OCTI_SCO, TLP_MARKINGS, build_app
from vtframework.testing import (
    assert_repeat_is_free,
    assert_stamped,
    enrich_checked,
    objects_of,
    relationship_triples,
)

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
    # The ip plugin alone: the feature plugins (explain, classification…) are tested on their own.
    return build_app("virustotal", env={"VTF_PLUGINS": "ip", **env}, config_file=None)


@pytest.mark.vcr
def test_ipv4_with_as_and_country(client):
    result = enrich_checked(make_app(**ALL_ON), client, IPV4)
    assert (result.summary["malicious"], result.summary["total"], result.summary["score"]) == (4, 92, 4)
    assert result.requests == 1

    (address,) = objects_of(result, "ipv4-addr")
    ext = address["extensions"][STIX_EXT_OCTI_SCO]
    assert ext["score"] == 4
    assert ext["external_references"] == [{
        "source_name": "VirusTotal",
        "url": f"https://www.virustotal.com/gui/ip-address/{IPV4}",
        "description": "VirusTotal Report",
    }]

    (note,) = objects_of(result, "note")
    assert note["abstract"] == f"VirusTotal Results (IPv4-Addr: {IPV4})"
    assert note["object_refs"] == [address["id"]]
    assert "| 92 | 4 | 0 | 77 | 12 |" in note["content"]
    for row in ("| Country | GB |", "| Autonomous System Label | CLOUD-SOUTH |", "| ASN | 13886 |",
                "| Network | 138.128.150.0/24 |", "| RIR | RIPE NCC |"):
        assert row in note["content"]

    (indicator,) = objects_of(result, "indicator")
    assert indicator["pattern"] == f"[ipv4-addr:value = '{IPV4}']"
    assert indicator["x_opencti_main_observable_type"] == "IPv4-Addr"
    assert indicator["x_opencti_score"] == 4

    (system,) = objects_of(result, "autonomous-system")
    assert (system["number"], system["name"], system["rir"]) == (13886, "CLOUD-SOUTH", "RIPE NCC")
    assert system["id"] == stix2.AutonomousSystem(number=13886).id  # the id OpenCTI derives too

    (country,) = objects_of(result, "location")
    # OpenCTI's own country entity (its dataset's name), so it merges instead of duplicating.
    assert (country["name"], country["country"]) == ("United Kingdom of Great Britain and Northern Ireland", "GB")
    assert country["id"] == Location.generate_id("United Kingdom of Great Britain and Northern Ireland", "Country")
    assert country["x_opencti_location_type"] == "Country"
    assert country["x_opencti_aliases"] == ["GBR", "GB"]
    # Shared reference entities: a TLP:AMBER enrichment must not hide them from the platform.
    assert "object_marking_refs" not in country and "object_marking_refs" not in system

    assert relationship_triples(result) == {
        ("based-on", indicator["id"], address["id"]),
        ("belongs-to", address["id"], system["id"]),
        ("located-at", address["id"], country["id"]),
    }
    assert_stamped(result, [AMBER])


@pytest.mark.vcr("test_ipv4_with_as_and_country.yaml")
def test_relationships_and_attributes_are_off_by_default(client):
    result = enrich_checked(make_app(), client, IPV4)
    assert objects_of(result, "autonomous-system") == objects_of(result, "location") == []
    assert objects_of(result, "indicator") == []  # 4 engines, below the default threshold of 10
    (note,) = objects_of(result, "note")
    assert "Attributes" not in note["content"]


@pytest.mark.vcr("test_ipv4_with_as_and_country.yaml")
def test_repeat_within_cache_ttl_costs_nothing_and_duplicates_nothing(client):
    assert_repeat_is_free(make_app(**ALL_ON), client, IPV4)


@pytest.mark.vcr
def test_old_ip_report_without_statistics(client):
    result = enrich_checked(make_app(**ALL_ON), client, "1.1.1.1")
    assert result.requests == 1
    assert objects_of(result, "note") == []  # nothing to report without analysis statistics
    assert "no detection statistics" in result.message
    (address,) = objects_of(result, "ipv4-addr")
    assert "score" not in address.get("extensions", {}).get(STIX_EXT_OCTI_SCO, {})
    (system,) = objects_of(result, "autonomous-system")
    assert (system["number"], system["name"], system["rir"]) == (13335, "Cloudflare, Inc.", "APNIC")
    (country,) = objects_of(result, "location")
    assert country["name"] == "Australia"


@pytest.mark.vcr
def test_ipv6_address(client):
    result = enrich_checked(make_app(**ALL_ON), client, IPV6)
    assert result.requests == 1
    (address,) = objects_of(result, "ipv6-addr")
    assert address["extensions"][STIX_EXT_OCTI_SCO]["score"] == 4
    (note,) = objects_of(result, "note")
    assert note["abstract"] == f"VirusTotal Results (IPv6-Addr: {IPV6})"
    (indicator,) = objects_of(result, "indicator")
    assert indicator["pattern"] == f"[ipv6-addr:value = '{IPV6}']"
    assert indicator["x_opencti_main_observable_type"] == "IPv6-Addr"
    (system,) = objects_of(result, "autonomous-system")
    (country,) = objects_of(result, "location")
    assert ("belongs-to", address["id"], system["id"]) in relationship_triples(result)
    assert ("located-at", address["id"], country["id"]) in relationship_triples(result)
    assert_stamped(result, [AMBER])


def test_partial_report_skips_what_is_missing(fake_vt, fake_client, samples_dir, caplog):
    # CONSTRUCTED: the real answer without asn, country and RIR, as a partial object would come.
    answer = json.loads((samples_dir / "ip_address_138.128.150.133.json").read_text())
    for key in ("asn", "country", "regional_internet_registry"):
        del answer["data"]["attributes"][key]
    fake_vt.add_route("GET", f"/ip_addresses/{IPV4}", body=answer)
    with caplog.at_level("DEBUG", "vtframework"):
        result = enrich_checked(make_app(**ALL_ON), fake_client, IPV4)
    assert objects_of(result, "autonomous-system") == objects_of(result, "location") == []
    assert {r[0] for r in relationship_triples(result)} == {"based-on"}
    (note,) = objects_of(result, "note")
    assert "| ASN | N/A |" in note["content"] and "| Autonomous System Label | CLOUD-SOUTH |" in note["content"]
    assert "no ASN" in caplog.text and "no known country code" in caplog.text
