"""The downloader: samples by hash, streamed to disk, verified, capped — against the fake VirusTotal."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest

from vtframework import ClientConfig, EgressRefused, Observable, VTClient, build_app, fetch_sample, from_value
from vtframework.errors import DigestMismatch, DownloadTooLarge, ForbiddenError, InputError, NotFoundError

# A real PE header is enough for the MIME sniffer; the rest is filler.
SAMPLE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(range(256)) * 64
SHA256 = hashlib.sha256(SAMPLE).hexdigest()
MD5 = hashlib.md5(SAMPLE).hexdigest()


@pytest.fixture
def app():
    return build_app("virustotal-downloader", env={"VIRUSTOTAL_DOWNLOADER_API_KEY": "test-key"}, config_file=None)


@pytest.fixture
def downloads(tmp_path):
    """Where samples go: nothing else lives there, so a leftover would show."""
    directory = tmp_path / "downloads"
    directory.mkdir()
    return directory


@pytest.fixture
def client(fake_vt, sqlite_state):
    config = ClientConfig(api_key="test-key", base_url=fake_vt.base_url, detect_quota=False,
                          requests_per_minute=1000, max_retries=0)
    with VTClient(config, sqlite_state) as vt:
        yield vt


def test_download_follows_the_redirect_and_verifies(app, client, fake_vt, downloads):
    fake_vt.add_download(SHA256, SAMPLE)
    sample = fetch_sample(app, client, from_value(SHA256, "StixFile"), max_size=1 << 20, directory=downloads)
    assert sample.path.read_bytes() == SAMPLE
    assert (sample.sha256, sample.md5, sample.size) == (SHA256, MD5, len(SAMPLE))
    assert sample.mime_type == "application/x-msdownload"
    storage = [r for r in fake_vt.requests if r.path.startswith("/_storage/")]
    assert storage and "x-apikey" not in storage[0].headers  # the key never goes to the signed URL


def test_sha256_is_preferred_over_other_hashes(app, client, fake_vt, downloads):
    fake_vt.add_download(SHA256, SAMPLE)
    observable = Observable("StixFile", "whatever.exe", {"type": "file", "id": "file--1"},
                            hashes={"MD5": MD5, "SHA-512": "ab" * 64, "SHA-256": SHA256})
    fetch_sample(app, client, observable, max_size=1 << 20, directory=downloads)
    assert [r.path for r in fake_vt.requests][0] == f"/api/v3/files/{SHA256}/download"


def test_md5_only_is_verified_by_md5(app, client, fake_vt, downloads):
    fake_vt.add_download(MD5, SAMPLE)
    sample = fetch_sample(app, client, from_value(MD5, "StixFile"), max_size=1 << 20, directory=downloads)
    assert sample.sha256 == SHA256


def test_not_found(app, client, downloads):
    with pytest.raises(NotFoundError) as caught:
        fetch_sample(app, client, from_value("1" * 64, "StixFile"), max_size=1 << 20, directory=downloads)
    assert "1" * 64 in str(caught.value)
    assert list(downloads.iterdir()) == []


def test_forbidden_says_the_key_needs_the_download_privilege(app, client, fake_vt, downloads):
    fake_vt.add_route("GET", f"/files/{SHA256}/download", 403,
                      {"error": {"code": "ForbiddenError", "message": "You are not authorized to perform the requested operation"}})
    with pytest.raises(ForbiddenError) as caught:
        fetch_sample(app, client, from_value(SHA256, "StixFile"), max_size=1 << 20, directory=downloads)
    assert "download (premium)" in str(caught.value)


def test_digest_mismatch_is_refused_and_nothing_is_kept(app, client, fake_vt, downloads):
    fake_vt.add_download(SHA256, SAMPLE + b"tampered")
    with pytest.raises(DigestMismatch, match="not the one asked for"):
        fetch_sample(app, client, from_value(SHA256, "StixFile"), max_size=1 << 20, directory=downloads)
    assert list(downloads.iterdir()) == []


def test_size_cap(app, client, fake_vt, downloads):
    fake_vt.add_download(SHA256, SAMPLE)
    with pytest.raises(DownloadTooLarge):
        fetch_sample(app, client, from_value(SHA256, "StixFile"), max_size=1000, directory=downloads)
    assert list(downloads.iterdir()) == []


def test_tlp_red_sends_nothing(app, client, fake_vt, downloads):
    fake_vt.add_download(SHA256, SAMPLE)
    with pytest.raises(EgressRefused):
        fetch_sample(app, client, from_value(SHA256, "StixFile", tlp="TLP:RED"), max_size=1 << 20, directory=downloads)
    assert fake_vt.requests == []


def test_file_without_hash_is_refused(app, client, downloads):
    observable = Observable("StixFile", "invoice.pdf", {"type": "file", "id": "file--1", "name": "invoice.pdf"})
    with pytest.raises(InputError, match="no SHA-256, SHA-1 or MD5 hash"):
        fetch_sample(app, client, observable, max_size=1 << 20, directory=downloads)


def test_download_command_saves_verified_samples_named_by_sha256(fake_vt, tmp_path):
    fake_vt.add_download(SHA256, SAMPLE)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "VIRUSTOTAL_DOWNLOADER_API_KEY": "test-key",
           "VIRUSTOTAL_BASE_URL": fake_vt.base_url, "VIRUSTOTAL_DETECT_QUOTA": "false",
           "VTF_STATE_DIR": str(tmp_path / "state")}
    done = subprocess.run([sys.executable, "-m", "vtframework", "download", SHA256, "2" * 64, "--dir", "samples"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1  # one of the two failed
    assert (tmp_path / "samples" / SHA256).read_bytes() == SAMPLE
    assert f"{SHA256}: saved" in done.stderr
    assert f"{'2' * 64}: failed: " in done.stderr and "not found" in done.stderr.lower()
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [SHA256]
