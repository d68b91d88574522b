"""Downloading samples: streamed to disk, digest verified, size capped, TLP checked.

A sample never sits in memory: the client streams it chunk by chunk into a
temporary file while three digests are computed on the way; the file is kept
only when the digest VirusTotal was asked for matches.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from vtframework.errors import DigestMismatch, PluginError
from vtframework.host.app import App
from vtframework.records import Observable, VTQuery
from vtframework.stix.observables import lookup_hash

#: How many bytes the MIME sniffer reads from the start of a sample.
SNIFF_BYTES = 8192


@dataclass
class Sample:
    """A downloaded, verified sample in a temporary file (the caller deletes it)."""

    path: Path
    size: int
    md5: str
    sha1: str
    sha256: str
    mime_type: str

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


class _HashingWriter:
    """A binary file that computes MD5, SHA-1 and SHA-256 of what is written."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.digests = {"MD5": hashlib.md5(), "SHA-1": hashlib.sha1(), "SHA-256": hashlib.sha256()}
        self.size = 0
        self.head = b""

    def write(self, chunk: bytes) -> int:
        for digest in self.digests.values():
            digest.update(chunk)
        if len(self.head) < SNIFF_BYTES:
            self.head += chunk[: SNIFF_BYTES - len(self.head)]
        self.size += len(chunk)
        return self.handle.write(chunk)

    def hexdigest(self, name: str) -> str:
        return self.digests[name].hexdigest()


def sniff_mime(head: bytes) -> str:
    """The MIME type of a sample from its first bytes (``application/octet-stream`` when unknown)."""
    import filetype

    kind = filetype.guess(head)
    return kind.mime if kind is not None else "application/octet-stream"


def download_query(app: App, observable: Observable) -> VTQuery:
    """Ask the loaded plugins which download gives this observable's sample."""
    results, failures = app.host.call_each("vtf_download_query", observable=observable, settings=app.settings)
    if results:
        return results[0][1]
    if failures:
        raise failures[0].as_error()
    raise PluginError("no loaded plugin downloads samples (enable the downloader plugin)", plugin="downloader")


def fetch_sample(
    app: App, client: Any, observable: Observable, *, max_size: int, directory: str | Path | None = None
) -> Sample:
    """Download, verify and keep one sample; raise with a clear reason otherwise.

    :param max_size: the size cap in bytes; a larger sample is refused before
        it is written past the cap.
    :param directory: where the temporary file goes (default: the system's).
    """
    name, value = lookup_hash(observable, "have its sample downloaded")
    subject = f"{observable.entity_type} {value}"
    # The client checks the download against every marking of the observable; refused before any work.
    bound = client.bound(observable)
    bound.check("download")
    query = download_query(app, observable)
    handle = tempfile.NamedTemporaryFile(prefix="vtf-sample-", dir=directory, delete=False)
    path = Path(handle.name)
    try:
        with handle:
            writer = _HashingWriter(handle)
            bound.download(query.path, writer, subject=query.subject or subject, max_bytes=max_size)
        got = writer.hexdigest(name)
        if got != value.lower():
            raise DigestMismatch(
                f"{subject}: the downloaded sample has {name} {got}, not the one asked for; it was discarded"
            )
        return Sample(path, writer.size, writer.hexdigest("MD5"), writer.hexdigest("SHA-1"),
                      writer.hexdigest("SHA-256"), sniff_mime(writer.head))
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def save_sample(sample: Sample, directory: str | Path) -> Path:
    """Move a verified sample into ``directory``, named by its SHA-256."""
    target = Path(directory) / sample.sha256
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(sample.path, target)
    sample.path = target
    return target

