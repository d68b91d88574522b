"""The url plugin on real VirusTotal answers (cassettes): what an analyst sees in OpenCTI."""

from __future__ import annotations

import json

import pytest
import stix2

from vtframework import (
    STIX_EXT_OCTI_SCO,
    TLP_MARKINGS,
    Pipeline,
    build_app,
    bundle,
    from_value,
    observables_in_pattern,
    url_id,
)
from vtframework.testing import (
    assert_repeat_is_free,
    assert_stamped,
    assert_valid_bundle,
    enrich_checked,
    notes_by_abstract,
    objects_of,
    relationship_triples,
)

MALICIOUS = "http://soclosebutyetqq.com/69.exe"
MALICIOUS_SHA256 = "7d83e9f686ff0122ded311f27aababf6922800a45a23a4dacc860b56ccada4cb"
EXAMPLE = "http://example.com/"
QUOTED = "http://example.com/it's?q='x'"
TRICKY = "http://example.com/it's/a\\path/café?q='x'"
AMBER = TLP_MARKINGS["TLP:AMBER"]["id"]
ATTRIBUTES_ON = {"VIRUSTOTAL_INCLUDE_ATTRIBUTES_IN_NOTE": "true"}


def make_app(**env):
    # The url plugin alone: the feature plugins (explain, classification…) are tested on their own.
    return build_app("virustotal", env={"VTF_PLUGINS": "url", **env}, config_file=None)


def fail(app, client, value, tlp):
    result = Pipeline(app, client).enrich(from_value(value, tlp=tlp))
    assert not result.ok
    assert result.objects == []
    return result


@pytest.mark.vcr
def test_malicious_url(client):
    result = enrich_checked(make_app(**ATTRIBUTES_ON), client, MALICIOUS)
    assert (result.summary["malicious"], result.summary["total"], result.summary["score"]) == (11, 93, 12)
    assert result.requests == 1  # the original connector makes 2: the report, then its serving address

    (url,) = objects_of(result, "url")
    ext = url["extensions"][STIX_EXT_OCTI_SCO]
    assert ext["score"] == 12
    assert ext["external_references"][0]["url"] == f"https://www.virustotal.com/gui/url/{MALICIOUS_SHA256}"

    by_abstract = notes_by_abstract(result)
    results = by_abstract[f"VirusTotal Results (Url: {MALICIOUS})"]["content"]
    assert "| 93 | 11 | 0 | 73 | 9 |" in results
    for row in (f"| Final URL | {MALICIOUS} |", "| Title | N/A |", "| Last HTTP response code | 200 |",
                "| Last Analysis Date | 2022-03-04 15:19:31 UTC |", "| Serving IP Address | N/A |"):
        assert row in results
    categories = by_abstract[f"VirusTotal Categories (Url: {MALICIOUS})"]["content"]
    assert "| Sophos | command and control |" in categories
    assert "| Serving IP Address | N/A |" in categories
    assert len(by_abstract) == 2

    (indicator,) = objects_of(result, "indicator")
    assert indicator["pattern"] == f"[url:value = '{MALICIOUS}']"
    assert indicator["x_opencti_main_observable_type"] == "Url"
    assert indicator["x_opencti_score"] == 12
    assert relationship_triples(result) == {("based-on", indicator["id"], url["id"])}
    assert_stamped(result, [AMBER])


@pytest.mark.vcr("test_malicious_url.yaml")
def test_repeat_within_cache_ttl_costs_nothing_and_duplicates_nothing(client):
    assert_repeat_is_free(make_app(), client, MALICIOUS)


@pytest.mark.vcr
def test_clean_url(client):
    result = enrich_checked(make_app(**ATTRIBUTES_ON), client, EXAMPLE)
    assert (result.summary["malicious"], result.summary["score"], result.requests) == (0, 0, 1)
    assert objects_of(result, "indicator") == []
    (note,) = objects_of(result, "note")  # VirusTotal has no categories for it: no categories note
    assert note["abstract"] == f"VirusTotal Results (Url: {EXAMPLE})"
    assert "| Title | Example Domain |" in note["content"]


@pytest.mark.vcr
def test_urls_with_quotes_backslash_and_unicode(client):
    # The request paths are these URLs' ids; the answers the real one of MALICIOUS (CONSTRUCTED pairing).
    app = make_app()
    quoted = enrich_checked(app, client, QUOTED)
    (indicator,) = objects_of(quoted, "indicator")
    assert indicator["pattern"] == "[url:value = 'http://example.com/it\\'s?q=\\'x\\'']"

    # A backslash and unicode make a value OpenCTI accepts but that is not an RFC 3986 URI, so the
    # OASIS validator rejects the enriched observable itself; what we create must still be valid.
    tricky = Pipeline(app, client).enrich(from_value(TRICKY, tlp="TLP:AMBER"))
    assert tricky.ok, tricky.message
    assert_valid_bundle(bundle([obj for obj in tricky.objects if obj["type"] != "url"]))
    (indicator,) = objects_of(tricky, "indicator")
    assert indicator["pattern"] == "[url:value = 'http://example.com/it\\'s/a\\\\path/café?q=\\'x\\'']"

    for result in (quoted, tricky):
        (indicator,) = objects_of(result, "indicator")
        stix2.Indicator(pattern=indicator["pattern"], pattern_type="stix", valid_from=indicator["valid_from"])
        assert observables_in_pattern(indicator["pattern"]) == [("Url", result.observable.value)]
        assert notes_by_abstract(result)[f"VirusTotal Results (Url: {result.observable.value})"]


def test_serving_address_comes_with_the_report(fake_vt, fake_client, samples_dir):
    # CONSTRUCTED: the real example.com answer predates relationships; this adds the descriptor
    # VirusTotal returns for ?relationships=last_serving_ip_address (address from the real
    # url_last_serving_ip_address sample).
    answer = json.loads((samples_dir / "url_clean_example.com_2a1b4024.json").read_text())
    answer["data"]["relationships"] = {
        "last_serving_ip_address": {"data": {"type": "ip_address", "id": "93.184.216.34"}}
    }
    fake_vt.add_route("GET", f"/urls/{url_id(EXAMPLE)}", body=answer)
    result = enrich_checked(make_app(**ATTRIBUTES_ON), fake_client, EXAMPLE)
    assert "| Serving IP Address | 93.184.216.34 |" in objects_of(result, "note")[0]["content"]
    (request,) = fake_vt.requests
    assert (request.path, request.query) == (
        f"/api/v3/urls/{url_id(EXAMPLE)}", "relationships=last_serving_ip_address"
    )


@pytest.mark.vcr
def test_unseen_url_is_submitted_and_analysed(client):
    # The cassette's first answer is VirusTotal's real 404 body (recorded for a file).
    result = enrich_checked(make_app(), client, EXAMPLE, tlp="TLP:GREEN")
    # The report, the submission, one poll of the analysis, the report again (original: up to 17).
    assert result.requests == 4
    assert result.summary["malicious"] == 0
    (note,) = objects_of(result, "note")
    assert note["abstract"] == f"VirusTotal Results (Url: {EXAMPLE})"
    assert client.clock.sleeps == []


@pytest.mark.vcr
def test_unseen_amber_url_is_not_submitted(client):
    result = fail(make_app(), client, EXAMPLE, "TLP:AMBER")
    assert result.requests == 1  # the lookup only: no POST
    assert "not submitted" in result.message
    assert "TLP:AMBER" in result.message and "VIRUSTOTAL_UPLOAD_MAX_TLP=TLP:GREEN" in result.message


@pytest.mark.vcr
def test_unseen_url_with_submission_off_is_not_found(client):
    result = fail(make_app(VIRUSTOTAL_URL_UPLOAD_UNSEEN="false"), client, EXAMPLE, "TLP:CLEAR")
    assert result.requests == 1
    assert "not found on VirusTotal" in result.message


def test_analysis_that_does_not_finish_is_a_failure(fake_vt, fake_client, samples_dir):
    unseen = "http://unseen.example/"
    submitted = json.loads((samples_dir / "analysis_descriptor_url_analyse_2019.json").read_text())
    # CONSTRUCTED: the real completed analysis, still queued.
    queued = json.loads((samples_dir / "analysis_url_completed_u-2a1b4024.json").read_text())
    queued["data"]["attributes"]["status"] = "queued"
    queued["data"]["id"] = submitted["data"]["id"]  # the analysis polled is the one submitted
    fake_vt.add_route("POST", "/urls", body=submitted)
    fake_vt.add_route("GET", f"/analyses/{submitted['data']['id']}", body=queued)
    app = make_app(VIRUSTOTAL_URL_UPLOAD_POLL_ATTEMPTS="3", VIRUSTOTAL_URL_UPLOAD_POLL_INTERVAL="5")

    result = fail(app, fake_client, unseen, "TLP:CLEAR")
    assert "enrich it again later" in result.message
    assert "3 polls" in result.message
    assert fake_client.clock.sleeps == [5.0, 5.0]
    assert result.requests == 1 + 1 + 3
    (post,) = [r for r in fake_vt.requests if r.method == "POST"]
    assert post.body == b"url=http%3A%2F%2Funseen.example%2F"
