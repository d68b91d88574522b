"""The downloader connector end to end: real pycti helper and RabbitMQ, fake OpenCTI and VirusTotal."""

from __future__ import annotations

import hashlib
import io
import uuid
import zipfile

import pytest

from vtframework import AUTHOR_ID, TLP_MARKINGS
from vtframework.testing import RECORDINGS_DIR, FakeVirusTotal
from vtframework.testing.connector import Connector, marking, running
from vtframework.testing.fakeopencti import iter_objects

pytestmark = pytest.mark.services

SAMPLE = b"MZ\x90\x00" + b"\x00" * 60 + b"vtframework downloader test sample" * 100
SHA256 = hashlib.sha256(SAMPLE).hexdigest()
AMBER = TLP_MARKINGS["TLP:AMBER"]["id"]


@pytest.fixture(scope="module")
def vt():
    with FakeVirusTotal(str(RECORDINGS_DIR)) as fake:
        fake.add_download(SHA256, SAMPLE)
        yield fake


@pytest.fixture(scope="module")
def connector(opencti, vt, tmp_path_factory):
    yield from running(Connector("downloader", opencti, vt.base_url, tmp_path_factory.mktemp("downloader")))


def stix_file(opencti, sha256, tlp="TLP:AMBER"):
    standard_id = f"file--{uuid.uuid4()}"
    hashes = {"SHA-256": sha256, "SHA-512": "ab" * 64}
    entity = opencti.add_entity({
        "standard_id": standard_id, "entity_type": "StixFile", "observable_value": "ab" * 64, "name": "dropper.exe",
        "objectMarking": [marking(tlp)], "hashes": [{"algorithm": k, "hash": v} for k, v in hashes.items()],
    })
    stix_entity = {"type": "file", "spec_version": "2.1", "id": standard_id, "hashes": hashes,
                   "name": "dropper.exe", "object_marking_refs": [TLP_MARKINGS[tlp]["id"]]}
    return entity, stix_entity


def enrich(opencti, connector, entity, stix_entity):
    message = opencti.enrichment_message(entity, stix_entity)
    opencti.publish(connector.id, message)
    return opencti.wait_processed(message["internal"]["work_id"]).variables


def test_sample_becomes_a_linked_artifact_then_is_not_downloaded_again(opencti, connector, vt):
    entity, stix_entity = stix_file(opencti, SHA256)
    done = enrich(opencti, connector, entity, stix_entity)
    assert done["inError"] is False, done["message"]
    assert f"StixFile {SHA256}: sample downloaded ({len(SAMPLE)} bytes" in done["message"]
    artifact = opencti.artifacts[SHA256]
    assert artifact["data"] == SAMPLE
    assert (artifact["name"], artifact["createdBy"]["standard_id"]) == ("dropper.exe", AUTHOR_ID)
    assert [m["standard_id"] for m in artifact["objectMarking"]] == [AMBER]
    assert artifact["x_opencti_description"] == f"Downloaded from VirusTotal using hash {SHA256}"
    objects = iter_objects(opencti.pushed_bundles(connector.id, expect=2))
    (link,) = [o for o in objects if o["type"] == "relationship"]
    assert (link["relationship_type"], link["source_ref"], link["target_ref"]) == (
        "related-to", stix_entity["id"], artifact["standard_id"])
    assert link["object_marking_refs"] == [AMBER]
    downloads = vt.count(f"/api/v3/files/{SHA256}/download")

    again_entity, again_stix = stix_file(opencti, SHA256)
    again = enrich(opencti, connector, again_entity, again_stix)
    assert again["inError"] is False, again["message"]
    assert "already holds its sample" in again["message"]
    assert vt.count(f"/api/v3/files/{SHA256}/download") == downloads


def zip_of(*entries):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return buffer.getvalue()


# CONSTRUCTED samples of the kinds OpenCTI's artifactImport would unpack: each one's first entry is a
# type the platform recognises, so without care it would store that entry instead of the sample.
ZIP_SAMPLE = zip_of(("invoice.exe", SAMPLE), ("readme.txt", b"open the invoice"))
JAR_SAMPLE = zip_of(("Loader.class", b"\xca\xfe\xba\xbe\x00\x00\x00\x34" + b"\x00" * 64),
                    ("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\nMain-Class: Loader\n"))
DOCX_SAMPLE = zip_of(("[Content_Types].xml", b'<?xml version="1.0" encoding="UTF-8"?><Types/>'),
                     ("word/document.xml", b'<?xml version="1.0"?><w:document/>'))
PE_SAMPLE = b"MZ\x90\x00" + b"\x00" * 60 + b"PE\x00\x00" + b"a plain executable" * 50


@pytest.mark.parametrize("name,sample", [
    ("invoice.zip", ZIP_SAMPLE), ("loader.jar", JAR_SAMPLE), ("report.docx", DOCX_SAMPLE), ("plain.exe", PE_SAMPLE),
], ids=["zip", "jar", "docx", "pe"])
def test_opencti_stores_the_sample_byte_for_byte(opencti, connector, vt, name, sample):
    sha256 = hashlib.sha256(sample).hexdigest()
    vt.add_download(sha256, sample)
    entity, stix_entity = stix_file(opencti, sha256)
    entity["name"] = stix_entity["name"] = name
    done = enrich(opencti, connector, entity, stix_entity)
    assert done["inError"] is False, done["message"]
    assert sha256 in opencti.artifacts, f"OpenCTI stored other bytes: {sorted(opencti.artifacts)}"
    stored = opencti.artifacts[sha256]
    assert stored["data"] == sample and stored["name"] == name
    # What the platform found by its hashes next time is this very Artifact.
    again_entity, again_stix = stix_file(opencti, sha256)
    again = enrich(opencti, connector, again_entity, again_stix)
    assert "already holds its sample" in again["message"] and stored["standard_id"] in again["message"]


def test_unknown_sample_is_failed_work(opencti, connector):
    entity, stix_entity = stix_file(opencti, "3" * 64)
    done = enrich(opencti, connector, entity, stix_entity)
    assert done["inError"] is True
    assert "3" * 64 in done["message"] and "not found" in done["message"].lower()


def test_tlp_red_sample_is_not_requested(opencti, connector, vt):
    secret = "4" * 64
    entity, stix_entity = stix_file(opencti, secret, tlp="TLP:RED")
    done = enrich(opencti, connector, entity, stix_entity)
    assert done["inError"] is True and "TLP:RED" in done["message"]
    assert vt.count(f"/api/v3/files/{secret}") == 0


def test_other_types_are_refused_clearly(opencti, connector):
    entity = opencti.add_entity({"standard_id": f"ipv4-addr--{uuid.uuid4()}", "entity_type": "IPv4-Addr",
                                 "observable_value": "1.1.1.1"})
    done = enrich(opencti, connector, entity, {"type": "ipv4-addr", "id": entity["standard_id"], "value": "1.1.1.1"})
    assert done["inError"] is True
    assert "StixFile" in done["message"] and "IPv4-Addr" in done["message"]
