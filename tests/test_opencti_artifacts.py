"""What is uploaded so that OpenCTI stores a sample byte for byte, and what it is called."""

from __future__ import annotations

import hashlib
import io
import zipfile

from vtframework.opencti.artifacts import upload_form, upload_name
from vtframework.pipeline.download import sha256_of
from vtframework.pipeline.download import Sample


def sample_at(tmp_path, data, mime="application/octet-stream"):
    path = tmp_path / "sample"
    path.write_bytes(data)
    return Sample(path, len(data), "", "", hashlib.sha256(data).hexdigest(), mime)


def test_a_zip_sample_travels_as_the_only_entry_of_a_zip(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("inner.exe", b"MZ" + b"\0" * 100)
    sample = sample_at(tmp_path, buffer.getvalue(), "application/zip")
    with upload_form(sample, "report.docx") as (path, name, mime):
        assert (name, mime) == ("report.docx.zip", "application/zip")
        with zipfile.ZipFile(path) as wrapper:
            (entry,) = wrapper.infolist()
            assert entry.filename == "report.docx" and wrapper.read(entry) == buffer.getvalue()
    assert not path.exists()  # the wrapper is temporary


def test_other_samples_travel_as_they_are(tmp_path):
    sample = sample_at(tmp_path, b"MZ\x90\x00" + b"\0" * 200, "application/x-msdownload")
    with upload_form(sample, "plain.exe") as (path, name, mime):
        assert (path, name, mime) == (sample.path, "plain.exe", "application/x-msdownload")


def test_upload_names_are_plain_file_names():
    assert upload_name("../../etc/passwd", "fallback") == "passwd"
    assert upload_name("C:\\Users\\x\\dropper.exe", "fallback") == "dropper.exe"
    assert upload_name('a"b\nc.exe', "fallback") == "abc.exe"
    for empty in ("", "  ", "..", "dir/"):
        assert upload_name(empty, "fallback") == "fallback"


def test_the_sha256_comes_from_the_hashes_never_from_the_displayed_value():
    artifact = {"observable_value": "ab" * 64, "hashes": [{"algorithm": "SHA-512", "hash": "ab" * 64},
                                                       {"algorithm": "SHA-256", "hash": "CD" * 32}]}
    assert sha256_of(artifact) == "cd" * 32
    assert sha256_of({"observable_value": "ab" * 64}) is None
