"""A command-line file's id, settled once its enrichment is known."""

from __future__ import annotations

import stix2

from vtframework.stix.factory import StixFactory, to_dict
from vtframework.stix.ids import settle_file_id

SHA256 = "4bc00f7d638e042da764e8648c03c0db46700599dd4f08d117e3e9e8b538519b"
MD5 = "546bb6ef89bebfb053999777f6930d7e"


def test_references_and_derived_ids_follow_the_file():
    factory = StixFactory()
    first = to_dict(stix2.File(hashes={"SHA-256": SHA256}))
    indicator = to_dict(factory.indicator(pattern=f"[file:hashes.MD5 = '{MD5}']", name=MD5))
    based_on = to_dict(factory.relationship("based-on", indicator["id"], first["id"]))
    note = to_dict(factory.note("VirusTotal Report", "47/74", [first["id"]]))
    about_link = to_dict(factory.note("Why", "because", [based_on["id"]]))
    foreign = {"type": "note", "id": "note--00000000-0000-4000-8000-000000000000", "content": "x",
               "object_refs": [first["id"]]}  # not one of ours: its id stays, its refs move
    enriched = {**first, "hashes": {"SHA-256": SHA256, "MD5": MD5}}

    settled = {o["type"] + ":" + o.get("abstract", o.get("content", "")): o
               for o in settle_file_id([enriched, indicator, based_on, note, about_link, foreign], first["id"])}
    file = settled["file:"]
    assert file["id"] == stix2.File(hashes={"MD5": MD5}).id != first["id"]
    link = settled["relationship:"]
    assert link["target_ref"] == file["id"]
    assert link["id"] == to_dict(factory.relationship("based-on", indicator["id"], file["id"]))["id"]
    assert settled["note:VirusTotal Report"]["id"] == to_dict(factory.note("VirusTotal Report", "47/74", [file["id"]]))["id"]
    assert settled["note:Why"]["object_refs"] == [link["id"]]
    assert settled["note:x"]["id"] == foreign["id"] and settled["note:x"]["object_refs"] == [file["id"]]
    assert settled["indicator:"] == indicator


def test_a_file_already_at_its_id_is_left_alone():
    file = to_dict(stix2.File(hashes={"MD5": MD5}))
    assert settle_file_id([file], file["id"]) == [file]
