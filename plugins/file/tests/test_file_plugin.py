"""The file plugin on real VirusTotal answers (cassettes): what an analyst sees in OpenCTI."""

from __future__ import annotations

import copy
import datetime as dt
import json

import pytest

from vtframework import (
    AUTHOR_ID,
    STIX_EXT_OCTI_SCO,
    TLP_MARKINGS,
    ClientConfig,
    Pipeline,
    SQLiteState,
    VTClient,
    build_app,
    bundle,
    from_value,
)
from vtframework.testing import RECORDINGS_DIR as SAMPLES
from vtframework.testing import assert_valid_bundle, enrich_offline, plugin_app

MALICIOUS = "4bc00f7d638e042da764e8648c03c0db46700599dd4f08d117e3e9e8b538519b"
WORD_DOC = "001015aafcae8a6942366cbb0e7d39c0738752a7800c41ea1c655d47b0a4d04c"
CLEAN_MACHO = "b8e7a581d85807ea6659ea2f681bd16d5baa7017ff144aa3030aefba9cbcdfd3"
CLEAN_EXE = "ddecc35aa198f401948c73a0d53fd93c4ecb770198ad7db308de026745c56b71"
UNKNOWN = "fffdddd2c3dc06d147c5ddddddd5c7e6acda4d1f1369fbc994cddd3c19a2de88"
AMBER = TLP_MARKINGS["TLP:AMBER"]["id"]


@pytest.fixture
def app():
    # The file plugin alone: the feature plugins (explain, classification…) are tested on their own.
    return build_app("virustotal", env={"VTF_PLUGINS": "file"}, config_file=None)


@pytest.fixture
def client(tmp_path):
    state = SQLiteState(str(tmp_path / "state.sqlite3"))
    config = ClientConfig(api_key="test-key", detect_quota=False, requests_per_minute=1000, requests_per_day=100000)
    with VTClient(config, state) as vt:
        yield vt
    state.close()


def enrich(app, client, value, tlp="TLP:AMBER", **kwargs):
    result = Pipeline(app, client).enrich(from_value(value, tlp=tlp), **kwargs)
    if result.ok:
        assert_valid_bundle(bundle(result.objects))
    return result


def by_type(result, stix_type):
    return [obj for obj in result.objects if obj["type"] == stix_type]


def the_file(result):
    (file,) = by_type(result, "file")
    return file


@pytest.mark.vcr
def test_malicious_file_with_yara(app, client):
    result = enrich(app, client, MALICIOUS)
    assert result.ok, result.message
    assert (result.summary["malicious"], result.summary["total"], result.summary["score"]) == (47, 74, 72)
    assert result.requests == 2  # the file report and its one YARA ruleset

    file = the_file(result)
    assert file["hashes"] == {
        "SHA-256": MALICIOUS,
        "MD5": "546bb6ef89bebfb053999777f6930d7e",
        "SHA-1": "44392b16e2db656104579e83d603b363bf91ccb2",
    }
    assert file["size"] == 87040
    ext = file["extensions"][STIX_EXT_OCTI_SCO]
    assert ext["score"] == 72
    assert ext["labels"] == ["pedll"]
    assert ext["external_references"] == [{
        "source_name": "VirusTotal",
        "url": f"https://www.virustotal.com/gui/file/{MALICIOUS}",
        "description": "PE32 executable for MS Windows (DLL) (GUI) Intel 80386 32-bit",
    }]

    (report,) = [n for n in by_type(result, "note") if n["abstract"] == "VirusTotal Report"]
    assert report["object_refs"] == [file["id"]]
    assert "| 74 | 47 | 0 | 18 | 0 | 2 | 1 | 0 | 6 |" in report["content"]
    assert "| Kaspersky |" in report["content"]

    stix_indicator, yara_indicator = sorted(by_type(result, "indicator"), key=lambda i: i["pattern_type"])
    assert stix_indicator["pattern"] == f"[file:hashes.'SHA-256' = '{MALICIOUS}']"
    assert stix_indicator["x_opencti_score"] == 72
    assert stix_indicator["x_opencti_detection"] is True
    assert stix_indicator["x_opencti_main_observable_type"] == "StixFile"
    valid_from = dt.datetime.fromisoformat(stix_indicator["valid_from"].replace("Z", "+00:00"))
    valid_until = dt.datetime.fromisoformat(stix_indicator["valid_until"].replace("Z", "+00:00"))
    assert valid_until - valid_from == dt.timedelta(minutes=2880)  # minutes, not the original's days

    assert yara_indicator["name"] == "win_kerrdown_auto"
    assert yara_indicator["pattern"].startswith("rule win_kerrdown_auto {")
    assert json.loads(yara_indicator["description"].strip("`\n"))["ruleset_id"] == "00888403c4"

    relationships = {(r["relationship_type"], r["source_ref"], r["target_ref"]) for r in by_type(result, "relationship")}
    assert relationships == {
        ("based-on", stix_indicator["id"], file["id"]),
        ("related-to", file["id"], yara_indicator["id"]),
    }
    # Everything we create carries the author and the observable's marking.
    for obj in result.objects:
        if obj["type"] in ("note", "indicator", "relationship"):
            assert obj["created_by_ref"] == AUTHOR_ID
            assert obj["object_marking_refs"] == [AMBER]


@pytest.mark.vcr("test_malicious_file_with_yara.yaml")
def test_repeat_within_cache_ttl_costs_nothing_and_duplicates_nothing(app, client):
    first = enrich(app, client, MALICIOUS)
    again = enrich(app, client, MALICIOUS)
    assert (first.requests, again.requests) == (2, 0)
    assert again.cache_hits == 2
    created = lambda r: sorted(o["id"] for o in r.objects if o["type"] in ("note", "indicator", "relationship"))
    assert created(first) == created(again)


@pytest.mark.vcr
def test_malicious_document_without_yara(app, client):
    result = enrich(app, client, WORD_DOC)
    assert result.ok, result.message
    assert result.requests == 1
    file = the_file(result)
    assert file["name"] == result_meaningful_name()
    assert result.summary["malicious"] == 53
    assert len(by_type(result, "indicator")) == 1


def result_meaningful_name():
    return json.loads((SAMPLES / "file_malicious_001015aa.json").read_text())["data"]["attributes"]["meaningful_name"]


@pytest.mark.vcr
def test_clean_files(app, client):
    for value, unsupported in ((CLEAN_MACHO, 13), (CLEAN_EXE, None)):
        result = enrich(app, client, value)
        assert result.ok, result.message
        assert result.summary["malicious"] == 0
        assert result.summary["score"] == 0
        assert by_type(result, "indicator") == []  # below the threshold
        (note,) = by_type(result, "note")
        if unsupported is not None:
            assert note["content"].splitlines()[4].endswith(f"| {unsupported} |")


@pytest.mark.vcr
def test_unknown_file_is_a_clear_failure(app, client):
    result = enrich(app, client, UNKNOWN)
    assert not result.ok
    assert result.objects == []
    assert UNKNOWN in result.message
    assert "not found" in result.message.lower()


@pytest.mark.vcr
def test_ruleset_that_cannot_be_fetched_costs_only_its_rule(app, client):
    result = enrich(app, client, MALICIOUS)
    assert result.ok
    assert [i["pattern_type"] for i in by_type(result, "indicator")] == ["stix"]
    assert len(result.warnings) == 1 and "win_kerrdown_auto" in result.warnings[0]


def test_tlp_red_makes_no_request(app, client):
    result = enrich(app, client, MALICIOUS, tlp="TLP:RED")
    assert not result.ok
    assert result.requests == 0
    assert "TLP:RED" in result.message and "VIRUSTOTAL_MAX_TLP" in result.message


def test_file_without_a_usable_hash_is_refused(app, client):
    observable = from_value(MALICIOUS)
    bare = type(observable)(entity_type="StixFile", value="invoice.pdf", stix={"type": "file", "id": "file--x", "name": "invoice.pdf"})
    result = Pipeline(app, client).enrich(bare)
    assert not result.ok
    assert "no SHA-256, SHA-1 or MD5 hash" in result.message
    assert result.requests == 0


def test_score_is_kept_when_vt_is_lower_and_replacement_is_off(tmp_path):
    app = build_app("virustotal", env={"VIRUSTOTAL_REPLACE_WITH_LOWER_SCORE": "false", "VTF_EXTERNAL_PLUGINS": "false"}, config_file=None)
    observable = from_value(MALICIOUS)
    stix = copy.deepcopy(dict(observable.stix))
    stix["x_opencti_score"] = 95
    observable = type(observable)(**{**observable.__dict__, "stix": stix})
    from vtframework.testing import offline_client

    with offline_client(app) as client:
        result = Pipeline(app, client).enrich(observable)
    assert result.ok
    assert the_file(result).get("x_opencti_score") == 95
    assert "score" not in the_file(result).get("extensions", {}).get(STIX_EXT_OCTI_SCO, {})
    (score_note,) = [n for n in by_type(result, "note") if n["abstract"] == "VirusTotal Score"]
    assert score_note["content"] == "```\n72\n```"


def test_example_plugin_adds_its_object_to_every_enrichment():
    with plugin_app(preset="virustotal", installed=True) as app:
        assert app.host.infos["hello"].status == "loaded"
        result = enrich_offline(app, MALICIOUS)
    assert result.ok, result.message
    (hello,) = [n for n in by_type(result, "note") if n["abstract"] == "vtframework-hello"]
    assert hello["content"].startswith("Hello from vtframework-hello (StixFile ")
    assert hello["object_marking_refs"] == [AMBER]


def test_type_plugins_hear_only_about_their_own_types():
    import types

    from vtframework import hookimpl

    heard = []
    owner = types.SimpleNamespace(
        vtf_observable_types=hookimpl(lambda: ["X-Custom-Type"]),
        vtf_stix_objects=hookimpl(lambda observable: heard.append(("owner", observable.entity_type))),
    )
    extra = types.SimpleNamespace(
        vtf_stix_objects=hookimpl(lambda observable: heard.append(("extra", observable.entity_type))),
    )

    app = build_app("virustotal", env={"VTF_EXTERNAL_PLUGINS": "false"}, config_file=None,
                    extra_plugins=[("owner", owner), ("extra", extra)])
    from vtframework.testing import enrich_offline

    assert enrich_offline(app, MALICIOUS).ok
    assert heard == [("extra", "StixFile")]


def test_answer_with_missing_fields_nulls_and_markdown_breaking_text(tmp_path):
    """Real answer, damaged the way schema drift damages it: still a valid bundle, tables intact."""
    from vtframework.testing import enrich_offline

    answer = json.loads((SAMPLES / "file_malicious_4bc00f7d.json").read_text())
    attrs = answer["data"]["attributes"]
    del attrs["last_analysis_stats"]
    attrs.update(names=None, tags=None, size=None, magic=None, crowdsourced_yara_results=[{"ruleset_id": None}])
    engines = attrs["last_analysis_results"]
    engines["Kaspersky"] = {"category": None, "engine_name": None, "method": None, "result": "evil | `rm -rf` \n## x"}
    samples = tmp_path / "samples"
    samples.mkdir()
    (samples / "file.json").write_text(json.dumps(answer))
    app = build_app("virustotal", env={"VTF_EXTERNAL_PLUGINS": "false"}, config_file=None)
    result = enrich_offline(app, MALICIOUS, samples_dir=samples)
    assert result.ok, result.message
    assert_valid_bundle(bundle(result.objects))
    (report,) = [n for n in by_type(result, "note") if n["abstract"] == "VirusTotal Report"]
    rows = [line for line in report["content"].splitlines() if line.startswith("| Kaspersky")]
    assert rows == ["| Kaspersky | N/A | N/A | N/A | evil \\| \\`rm -rf\\` ## x |"]
    assert "| 74 | N/A | N/A | N/A | N/A | N/A | N/A | N/A | N/A |" in report["content"]
    assert "malicious" not in result.summary and result.summary.get("score") is None  # nothing invented
    assert not by_type(result, "indicator")
