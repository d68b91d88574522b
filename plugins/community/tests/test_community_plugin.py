"""The community plugin on real comment and vote answers: the note, the weighted balance, authors, tags."""

from __future__ import annotations

import copy
import json

import pytest

from vtframework import STIX_EXT_OCTI_SCO, build_app
from vtframework.testing import enrich_checked, notes_by_abstract, objects_of

from vtframework_plugins.community.converter import comments_of, votes_of

EXAMPLE_URL = "http://example.com/"
EXAMPLE_URL_SHA256 = "2a1b402420ef46577471cdc7409b0fa2c6a204db316e59ade2d805435489a067"
NOTE = "VirusTotal Community"


def make_app(plugin="url", **env):
    return build_app(
        "virustotal", env={"VTF_PLUGINS": f"{plugin},community,explain", "VIRUSTOTAL_IMPORT_COMMUNITY": "true", **env},
        config_file=None,
    )


def sample(samples_dir, name):
    return json.loads((samples_dir / name).read_text())


def labels_of(result, stix_type):
    (target,) = objects_of(result, stix_type)
    return target["extensions"][STIX_EXT_OCTI_SCO].get("labels", [])


@pytest.mark.vcr
def test_url_comments_and_weighted_votes(client):
    result = enrich_checked(make_app(), client, EXAMPLE_URL)
    assert result.requests == 3  # the report, its comments, its votes
    note = notes_by_abstract(result)[NOTE]
    content = note["content"]
    # Weighted: 23 from one reputable voter outweighs six -1s and a -4.
    assert content.startswith(
        "**Votes**: the newest 10 weigh +17 (4 harmless, +26; 6 malicious, -9). Each vote weighs its author's "
        "reputation. All votes ever: 50 harmless, 118 malicious."
    )
    assert "### 2017-03-10 10:26:47 UTC (+4/-0)\n\n> #PHISHING #FakejQuery" in content
    assert content.count("\n### ") == 10
    assert note["external_references"] == [{
        "source_name": "VirusTotal community", "url": f"https://www.virustotal.com/gui/url/{EXAMPLE_URL_SHA256}/community",
        "description": "Comments and votes on VirusTotal",
    }]
    assert labels_of(result, "url") == ["phishing", "fakejquery", "webdisplay", "2013", "scumware", "safe"]
    explained = notes_by_abstract(result)["VirusTotal Score Explained"]["content"]
    assert "| benign | Community votes | the newest 10 votes weigh +17 (4 harmless, 6 malicious) |" in explained
    again = enrich_checked(make_app(), client, EXAMPLE_URL)
    assert (again.requests, again.cache_hits) == (0, 3)


@pytest.mark.vcr
def test_domain_comments_without_votes(client):
    result = enrich_checked(make_app("domain"), client, "github.com")
    content = notes_by_abstract(result)[NOTE]["content"]
    assert content.startswith("**Votes**: none. All votes ever: 2 harmless, 0 malicious.")
    assert "> Its GitHub everybody!! Yay! It's raining Octocats for everyone!" in content
    assert labels_of(result, "domain-name") == ["safe"]


@pytest.mark.vcr
def test_off_by_default(client):
    app = build_app("virustotal", env={"VTF_PLUGINS": "url,community"}, config_file=None)
    result = enrich_checked(app, client, EXAMPLE_URL)
    assert result.requests == 1
    assert NOTE not in notes_by_abstract(result)


def test_comment_authors_become_external_references(fake_vt, fake_client, samples_dir):
    comments = sample(samples_dir, "domain_comments_github.com.json")
    # CONSTRUCTED: the author descriptors `relationships=author` adds (docs shape); the comments are real.
    for item, author in zip(comments["data"], ("octo-fan", "safe/checker")):
        item["relationships"] = {"author": {"data": {"type": "user", "id": author}}}
    comments["data"][1]["attributes"]["text"] = "<script>alert(1)</script> #safe"
    fake_vt.add_route("GET", "/domains/github.com/comments", body=comments)
    result = enrich_checked(make_app("domain"), fake_client, "github.com")
    note = notes_by_abstract(result)[NOTE]
    assert note["external_references"][1:] == [
        {"source_name": "VirusTotal community", "url": "https://www.virustotal.com/gui/user/octo-fan",
         "description": "Comment author octo-fan"},
        {"source_name": "VirusTotal community", "url": "https://www.virustotal.com/gui/user/safe%2Fchecker",
         "description": "Comment author safe/checker"},
    ]
    assert "### 2019-04-12 00:40:15 UTC by octo-fan" in note["content"]
    assert "> &lt;script&gt;alert(1)&lt;/script&gt; #safe" in note["content"]  # no raw HTML reaches the note
    request = next(r for r in fake_vt.requests if r.path.endswith("/comments"))
    assert "relationships=author" in request.query and "limit=10" in request.query


def test_a_failed_request_costs_the_note_not_the_enrichment(fake_vt, fake_client):
    fake_vt.add_route("GET", "/domains/github.com/votes", status=403,
                      body={"error": {"code": "ForbiddenError", "message": "You are not allowed to perform this action"}})
    result = enrich_checked(make_app("domain"), fake_client, "github.com")
    assert "Octocats" in notes_by_abstract(result)[NOTE]["content"]
    (warning,) = result.warnings  # asked once for the note and the score's reasons: said once
    assert warning.startswith("community votes skipped: ")
    assert fake_vt.count("/api/v3/domains/github.com/votes") == 1


def test_real_file_votes_are_weighed(samples_dir):
    votes, skipped = votes_of(sample(samples_dir, "file_votes_275a021b_page1.json"))
    assert (votes.harmless, votes.harmless_weight, votes.malicious, votes.malicious_weight, skipped) == (8, 14, 2, -8, 0)
    assert votes.balance == 6


def test_real_2026_comments_with_tags(samples_dir):
    comments, skipped = comments_of(sample(samples_dir, "domain_comments_google.com_2026_page1.json"), 10)
    assert skipped == 0 and len(comments) == 10
    assert comments[0].text == "HELLO WORLD" and comments[0].author is None  # asked without relationships=author
    assert [tag for c in comments for tag in c.tags] == [
        "safe", "main", "trending", "https", "search", "browser", "ipsum", "ipsum",
    ]


def test_hostile_votes_and_comments(samples_dir):
    answer = sample(samples_dir, "url_votes_example.com_page1.json")
    hostile = copy.deepcopy(answer)
    hostile["data"] += [
        {"attributes": {"verdict": "malicious", "value": True}},
        {"attributes": {"verdict": "evil", "value": -100}},
        {"attributes": {"verdict": "harmless", "value": -5}},  # a sign against its verdict is read by the verdict
        "junk",
    ]
    votes, skipped = votes_of(hostile)
    assert skipped == 3
    assert votes.harmless_weight == votes_of(answer)[0].harmless_weight + 5
    comments, skipped = comments_of({"data": [{"attributes": {"text": 5}}, {"attributes": {
        "text": "x", "tags": ["#Ok", "no spaces allowed", "x" * 80, 3], "date": "yesterday"}}]}, 10)
    assert skipped == 1 and comments[0].tags == ("ok",)
    assert comments_of({"data": "nope"}, 10) == ([], 0)
