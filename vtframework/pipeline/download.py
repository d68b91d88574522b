"""Downloading samples: streamed to disk, digest verified, size capped, TLP checked.

A sample never sits in memory: the client streams it chunk by chunk into a
temporary file while three digests are computed on the way; the file is kept
only when the digest VirusTotal was asked for matches.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterable, Protocol

from vtframework.errors import DigestMismatch, PluginError
from vtframework.host.app import App
from vtframework.records import Observable, VTQuery
from vtframework.stix.factory import AUTHOR_ID, StixFactory, to_dict
from vtframework.stix.observables import lookup_hash

log = logging.getLogger("vtframework.download")

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


class ArtifactStore(Protocol):
    """Where samples are kept as Artifacts (OpenCTI, or a test's memory)."""

    def find(self, hashes: dict[str, str]) -> dict[str, Any] | None:
        """An Artifact already held with one of these hashes (``standard_id``, ``hashes``), or None."""

    def upload(self, sample: Sample, *, name: str, description: str, author_id: str | None,
               markings: Iterable[str]) -> dict[str, Any]:
        """Store the sample as an Artifact; its ``standard_id``."""


def sha256_of(artifact: dict[str, Any]) -> str | None:
    """An Artifact's SHA-256 from its hashes (never its displayed value, which is a SHA-512)."""
    hashes = artifact.get("hashes") or []
    if isinstance(hashes, dict):
        hashes = [{"algorithm": k, "hash": v} for k, v in hashes.items()]
    return next((str(h.get("hash")).lower() for h in hashes
                 if isinstance(h, dict) and h.get("algorithm") == "SHA-256" and h.get("hash")), None)



@dataclass
class StoredSample:
    """A sample held as an Artifact, and the objects that tie it to its observable."""

    artifact: dict[str, Any]
    message: str
    objects: list[dict[str, Any]] = field(default_factory=list)


def store_sample(
    app: App,
    client: Any,
    store: ArtifactStore,
    observable: Observable,
    *,
    max_size: int,
    description: str,
    name: str | None = None,
    factory: StixFactory | None = None,
) -> StoredSample:
    """The downloader's road for one observable: already held, or downloaded (TLP gate, size cap,
    streamed, digest verified) and uploaded; then each plugin's ``vtf_artifact_objects``.

    :raises VTFrameworkError: the reason nothing was stored (TLP, not found, too large, digest).
    """
    _name, value = lookup_hash(observable, "have its sample downloaded")
    existing = store.find(dict(observable.hashes))
    if existing is not None:
        # Its SHA-256 from its hashes: an Artifact's displayed value is a SHA-512.
        artifact = {"id": existing["standard_id"], "existing": True, "sha256": sha256_of(existing)}
        message = (f"{observable.entity_type} {value}: OpenCTI already holds its sample "
                   f"(Artifact {existing['standard_id']}); not downloaded again")
    else:
        sample = fetch_sample(app, client, observable, max_size=max_size)
        try:
            stored = store.upload(sample, name=name or sample.sha256, description=description,
                                  author_id=AUTHOR_ID, markings=observable.markings)
        finally:
            sample.discard()
        artifact = {"id": stored["standard_id"], "existing": False, "sha256": sample.sha256,
                    "size": sample.size, "mime_type": sample.mime_type}
        message = (f"{observable.entity_type} {value}: sample downloaded ({sample.size} bytes, {sample.mime_type}), "
                   f"Artifact {stored['standard_id']}")
    context = _ArtifactContext(factory or StixFactory(markings=observable.markings), app.settings, log)
    created, failures = app.host.call_each(
        "vtf_artifact_objects", observable=observable, artifact=artifact, context=context, settings=app.settings
    )
    if failures:
        raise failures[0].as_error()
    objects = [to_dict(obj) for _plugin, result in created for obj in result]
    return StoredSample(artifact, message, objects)


class _ArtifactContext:
    """What ``vtf_artifact_objects`` is handed: ``factory``, ``settings``, ``log``."""

    def __init__(self, factory: Any, settings: Any, logger: logging.Logger) -> None:
        self.factory, self.settings, self.log = factory, settings, logger
