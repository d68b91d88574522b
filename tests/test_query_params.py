"""Plugins that own no type add parameters to the owner's lookup (``vtf_query_params``), merged by the core."""

from __future__ import annotations

import types
from urllib.parse import parse_qs

from vtframework import ClientConfig, Pipeline, SQLiteState, VTClient, VTQuery, build_app, from_value, hookimpl
from vtframework.pipeline.extend import is_list_param, merge
from vtframework.testing import FakeClock, FakeGTI, enrich_checked

MALICIOUS = "4bc00f7d638e042da764e8648c03c0db46700599dd4f08d117e3e9e8b538519b"
URL = "http://example.com/"


def app_with(*plugins, base="file,url"):
    names = ",".join([base, *(name for name, _ in plugins)])
    return build_app("virustotal", env={"VTF_PLUGINS": names, "VIRUSTOTAL_FILE_IMPORT_YARA": "false"},
                     config_file=None, extra_plugins=plugins)


def adding(params):
    return types.SimpleNamespace(vtf_query_params=hookimpl(specname="vtf_query_params")(lambda: params))


def asked(fake):
    return {name: values[0] for name, values in parse_qs(fake.requests[-1].query).items()}


# -- merging ---------------------------------------------------------------------------------------
def test_list_parameters_are_united_and_the_owner_keeps_its_own():
    owner = VTQuery("/urls/x", {"relationships": "last_serving_ip_address", "limit": "10"}, "URL x")
    merged, problems = merge(owner, [
        ("gti", {"relationships": "malware_families, last_serving_ip_address",
                 "relationship_attributes[reports]": "name"}),
        ("other", {"relationships": "reports", "relationship_attributes[reports]": "name,origin", "limit": "40"}),
    ])
    assert merged.params == {
        "relationships": "last_serving_ip_address,malware_families,reports",
        "limit": "10",
        "relationship_attributes[reports]": "name,origin",
    }
    assert (merged.path, merged.subject) == ("/urls/x", "URL x")
    assert problems == ["plugin 'other': query parameter 'limit' kept as '10', not '40'"]


def test_nothing_added_is_the_same_query_and_bad_answers_are_named():
    owner = VTQuery("/files/x", {"relationships": "a"})
    same, problems = merge(owner, [
        ("a", {"relationships": "a"}), ("b", ["relationships", "x"]), ("c", {"attributes": 3}),
        ("d", {"exclude_attributes": "x" * 5000}), ("e", {"": "x"}),
    ])
    assert same is owner
    assert problems == [
        "plugin 'b' gave query parameters that are not a mapping: ['relationships', 'x']",
        "plugin 'c': query parameter 'attributes' skipped: the value is int, not text",
        "plugin 'd': query parameter 'exclude_attributes' skipped: the value is 5000 characters long (at most 4000)",
        "plugin 'e': query parameter '' skipped: the name is not a short text",
    ]


def test_which_parameters_are_lists():
    assert all(map(is_list_param, ("relationships", "attributes", "exclude_attributes",
                                   "relationship_attributes[malware_families]")))
    assert not any(map(is_list_param, ("limit", "cursor", "relationship_attributes[a/b]", "relationship_attributes")))


# -- in the pipeline ------------------------------------------------------------------------------------
def test_the_lookup_carries_what_plugins_add(fake_vt, fake_client):
    app = app_with(("mine", adding({"relationships": "comments", "relationship_attributes[comments]": "text"})))
    result = enrich_checked(app, fake_client, URL)
    assert asked(fake_vt) == {"relationships": "last_serving_ip_address,comments",
                              "relationship_attributes[comments]": "text"}
    assert result.requests == 1


def test_a_plugin_that_fails_costs_its_parameters_only(fake_vt, fake_client):
    broken = types.SimpleNamespace(vtf_query_params=hookimpl(specname="vtf_query_params")(lambda: 1 / 0))
    app = app_with(("broken", broken), ("mine", adding({"attributes": "size"})))
    result = enrich_checked(app, fake_client, MALICIOUS)
    assert asked(fake_vt) == {"attributes": "size"}
    assert [str(f) for f in result.plugin_errors] == [
        "plugin 'broken' failed in vtf_query_params: ZeroDivisionError: division by zero"
    ]


def test_type_plugins_are_not_asked(fake_vt, fake_client):
    owner_hook = hookimpl(specname="vtf_query_params")(lambda: {"attributes": "owner"})
    owner = types.SimpleNamespace(
        vtf_observable_types=hookimpl(specname="vtf_observable_types")(lambda: ["Text"]), vtf_query_params=owner_hook,
    )
    enrich_checked(app_with(("owner", owner)), fake_client, MALICIOUS)
    assert "attributes" not in asked(fake_vt)


def test_a_refused_extension_falls_back_to_the_owners_query(tmp_path, samples_dir):
    seen = {}

    @hookimpl(specname="vtf_stix_objects")
    def look(context):
        seen.update(query=context.query, refused=context.query_refused)

    plugin = types.SimpleNamespace(vtf_stix_objects=look,
                                   vtf_query_params=hookimpl(specname="vtf_query_params")(
                                       lambda: {"relationships": "malware_families"}))
    app = app_with(("mine", plugin))
    with FakeGTI(str(samples_dir), licensed=()) as fake:
        state = SQLiteState(str(tmp_path / "s.sqlite3"))
        with VTClient(ClientConfig(api_key="k", base_url=fake.base_url, detect_quota=False), state,
                      clock=FakeClock()) as client:
            result = Pipeline(app, client).enrich(from_value(MALICIOUS, tlp="TLP:AMBER"))
        state.close()
        statuses = [(r.status, "relationships" in r.query) for r in fake.requests]
    assert result.ok and result.summary["malicious"] == 47, result.message
    assert statuses == [(403, True), (200, False)]
    assert seen["query"].params == {} and seen["refused"].status == 403


def test_the_process_memo_outlives_an_enrichment_not_the_app(fake_client):
    @hookimpl(specname="vtf_query_params")
    def count(context):
        context.process_memo["calls"] = context.process_memo.get("calls", 0) + 1

    app = app_with(("counter", types.SimpleNamespace(vtf_query_params=count)))
    for _ in range(3):
        enrich_checked(app, fake_client, MALICIOUS)
    other = app_with(("counter", types.SimpleNamespace(vtf_query_params=count)))
    enrich_checked(other, fake_client, MALICIOUS)
    assert (app.memo["calls"], other.memo["calls"]) == (3, 1)
