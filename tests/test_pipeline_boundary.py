"""One enrichment's failure, whatever it is, stays that enrichment's failure, and names it."""

from __future__ import annotations

from vtframework import Pipeline, bundle, from_value, hookimpl
from vtframework.pipeline import blocks
from vtframework.testing import assert_valid_bundle, offline_client, plugin_app

GOOD = "4bc00f7d638e042da764e8648c03c0db46700599dd4f08d117e3e9e8b538519b"
IP = "138.128.150.133"


class Broken:
    """An IP plugin with a bug: it computes with a count VirusTotal sent as infinity."""

    @hookimpl
    def vtf_observable_types(self):
        return ["IPv4-Addr"]

    @hookimpl
    def vtf_vt_query(self, observable):
        from vtframework import VTQuery

        return VTQuery(path=f"/ip_addresses/{observable.value}")

    @hookimpl
    def vtf_stix_objects(self, observable, report, context):
        return [int(float("inf"))]


def test_a_plugin_bug_fails_its_observable_by_name_and_the_batch_goes_on():
    with plugin_app(Broken(), name="broken", env={"VTF_DISABLE_PLUGINS": "hello,ip"}) as app:
        with offline_client(app) as client:
            pipeline = Pipeline(app, client)
            results = [pipeline.enrich(from_value(value, tlp="TLP:AMBER")) for value in (IP, GOOD)]
    failed, good = results
    assert not failed.ok and failed.message.startswith(f"IPv4-Addr {IP}: plugin 'broken' failed in vtf_stix_objects")
    assert "OverflowError: cannot convert float infinity to integer" in failed.message
    assert good.ok
    assert_valid_bundle(bundle(good.objects))


class NotJson:
    """A typeless plugin whose object JSON cannot carry."""

    @hookimpl
    def vtf_stix_objects(self, observable, report, context):
        return [{"type": "note", "id": "note--1", "x_value": float("nan")}]


def test_an_object_json_cannot_carry_fails_its_observable_not_the_bundle():
    with plugin_app(NotJson(), name="not-json", env={"VTF_EXTERNAL_PLUGINS": "false"}) as app:
        with offline_client(app) as client:
            result = Pipeline(app, client).enrich(from_value(GOOD))
    assert not result.ok
    assert result.message.startswith(f"StixFile {GOOD}: the enrichment produced a value JSON cannot carry")


def test_counts_from_virustotal_are_numbers_only_when_they_are_counts():
    for junk in (-1, float("nan"), float("inf"), 2.5, 10**30, True, "12", None):
        assert blocks.count(junk) is None, junk
    assert (blocks.count(0), blocks.count(83), blocks.count(7.0)) == (0, 83, 7)
    for junk in (-100, 600, float("nan"), float("-inf")):
        assert blocks.valid_score(junk) is None, junk
    attrs = {"last_analysis_stats": {"malicious": float("nan"), "harmless": 80, "undetected": 3}}
    assert (blocks.has_stats(attrs), blocks.vt_score(attrs), blocks.detection_summary(attrs)) == (False, None, {})
    attrs = {"gti_assessment": {"threat_score": {"value": 600}},
             "last_analysis_stats": {"malicious": 10, "harmless": 30, "undetected": 60}}
    assert blocks.vt_score(attrs) == 10  # the impossible GTI score is ignored, the statistics are used
