"""The domain plugin on real VirusTotal answers (cassettes): what an analyst sees in OpenCTI."""

from __future__ import annotations

import json

import pytest

from vtframework import STIX_EXT_OCTI_SCO, TLP_MARKINGS, build_app
from vtframework.testing import (
    assert_repeat_is_free,
    assert_stamped,
    enrich_checked,
    notes_by_abstract,
    objects_of,
    relationship_triples,
)

AMBER = TLP_MARKINGS["TLP:AMBER"]["id"]
ALL_ON = {
    "VIRUSTOTAL_DOMAIN_ADD_RELATIONSHIPS": "true",
    "VIRUSTOTAL_INCLUDE_ATTRIBUTES_IN_NOTE": "true",
    # 6 engines flag the recorded domain; the default threshold of 10 would hide the indicator.
    "VIRUSTOTAL_DOMAIN_INDICATOR_CREATE_POSITIVES": "6",
}


def make_app(**env):
    # The domain plugin alone: the feature plugins (explain, classification…) are tested on their own.
    return build_app("virustotal", env={"VTF_PLUGINS": "domain", **env}, config_file=None)


@pytest.mark.vcr
def test_malicious_domain_with_an_invalid_a_record(client, caplog):
    with caplog.at_level("WARNING", "vtframework"):
        result = enrich_checked(make_app(**ALL_ON), client, "tawuhoju.com")
    assert (result.summary["malicious"], result.summary["total"], result.summary["score"]) == (6, 92, 6)
    assert result.requests == 1

    (domain,) = objects_of(result, "domain-name")
    ext = domain["extensions"][STIX_EXT_OCTI_SCO]
    assert ext["score"] == 6
    assert ext["external_references"][0]["url"] == "https://www.virustotal.com/gui/domain/tawuhoju.com"

    by_abstract = notes_by_abstract(result)
    assert set(by_abstract) == {
        "VirusTotal Results (Domain-Name: tawuhoju.com)",
        "VirusTotal Categories (Domain-Name: tawuhoju.com)",
    }
    results = by_abstract["VirusTotal Results (Domain-Name: tawuhoju.com)"]["content"]
    assert "| 92 | 6 | 0 | 76 | 11 |" in results
    for row in ("| Creation Date | 2016-12-29 13:28:19 UTC |", "| Last Update | 2021-12-30 08:12:59 UTC |",
                "| Registrar | CommuniGal Communication Ltd. |", "| Last Analysis Date | N/A |"):
        assert row in results
    categories = by_abstract["VirusTotal Categories (Domain-Name: tawuhoju.com)"]["content"]
    assert categories.startswith("| Vendor | Category |")
    assert "| Forcepoint ThreatSeeker | malicious web sites |" in categories
    assert "| alphaMountain.ai | Malicious |" in categories

    (indicator,) = objects_of(result, "indicator")
    assert indicator["pattern"] == "[domain-name:value = 'tawuhoju.com']"
    assert indicator["x_opencti_main_observable_type"] == "Domain-Name"

    # Both A records (66.0.543.66, 66.0.543.90) are not addresses: skipped and said so, not fatal.
    assert objects_of(result, "ipv4-addr") == []
    assert relationship_triples(result) == {("based-on", indicator["id"], domain["id"])}
    assert "66.0.543.66" in caplog.text and "66.0.543.90" in caplog.text
    assert_stamped(result, [AMBER])


@pytest.mark.vcr("test_malicious_domain_with_an_invalid_a_record.yaml")
def test_hostname_gets_a_hostname_pattern(client):
    result = enrich_checked(make_app(**ALL_ON), client, "tawuhoju.com", entity_type="Hostname")
    (hostname,) = objects_of(result, "hostname")
    (indicator,) = objects_of(result, "indicator")
    # The original connector gave hostnames a domain-name pattern.
    assert indicator["pattern"] == "[hostname:value = 'tawuhoju.com']"
    assert indicator["x_opencti_main_observable_type"] == "Hostname"
    assert ("based-on", indicator["id"], hostname["id"]) in relationship_triples(result)
    assert "VirusTotal Categories (Hostname: tawuhoju.com)" in notes_by_abstract(result)
    results = notes_by_abstract(result)["VirusTotal Results (Hostname: tawuhoju.com)"]["content"]
    assert "## Attributes (Hostname: tawuhoju.com)" in results


@pytest.mark.vcr
def test_clean_domain_resolves_to_its_addresses(client):
    result = enrich_checked(make_app(**ALL_ON), client, "haiku-os.org")
    assert (result.summary["malicious"], result.summary["score"]) == (0, 0)
    assert objects_of(result, "indicator") == []
    (domain,) = objects_of(result, "domain-name")
    (address,) = objects_of(result, "ipv4-addr")  # its one A record; NS, TXT, SOA and MX are not addresses
    assert address["value"] == "206.189.242.242"
    assert relationship_triples(result) == {("resolves-to", domain["id"], address["id"])}
    # The original copied the domain's score onto each address.
    assert "x_opencti_score" not in address and "extensions" not in address
    # The address is shared platform-wide: the TLP:AMBER stays on the resolves-to, not on the address.
    (resolves,) = objects_of(result, "relationship")
    assert "object_marking_refs" not in address and resolves["object_marking_refs"] == [AMBER]
    # No vendor categorises it: no categories note.
    assert list(notes_by_abstract(result)) == ["VirusTotal Results (Domain-Name: haiku-os.org)"]
    assert_stamped(result, [AMBER])


def test_aaaa_records_resolve_to_ipv6_addresses(fake_vt, fake_client, samples_dir):
    # CONSTRUCTED: no recorded answer has an AAAA record; the real haiku-os.org answer with a
    # valid one, a duplicate, and an IPv4 address where an IPv6 one belongs.
    answer = json.loads((samples_dir / "domain_clean_haiku-os.org.json").read_text())
    answer["data"]["attributes"]["last_dns_records"] += [
        {"type": "AAAA", "ttl": 300, "value": "2a03:b0c0:2:d0::ab4:6001"},
        {"type": "AAAA", "ttl": 300, "value": "2a03:b0c0:2:d0:0::ab4:6001"},
        {"type": "AAAA", "ttl": 300, "value": "206.189.242.242"},
    ]
    fake_vt.add_route("GET", "/domains/haiku-os.org", body=answer)
    result = enrich_checked(make_app(**ALL_ON), fake_client, "haiku-os.org")
    (domain,) = objects_of(result, "domain-name")
    (v4,) = objects_of(result, "ipv4-addr")
    (v6,) = objects_of(result, "ipv6-addr")
    assert v6["value"] == "2a03:b0c0:2:d0::ab4:6001"
    assert relationship_triples(result) == {("resolves-to", domain["id"], v4["id"]), ("resolves-to", domain["id"], v6["id"])}


@pytest.mark.vcr("test_clean_domain_resolves_to_its_addresses.yaml")
def test_repeat_within_cache_ttl_costs_nothing_and_duplicates_nothing(client):
    assert_repeat_is_free(make_app(**ALL_ON), client, "haiku-os.org")


@pytest.mark.vcr
def test_old_domain_report_without_statistics(client):
    result = enrich_checked(make_app(**ALL_ON), client, "github.com")
    assert result.requests == 1
    assert "no detection statistics" in result.message
    # No results note without statistics; the categories (and the attributes with them) remain.
    (note,) = objects_of(result, "note")
    assert note["abstract"] == "VirusTotal Categories (Domain-Name: github.com)"
    assert "| BitDefender | computersandsoftware |" in note["content"]
    assert "| Registrar | MarkMonitor Inc. |" in note["content"]
    (domain,) = objects_of(result, "domain-name")
    (address,) = objects_of(result, "ipv4-addr")
    assert address["value"] == "140.82.114.3"
    assert relationship_triples(result) == {("resolves-to", domain["id"], address["id"])}
