"""Threat entities from the factory carry the ids OpenCTI derives, so they upsert onto what it holds."""

from __future__ import annotations

import datetime as dt

from pycti import Campaign, Identity, IntrusionSet, Malware, Report

from vtframework import StixFactory
from vtframework.testing import assert_valid_bundle

AMBER = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"
FILE_ID = "file--5cb8a3a6-0250-5f57-b633-9b83f3d0b6a3"
UTC = dt.timezone.utc


def test_ids_are_pyctis_whatever_the_case_of_the_name():
    factory = StixFactory(markings=[AMBER])
    assert factory.intrusion_set("APT 41").id == factory.intrusion_set("apt 41").id == IntrusionSet.generate_id("APT 41")
    assert factory.campaign("Example Campaign").id == Campaign.generate_id("example campaign")
    assert factory.malware("ExampleLoader").id == Malware.generate_id("ExampleLoader")
    assert factory.sector("Governments").id == Identity.generate_id("Governments", "class")
    published = dt.datetime(2024, 5, 4, tzinfo=UTC)
    report = factory.report("A Report", published, [FILE_ID, FILE_ID])
    assert report.id == Report.generate_id("A Report", published)
    assert report.object_refs == [FILE_ID] and report.report_types == ["threat-report"]


def test_sightings_and_references_are_kept_and_a_last_sighting_before_the_first_is_dropped():
    factory = StixFactory(markings=[AMBER], confidence=60)
    reference = {"source_name": "Google Threat Intelligence", "url": "https://www.virustotal.com/gui/collection/x"}
    first, later = dt.datetime(2023, 4, 1, tzinfo=UTC), dt.datetime(2024, 6, 1, tzinfo=UTC)
    actor = factory.intrusion_set("Example Actor", description="espionage", first_seen=first, last_seen=later,
                                  external_references=[reference])
    assert (actor.first_seen, actor.last_seen, actor.description) == (first, later, "espionage")
    assert actor.external_references[0].url == reference["url"]
    # A shared reference entity: our author, but neither the observable's markings nor a confidence.
    assert actor.created_by_ref == factory.author_id
    assert "object_marking_refs" not in actor and "confidence" not in actor
    backwards = factory.campaign("Backwards", first_seen=later, last_seen=first)
    assert backwards.first_seen == later and "last_seen" not in backwards
    family = factory.malware("ExampleLoader", first_seen=first)
    assert family.is_family is True and family.first_seen == first
    assert_valid_bundle([actor, backwards, family, factory.sector("Governments"),
                         factory.report("R", later, [actor.id])])
