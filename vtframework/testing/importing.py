"""Running import plugins (``vtf_import``) in a test: the real run, an in-memory OpenCTI.

Example (a third-party import plugin's test)::

    from vtframework.testing import MemoryOpenCTI, import_offline

    def test_my_import(app, client, sqlite_state):
        platform = MemoryOpenCTI()
        outcome = import_offline(app, client, sqlite_state, platform)
        assert not outcome.failed, outcome.message
        assert platform.objects_of("incident")

Keep one :class:`MemoryOpenCTI` across calls to run a connector several
times: it keeps the connector state between runs, as OpenCTI does.
"""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from typing import Any, Iterable

from vtframework.errors import ImportInterrupted
from vtframework.host.app import App
from vtframework.pipeline.download import Sample
from vtframework.pipeline.importing import RunOutcome, run_imports


class MemoryArtifacts:
    """Artifacts held in memory by SHA-256 (what OpenCTI's ``artifactImport`` would keep)."""

    def __init__(self) -> None:
        self.held: dict[str, dict[str, Any]] = {}

    def find(self, hashes: dict[str, str]) -> dict[str, Any] | None:
        wanted = {str(value).lower() for value in hashes.values()}
        for sha256, artifact in self.held.items():
            if wanted & {sha256, *artifact["hashes"].values()}:
                return artifact
        return None

    def upload(self, sample: Sample, *, name: str, description: str, author_id: str | None,
               markings: Iterable[str]) -> dict[str, Any]:
        data = sample.path.read_bytes()
        sha512 = hashlib.sha512(data).hexdigest()
        artifact = {
            "standard_id": f"artifact--{uuid.uuid5(uuid.NAMESPACE_URL, sample.sha256)}",
            # As the platform shows an Artifact: by its SHA-512.
            "observable_value": sha512, "name": name, "description": description, "author": author_id,
            "markings": list(markings), "size": sample.size, "mime_type": sample.mime_type,
            "hashes": {"MD5": sample.md5, "SHA-1": sample.sha1, "SHA-256": sample.sha256, "SHA-512": sha512},
            "data": data,
        }
        self.held[sample.sha256] = artifact
        return artifact


class MemoryOpenCTI:
    """An in-memory stand-in for OpenCTI's side of an import run: bundles, connector state, Artifacts.

    :param state: the connector state to start from (what OpenCTI would hand
        back at registration).
    """

    opencti = None

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        self.state: dict[str, Any] = copy.deepcopy(state or {})
        self.artifacts = MemoryArtifacts()
        self.bundles: list[dict[str, Any]] = []
        #: Every connector state saved, in order.
        self.saved: list[dict[str, Any]] = []
        self.stop = False
        self._reset = False

    # -- the sink a run writes to ------------------------------------------------------------
    def load_state(self) -> dict[str, Any]:
        self._reset = False
        return copy.deepcopy(self.state)

    def save_state(self, state: dict[str, Any]) -> None:
        if self._reset:
            self._reset = False
            raise ImportInterrupted("the connector state was reset in OpenCTI: this run stops here")
        self.state = json.loads(json.dumps(state))
        self.saved.append(copy.deepcopy(self.state))

    def send_bundle(self, bundle: dict[str, Any]) -> None:
        self.bundles.append(json.loads(json.dumps(bundle)))

    def stopping(self) -> bool:
        return self.stop

    # -- what a test reads -------------------------------------------------------------------
    def reset_state(self) -> None:
        """What "reset the state" in OpenCTI's UI does to a connector: a run in progress stops at its next
        save, the next run starts from nothing."""
        self.state = {}
        self._reset = True

    @property
    def objects(self) -> list[dict[str, Any]]:
        """Every object sent, de-duplicated by id (the last version wins)."""
        by_id: dict[str, dict[str, Any]] = {}
        for bundle in self.bundles:
            for obj in bundle["objects"]:
                by_id[obj["id"]] = obj
        return list(by_id.values())

    def objects_of(self, stix_type: str) -> list[dict[str, Any]]:
        return [obj for obj in self.objects if obj.get("type") == stix_type]

    def sent_ids(self) -> list[str]:
        """The ids of every object sent, once per sending (a repeat shows twice)."""
        return [obj["id"] for bundle in self.bundles for obj in bundle["objects"]]


def import_offline(app: App, client: Any, state: Any, platform: MemoryOpenCTI | None = None) -> RunOutcome:
    """One run of every loaded ``vtf_import`` plugin against ``platform`` (a new one when omitted)."""
    return run_imports(app, client, state, platform if platform is not None else MemoryOpenCTI())
