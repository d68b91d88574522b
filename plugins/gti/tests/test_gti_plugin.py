"""The gti plugin: GTI's families, actors, campaigns, reports and techniques in the lookup's one request.

No real GTI answer is public: the answers in ``samples/`` are real VirusTotal
objects with GTI's parts added in the documented shapes (CONSTRUCTED, see
tests/tools/build_gti_samples.py), served by :class:`FakeGTI`, which answers
as VirusTotal does for a GTI key (relationships only when asked, pages,
``gti_assessment`` only with ``x-tool``, licences refused with 403).
"""

from __future__ import annotations

import copy
import json
import types
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from vtframework import ClientConfig, Pipeline, SQLiteState, VTClient, build_app, bundle, from_value
from vtframework.errors import ConfigError
from vtframework_plugins.gti import fetch
from vtframework.testing import (
    FakeClock,
    FakeGTI,
    assert_stamped,
    assert_valid_bundle,
    enrich_checked,
    notes_by_abstract,
    objects_of,
    relationship_triples,
)

SAMPLES = Path(__file__).parent / "samples"
FILE = "4bc00f7d638e042da764e8648c03c0db46700599dd4f08d117e3e9e8b538519b"
DOMAIN, IP, URL = "tawuhoju.com", "138.128.150.133", "http://soclosebutyetqq.com/69.exe"
URL_ID = "aHR0cDovL3NvY2xvc2VidXR5ZXRxcS5jb20vNjkuZXhl"
AMBER = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"
ON = {"VIRUSTOTAL_IMPORT_GTI": "true", "VIRUSTOTAL_FILE_IMPORT_YARA": "false"}
OBSERVABLES = {"file": (FILE, "file"), "domain": (DOMAIN, "domain-name"), "ip": (IP, "ipv4-addr"),
               "url": (URL, "url")}

#: What OpenCTI allows besides related-to (reference: OpenCTI's stix.ts relationship mapping).
ALLOWED = {
    ("indicator", "based-on"): {"file", "domain-name", "ipv4-addr", "url"},
    ("indicator", "indicates"): {"malware", "intrusion-set", "campaign", "attack-pattern"},
    ("file", "uses"): {"attack-pattern"},
    ("malware", "uses"): {"attack-pattern"},
    ("intrusion-set", "uses"): {"attack-pattern"},
    ("campaign", "uses"): {"attack-pattern"},
    ("malware", "targets"): {"location", "identity"},
    ("intrusion-set", "targets"): {"location", "identity"},
    ("campaign", "targets"): {"location", "identity"},
    ("malware", "originates-from"): {"location"},
    ("intrusion-set", "originates-from"): {"location"},
    ("campaign", "originates-from"): {"location"},
}


def sample(name: str) -> dict:
    return json.loads((SAMPLES / name).read_text(encoding="utf-8"))


COLLECTIONS = sample("file_4bc00f7d_gti_CONSTRUCTED.json")["data"]["relationships"]
LOADER, ACTOR, CAMPAIGN = (COLLECTIONS[name]["data"][0] for name in
                           ("malware_families", "related_threat_actors", "campaigns"))


def make_app(**env):
    return build_app("virustotal", env={"VTF_PLUGINS": "file,ip,domain,url,gti,explain", **ON, **env},
                     config_file=None)


@pytest.fixture
def gti():
    with FakeGTI(str(SAMPLES), api_key="test-key") as fake:
        yield fake


@pytest.fixture
def gti_client(tmp_path, gti):
    state = SQLiteState(str(tmp_path / "state.sqlite3"))
    config = ClientConfig(api_key="test-key", base_url=gti.base_url, detect_quota=False, requests_per_minute=1000)
    with VTClient(config, state, clock=FakeClock()) as client:
        yield client
    state.close()


def client_of(fake, tmp_path):
    config = ClientConfig(api_key="test-key", base_url=fake.base_url, detect_quota=False, requests_per_minute=1000)
    return VTClient(config, SQLiteState(str(tmp_path / "own.sqlite3")), clock=FakeClock())


def by_type(result, stix_type):
    return {obj["name"]: obj for obj in objects_of(result, stix_type)}


def assert_allowed(result):
    kinds = {obj["id"]: obj["type"] for obj in result.objects}
    for kind, source, target in relationship_triples(result):
        pair = (kinds.get(source, source.split("--")[0]), kind)
        if kind != "related-to":
            assert kinds.get(target, target.split("--")[0]) in ALLOWED.get(pair, ()), (kind, source, target)


def query_of(request):
    return {name: values[0] for name, values in parse_qs(request.query).items()}


# -- what a GTI key brings, in one request ----------------------------------------------------------
@pytest.mark.parametrize("kind", OBSERVABLES)
def test_each_observable_is_linked_to_its_threats_in_one_request(kind, gti, gti_client):
    value, stix_type = OBSERVABLES[kind]
    result = enrich_checked(make_app(), gti_client, value)
    assert result.requests == 1 and not result.warnings, result.message
    [observable] = objects_of(result, stix_type)
    triples = relationship_triples(result)
    malware, actor, campaign = (by_type(result, t) for t in ("malware", "intrusion-set", "campaign"))
    assert malware["ExampleLoader"]["is_family"] is True
    for target in (malware["ExampleLoader"], actor["Example Actor"], campaign["Example Campaign"]):
        assert ("related-to", observable["id"], target["id"]) in triples
    reports = objects_of(result, "report")
    assert reports and all(observable["id"] in report["object_refs"] for report in reports)
    if kind == "file":
        techniques = by_type(result, "attack-pattern")
        assert {t["x_mitre_id"] for t in techniques.values()} == {"T1574.002", "T1105", "T1071.001"}
        assert all(("uses", observable["id"], t["id"]) in triples for t in techniques.values())
    assert_allowed(result)
    assert_stamped(result, [AMBER])
    # The one request is the owner's lookup, carrying what GTI needs and the x-tool header.
    [request] = gti.requests
    params = query_of(request)
    assert "malware_families" in params["relationships"].split(",")
    assert params["relationship_attributes[reports]"] == "name,collection_type,description,origin,creation_date"
    assert request.headers["x-tool"]


@pytest.mark.vcr
def test_replayed_one_request_each(client):
    """The cassette holds exactly the four lookups with GTI's parameters: a different request would not replay."""
    app = make_app()
    for value in (FILE, DOMAIN, IP, URL):
        first, again = enrich_checked(app, client, value), enrich_checked(app, client, value)
        assert (first.requests, again.requests) == (1, 0) and not first.warnings, first.message
        assert objects_of(first, "intrusion-set") and objects_of(first, "report")


def test_the_url_plugins_own_relationship_rides_along(gti, gti_client):
    result = enrich_checked(make_app(), gti_client, URL)
    [request] = gti.requests
    assert request.path == f"/api/v3/urls/{URL_ID}"
    assert query_of(request)["relationships"] == (
        "last_serving_ip_address,malware_families,related_threat_actors,campaigns,reports"
    )
    # GTI knows no serving IP (a to-one relationship answering data: null): nothing made of it, no error.
    assert not objects_of(result, "ipv4-addr") and not result.warnings


def test_what_gti_says_of_a_collection_is_kept(gti, gti_client):
    result = enrich_checked(make_app(), gti_client, DOMAIN)
    actor = by_type(result, "intrusion-set")["Example Actor"]
    assert (actor["first_seen"], actor["last_seen"]) == ("2021-09-15T00:00:00Z", "2024-06-20T00:00:00Z")
    assert actor["description"].startswith("Example Actor is an espionage group")
    assert actor["external_references"] == [{
        "source_name": "Google Threat Intelligence", "url": f"https://www.virustotal.com/gui/collection/{ACTOR['id']}",
        "external_id": ACTOR["id"], "description": "Threat actor in Google Threat Intelligence "
        "(origin: Google Threat Intelligence)",
    }]
    places = {obj["id"]: obj["name"] for obj in [*objects_of(result, "location"), *objects_of(result, "identity")]}
    triples = relationship_triples(result)
    targets = {places[t] for kind, s, t in triples if s == actor["id"] and kind == "targets"}
    assert targets == {"Viet Nam", "Germany", "Governments"}
    assert {places[t] for kind, s, t in triples if s == actor["id"] and kind == "originates-from"} == {
        "Democratic People's Republic of Korea"}  # as OpenCTI names it
    sector = by_type(result, "identity")["Governments"]
    assert sector["identity_class"] == "class"
    link = next(r for r in objects_of(result, "relationship") if r["target_ref"] == actor["id"])
    assert link["description"] == ("Google Threat Intelligence associates this domain with the threat actor "
                                   "Example Actor (origin: Google Threat Intelligence).")
    partner = by_type(result, "report")["Example Actor Infrastructure, Second Quarter"]
    assert partner["published"] == "2024-07-01T00:00:00Z"
    assert "(origin: Partner)" in partner["external_references"][0]["description"]


def test_repeat_creates_nothing_new_and_makes_no_request(gti, gti_client):
    app = make_app()
    for value in (FILE, DOMAIN, IP, URL):
        first = enrich_checked(app, gti_client, value)
        again = enrich_checked(app, gti_client, value)
        assert (first.requests, again.requests) == (1, 0), value
        assert sorted(o["id"] for o in first.objects) == sorted(o["id"] for o in again.objects)
    # The family, actor and campaign are one object each, whichever observable brought them.
    assert len({LOADER["id"], ACTOR["id"], CAMPAIGN["id"]}) == 3


def test_shared_threats_have_one_id_across_observables(gti, gti_client):
    app = make_app()
    ids = [{o["id"] for o in enrich_checked(app, gti_client, v).objects if o["type"] in ("malware", "intrusion-set")}
           for v in (FILE, DOMAIN, IP, URL)]
    assert len(set.union(*ids)) == 2 and all(len(found) == 2 for found in ids)


def test_yara_and_gti_together_cost_what_yara_alone_costs(gti, gti_client, samples_dir):
    gti.add_object(json.loads((samples_dir / "yara_ruleset_00888403c4.json").read_text()))  # the file's ruleset
    with_gti = enrich_checked(make_app(VIRUSTOTAL_FILE_IMPORT_YARA="true"), gti_client, FILE)
    assert with_gti.requests == 2 and objects_of(with_gti, "intrusion-set")


# -- labels and the "why this score" note ---------------------------------------------------------------
def test_verdict_severity_and_categories_are_labels_and_reasons(gti, gti_client):
    result = enrich_checked(make_app(), gti_client, FILE)
    [observable] = objects_of(result, "file")
    labels = next(iter(v for k, v in observable["extensions"].items() if "labels" in v))["labels"]
    assert {"gti:verdict:malicious", "gti:severity:high", "gti:category:trojan",
            "gti:category:downloader"} <= set(labels)
    note = notes_by_abstract(result)["VirusTotal Score Explained"]["content"]
    assert note.startswith("**Score 90**: Google Threat Intelligence's threat score.")
    assert "| malicious | GTI assessment | verdict VERDICT_MALICIOUS, severity SEVERITY_HIGH, threat score 90" in note
    assert "| malicious | GTI associations | 1 malware family: ExampleLoader |" in note
    assert "| malicious | GTI associations | 1 threat actor: Example Actor |" in note
    assert "| malicious | GTI contributing factors | Mandiant associates it with a threat actor |" in note
    assert "| malicious | GTI contributing factors | a sandbox judged it malicious |" in note
    # Explained one by one, the factors are not repeated as the one-line summary.
    assert "gti_confidence_score 85" not in note
    assert "pervasive" not in note  # a factor GTI says is false is no reason


def test_gti_assessment_needs_the_x_tool_header(gti, tmp_path):
    state = SQLiteState(str(tmp_path / "other.sqlite3"))
    config = ClientConfig(api_key="test-key", base_url=gti.base_url, detect_quota=False, tool="")
    with VTClient(config, state, clock=FakeClock()) as client:
        answer = client.get(f"/files/{FILE}")
    state.close()
    assert "gti_assessment" not in answer["data"]["attributes"]


# -- a key without the licence ------------------------------------------------------------------------------
def test_a_key_without_the_licence_gets_one_warning_and_the_rest(tmp_path, gti_client):
    app = make_app()
    with FakeGTI(str(SAMPLES), api_key="test-key", licensed=()) as fake:
        client = client_of(fake, tmp_path)
        first = enrich_checked(app, client, FILE)
        refused = [r.status for r in fake.requests]
        fake.clear_log()
        second = enrich_checked(app, client, DOMAIN)
        later = list(fake.requests)
    assert first.ok and first.warnings == [
        "this API key's licence does not grant the GTI relationships malware_families, related_threat_actors, "
        "campaigns, reports, attack_techniques (malware_families, related_threat_actors, campaigns need Google "
        "Threat Intelligence Enterprise or Enterprise Plus; reports need a Google Threat Intelligence licence with "
        "reports; attack_techniques need a Google Threat Intelligence licence with ATT&CK techniques); they are "
        "not asked for again until the connector restarts, the rest of the enrichment is intact"
    ]
    # The refused lookup, the owner's own, then each relationship on its own to learn which one it was.
    assert refused == [403, 200, 403, 403, 403, 403, 403]
    assert not {"malware", "intrusion-set", "campaign", "report", "attack-pattern"} & {o["type"] for o in first.objects}
    # The rest is what the same key gives with GTI off (the score note aside: GTI's factors are reasons in it).
    plain = enrich_checked(make_app(VIRUSTOTAL_IMPORT_GTI="false"), gti_client, FILE)
    def kept(result):
        return {o["id"] for o in result.objects if o.get("abstract") != "VirusTotal Score Explained"}

    assert kept(first) == kept(plain) and first.summary == plain.summary
    # Learnt once for the process: no warning, no GTI parameter, one request.
    assert second.warnings == [] and second.requests == 1 and "relationships" not in later[0].query


def test_a_licence_with_reports_only(tmp_path):
    app = make_app()
    with FakeGTI(str(SAMPLES), api_key="test-key", licensed=("reports",)) as fake:
        client = client_of(fake, tmp_path)
        first = enrich_checked(app, client, DOMAIN)
        fake.clear_log()
        second = enrich_checked(app, client, IP)
        [request] = fake.requests
    assert len(first.warnings) == 1 and first.warnings[0].startswith(
        "this API key's licence does not grant the GTI relationships malware_families, related_threat_actors, "
        "campaigns (")
    # The reports came on their own request while the licence was being learnt.
    assert len(objects_of(first, "report")) == 2
    assert query_of(request)["relationships"] == "reports" and second.requests == 1
    assert [r["name"] for r in objects_of(second, "report")] == ["Example Actor Infrastructure, Second Quarter"]


def test_a_lookup_refused_whole_though_each_relationship_is_granted(tmp_path):
    class Picky(FakeGTI):
        def _serve_object(self, h, collection, doc, params):
            if "relationships" in params:
                return h.send(400, b'{"error": {"code": "BadRequestError", "message": "Too many relationships"}}')
            return super()._serve_object(h, collection, doc, params)

    app = make_app()
    with Picky(str(SAMPLES), api_key="test-key") as fake:
        client = client_of(fake, tmp_path)
        first = enrich_checked(app, client, DOMAIN)
        fake.clear_log()
        second = enrich_checked(app, client, IP)
        paths = [r.path for r in fake.requests]
    assert objects_of(first, "intrusion-set") and objects_of(second, "intrusion-set")
    assert len(first.warnings) == 1 and "each relationship is read with a request of its own" in first.warnings[0]
    assert second.warnings == []
    assert paths == [f"/api/v3/ip_addresses/{IP}"] + [
        f"/api/v3/ip_addresses/{IP}/{name}" for name in ("malware_families", "related_threat_actors", "campaigns",
                                                           "reports")]


# -- pages and the budget -----------------------------------------------------------------------------------
def many_reports(count):
    return [{"type": "collection", "id": f"report--24-{20000000 + n}",
             "attributes": {"name": f"Report {n}", "collection_type": "report", "creation_date": 1714780800 + n}}
            for n in range(count)]


def test_a_relationship_longer_than_its_first_page_is_read_on(gti, gti_client):
    gti.add_relation("domains", DOMAIN, "reports", many_reports(45))
    result = enrich_checked(make_app(), gti_client, DOMAIN)
    assert len(objects_of(result, "report")) == 45 and not result.warnings
    pages = [(r.path, query_of(r)) for r in gti.requests[1:]]
    assert [p for p, _ in pages] == [f"/api/v3/domains/{DOMAIN}/reports"] * 2
    assert pages[0][1] == {"limit": "40", "attributes": "name,collection_type,description,origin,creation_date"}
    assert "cursor" in pages[1][1] and all(r.headers["x-tool"] for r in gti.requests)


def test_the_budget_bounds_the_follow_ups_and_says_so(gti, gti_client):
    gti.add_relation("domains", DOMAIN, "reports", many_reports(45))
    result = enrich_checked(make_app(VIRUSTOTAL_GTI_MAX_REQUESTS="1"), gti_client, DOMAIN)
    assert result.requests == 2 and len(objects_of(result, "report")) == 40
    assert result.warnings == [
        "GTI: 1 more request(s) needed (reports), over VIRUSTOTAL_GTI_MAX_REQUESTS=1; kept what the lookup and "
        "the first requests gave"
    ]
    none = enrich_checked(make_app(VIRUSTOTAL_GTI_MAX_REQUESTS="0"), gti_client, IP)
    assert none.requests == 1


def test_techniques_of_the_collections_of_a_domain(gti, gti_client):
    techniques = [{"type": "attack_technique", "id": "T1566.001", "attributes": {"name": "Spearphishing Attachment"}}]
    for collection in (LOADER, ACTOR, CAMPAIGN):
        gti.add_relation("collections", collection["id"], "attack_techniques", techniques)
    result = enrich_checked(make_app(VIRUSTOTAL_GTI_COLLECTION_TECHNIQUES="true"), gti_client, DOMAIN)
    [pattern] = objects_of(result, "attack-pattern")
    assert pattern["x_mitre_id"] == "T1566.001" and pattern["name"] == "Spearphishing Attachment"
    users = {s for kind, s, t in relationship_triples(result) if kind == "uses" and t == pattern["id"]}
    assert users == {o["id"] for o in objects_of(result, "malware") + objects_of(result, "intrusion-set")
                     + objects_of(result, "campaign")}
    # GTI says which collections use it, not that the domain does: no link is made up.
    [domain] = objects_of(result, "domain-name")
    assert not any(pattern["id"] in (s, t) and domain["id"] in (s, t) for _, s, t in relationship_triples(result))
    assert result.requests == 4 and [r.path.split("/")[-1] for r in gti.requests[1:]] == ["attack_techniques"] * 3
    assert_allowed(result)


# -- what may go wrong ------------------------------------------------------------------------------------------
def test_hostile_relationship_blocks_cost_only_their_items(gti, gti_client):
    answer = sample("domain_tawuhoju.com_gti_CONSTRUCTED.json")
    blocks = answer["data"]["relationships"]
    blocks["malware_families"]["data"] += [
        {"type": "collection", "id": "../../users/me", "attributes": {"name": "Path"}},
        {"type": "collection", "attributes": {"name": "No id"}},
        {"type": "collection", "id": "malware--no-name", "attributes": {"name": ""}},
        "not an object",
    ]
    blocks["related_threat_actors"] = {"data": {"unexpected": "shape"}, "links": {}}
    blocks["campaigns"] = {"error": {"code": "ServerError", "message": "try later"}}
    undated = copy.deepcopy(blocks["reports"]["data"][0])
    undated["id"], undated["attributes"]["creation_date"] = "report--24-19999999", "yesterday"
    undated["attributes"]["name"] = "Undated Report"
    blocks["reports"]["data"] = [undated]
    loader = blocks["malware_families"]["data"][0]["attributes"]
    loader["first_seen_details"] = [{"value": "2024-06-01T00:00:00Z"}, {"value": "not a date"}, 7]
    loader["last_seen_details"] = [{"value": "2020-01-01T00:00:00Z"}]  # before the first sighting
    loader["targeted_regions_hierarchy"] = [{"country_iso2": "XX"}, {"country_iso2": 42}, None]
    gti.add_route("GET", f"/domains/{DOMAIN}", body=answer)
    result = enrich_checked(make_app(), gti_client, DOMAIN)
    assert result.requests == 1
    assert sorted(result.warnings) == sorted([
        "GTI malware_families: 3 item(s) without a usable id skipped",
        "GTI related_threat_actors: 1 item(s) without a usable id skipped",
        "GTI campaigns skipped: VirusTotal answered ServerError: try later",
        "GTI malware_families: 1 item(s) without a name skipped",
    ])
    loader_sdo = by_type(result, "malware")["ExampleLoader"]
    assert loader_sdo["first_seen"] == "2024-06-01T00:00:00Z" and "last_seen" not in loader_sdo
    assert not objects_of(result, "location") or all(
        loc["name"] != "XX" for loc in objects_of(result, "location"))
    # Without its own date a report cannot be keyed: it is a reference on the observable instead.
    assert not objects_of(result, "report")
    [domain] = objects_of(result, "domain-name")
    references = next(v for v in domain["extensions"].values() if "external_references" in v)["external_references"]
    assert {"source_name": "Google Threat Intelligence", "external_id": "report--24-19999999",
            "url": "https://www.virustotal.com/gui/collection/report--24-19999999",
            "description": "Google Threat Intelligence report: Undated Report"} in references


def test_a_page_that_fails_costs_its_items_only(gti, gti_client):
    gti.add_relation("domains", DOMAIN, "reports", many_reports(45))
    gti.inject("503", count=10, path_prefix=f"/domains/{DOMAIN}/reports")
    result = enrich_checked(make_app(), gti_client, DOMAIN)
    assert len(objects_of(result, "report")) == 20 and objects_of(result, "intrusion-set")
    assert len(result.warnings) == 1 and result.warnings[0].startswith("GTI reports skipped: ")


def test_through_an_indicator(gti, gti_client):
    indicator = {
        "type": "indicator", "spec_version": "2.1", "id": "indicator--0f6b3a0e-3d4b-4b3e-9d8b-6a0c0e3f9d21",
        "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z", "name": FILE,
        "pattern": f"[file:hashes.'SHA-256' = '{FILE}']", "pattern_type": "stix", "valid_from": "2024-01-01T00:00:00Z",
    }
    result = Pipeline(make_app(), gti_client).enrich(from_value(FILE, tlp="TLP:AMBER"), target=indicator)
    assert result.ok, result.message
    assert_valid_bundle(bundle(result.objects))
    triples = relationship_triples(result)
    for stix_type in ("malware", "intrusion-set", "campaign", "attack-pattern"):
        for obj in objects_of(result, stix_type):
            assert ("indicates", indicator["id"], obj["id"]) in triples
    assert all(report["object_refs"] == [indicator["id"]] for report in objects_of(result, "report"))
    assert_allowed(result)


def test_off_by_default(gti, gti_client):
    app = build_app("virustotal", env={"VIRUSTOTAL_FILE_IMPORT_YARA": "false"}, config_file=None)
    assert app.host.implements("gti", "vtf_query_params")  # loaded by the preset, yet silent
    result = enrich_checked(app, gti_client, DOMAIN)
    assert "relationships" not in gti.requests[0].query
    assert not {"intrusion-set", "campaign", "report"} & {o["type"] for o in result.objects}


def test_an_unknown_relationship_name_stops_start_up():
    with pytest.raises(ConfigError) as refused:
        make_app(VIRUSTOTAL_GTI_RELATIONSHIPS="malware_families,threat_actors")
    assert "invalid VIRUSTOTAL_GTI_RELATIONSHIPS" in str(refused.value)
    assert "expected a comma-separated list of malware_families, related_threat_actors, campaigns" in str(refused.value)
    app = make_app(VIRUSTOTAL_GTI_RELATIONSHIPS="Reports, campaigns")
    assert app.settings["virustotal.gti_relationships"] == ["reports", "campaigns"]



def test_an_object_id_that_cannot_be_a_path_steers_no_request():
    answer = sample("domain_tawuhoju.com_gti_CONSTRUCTED.json")
    answer["data"]["id"] = "tawuhoju.com?limit=1&x="
    del answer["data"]["relationships"]["reports"]  # would be asked for on its own
    asked, warnings = [], []
    context = types.SimpleNamespace(
        settings=make_app().settings, memo={}, process_memo={}, query_refused=None, warn=warnings.append,
        client=types.SimpleNamespace(get=lambda *args, **kw: asked.append(args)),
    )
    found = fetch.collect(context, answer)
    assert asked == [] and [item.id for item in found.items["related_threat_actors"]] == [ACTOR["id"]]
    assert warnings == ["GTI: the answer's object id 'tawuhoju.com?limit=1&x=' cannot be asked about; "
                        "kept what the lookup gave"]
