"""The bundle `enrich` streams into its output is the one json.dumps(indent=2) writes whole."""

from __future__ import annotations

import json
import os

import pytest

from vtframework.cli.enrich import BundleWriter

OBJECTS = [
    {"type": "identity", "id": "identity--1", "name": "VirusTotal", "nested": {"a": [1, 2, {"b": "x\ny"}]}},
    {"type": "note", "id": "note--2", "content": "caf\u00e9 \"quoted\"\n| table |", "object_refs": ["identity--1"]},
    {"type": "identity", "id": "identity--1", "name": "a later copy of the same id"},
    {"type": "ipv4-addr", "id": "ipv4-addr--3", "value": "10.0.0.1", "empty": [], "none": None, "flag": True},
]


def _written(tmp_path, batches):
    target = tmp_path / "bundle.json"
    writer = BundleWriter(str(target))
    for batch in batches:
        writer.add(batch)
    writer.finish()
    writer.discard()
    return target.read_text(encoding="utf-8")


@pytest.mark.parametrize("batches", [[OBJECTS], [OBJECTS[:1], [], OBJECTS[1:]], [], [[]]])
def test_streamed_bundle_is_byte_identical_to_the_whole_dump(tmp_path, batches):
    text = _written(tmp_path, batches)
    bundle = json.loads(text)
    kept, seen = [], set()
    for obj in (o for batch in batches for o in batch):
        if obj["id"] not in seen:
            seen.add(obj["id"])
            kept.append(obj)
    expected = {"type": "bundle", "id": bundle["id"], "objects": kept}
    assert text == json.dumps(expected, indent=2) + "\n"
    assert bundle["id"].startswith("bundle--")
    # The first object with an id is the one kept.
    assert all(obj["name"] == "VirusTotal" for obj in bundle["objects"] if obj["id"] == "identity--1")
    assert os.listdir(tmp_path) == ["bundle.json"]


def test_a_failed_write_leaves_the_previous_file_and_no_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "bundle.json"
    target.write_text("previous", encoding="utf-8")
    writer = BundleWriter(str(target))
    writer.add(OBJECTS[:1])

    def full(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        writer.finish()
    writer.discard()
    assert target.read_text(encoding="utf-8") == "previous"
    assert os.listdir(tmp_path) == ["bundle.json"]


def test_stdout_gets_the_same_bundle(capsys):
    writer = BundleWriter(None)
    writer.add(OBJECTS)
    writer.finish()
    writer.discard()
    out = capsys.readouterr().out
    assert [obj["id"] for obj in json.loads(out)["objects"]] == ["identity--1", "note--2", "ipv4-addr--3"]


def test_the_summary_past_its_memory_share_is_the_same_table(monkeypatch):
    import vtframework.cli.enrich as enrich
    from vtframework.context import EnrichmentResult
    from vtframework.records import Observable

    results = [
        EnrichmentResult(Observable(entity_type="IPv4-Addr", value=f"10.0.{i // 256}.{i % 256}", stix={}), i % 7 != 0,
                         f"failed {i}\nwith a newline", objects=[{}] * (i % 3), summary={"malicious": i, "total": 90},
                         requests=1, warnings=[f"warning {i}"] if i % 5 == 0 else [])
        for i in range(600)
    ]
    in_memory = enrich.summary_table(results)
    monkeypatch.setattr(enrich, "SUMMARY_IN_MEMORY", 256)
    assert enrich.summary_table(results) == in_memory
    lines = in_memory.splitlines()
    assert lines[0].split() == ["VALUE", "TYPE", "MALICIOUS", "SCORE", "OBJECTS", "VT", "REQUESTS", "CACHE", "HIT",
                                "RESULT"]
    assert len([line for line in lines if line.startswith("failed: ")]) == len([r for r in results if not r.ok])
    assert "warning: 10.0.0.5: warning 5" in lines and "failed: failed 7 with a newline" in lines
