"""What a plugin's hooks are handed: the enrichment, stream and import contexts, and the result.

These are part of the plugin contract, like :mod:`vtframework.hookspecs`,
:mod:`vtframework.records` and :mod:`vtframework.errors`; plugins may annotate
with them (``from vtframework import EnrichmentContext``).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from vtframework.records import Observable, PluginFailure, ScoreReason, VTQuery

if TYPE_CHECKING:  # pragma: no cover
    from vtframework.errors import VTError
    from vtframework.host.config import Settings
    from vtframework.state.base import StateStore
    from vtframework.stix.factory import StixFactory
    from vtframework.vt.client import VTClient

#: OpenCTI's extension for SCO attributes (score, labels, external references…).
STIX_EXT_OCTI_SCO = "extension-definition--f93e2c80-4231-4f9a-af8b-95c9bd566a82"
#: OpenCTI's extension for SDO attributes (an Indicator's score…).
STIX_EXT_OCTI = "extension-definition--ea279b3e-5c71-4632-ac08-831c66a786ba"


@dataclass
class EnrichmentContext:
    """What a plugin's hooks get to do their part of one enrichment.

    ``target`` is the STIX dict that receives score, labels and external
    references: the observable itself, or the Indicator when the enrichment
    came through one (``via_indicator``). ``client`` is the core's
    :class:`~vtframework.vt.client.VTClient` as this enrichment sees it: reads
    pass through, anything that sends data to VirusTotal is refused above the
    upload TLP (``check_upload()`` raises first). docs/plugins.md describes
    every attribute.
    """

    observable: Observable
    target: dict[str, Any]
    factory: "StixFactory"
    client: "VTClient"
    settings: "Settings"
    log: logging.Logger
    via_indicator: bool = False
    #: What the summary table shows: malicious, total, score.
    summary: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: What a plugin keeps for the rest of this enrichment, under a key of its own (an answer its
    #: ``vtf_stix_objects`` fetched that its ``vtf_score_reasons`` needs again, failure included).
    memo: dict[Any, Any] = field(default_factory=dict)
    #: What a plugin keeps for as long as the app runs (every enrichment of this process), under a key of
    #: its own: what it learned about the API key, such as a relationship its licence does not grant.
    process_memo: dict[Any, Any] = field(default_factory=dict)
    #: The lookup as it was made: the owner's query with the parameters plugins added (``vtf_query_params``).
    query: VTQuery | None = None
    #: VirusTotal's refusal (403, 400) of the lookup with the added parameters, when the core then made the
    #: owner's own query instead; ``None`` when the lookup went through as extended.
    query_refused: "VTError | None" = None
    #: Set by the pipeline once the report is in: asks every plugin's ``vtf_score_reasons``.
    _reasons_source: Callable[[], list[ScoreReason]] | None = field(default=None, repr=False)
    _reasons: list[ScoreReason] | None = field(default=None, repr=False)

    @property
    def target_id(self) -> str:
        return str(self.target.get("id", ""))

    @property
    def target_extension(self) -> str:
        return STIX_EXT_OCTI if self.via_indicator else STIX_EXT_OCTI_SCO

    def warn(self, message: str) -> None:
        """Record a problem that costs part of the enrichment but not all of it."""
        self.warnings.append(message)
        self.log.warning("%s: %s", self.observable.value, message)

    def score_reasons(self) -> list[ScoreReason]:
        """What the plugins say argues for or against the score (``vtf_score_reasons``).

        Collected on the first call and kept for the rest of the enrichment;
        empty before the report is in, and while it is being collected (a
        plugin asking from inside its own ``vtf_score_reasons`` gets nothing,
        not a loop).
        """
        if self._reasons is None:
            source = self._reasons_source
            if source is None:
                return []
            self._reasons_source, self._reasons = None, []
            self._reasons = list(source())
        return list(self._reasons)


@dataclass
class EnrichmentResult:
    """The outcome of one enrichment: what the pipeline returns and a test reads.

    ``ok`` is False when the observable could not be enriched (``message``
    says why) and its ``objects`` are then empty. ``warnings`` are parts lost
    to bad data (a ruleset VirusTotal could not give); ``plugin_errors`` are
    plugins that failed to load or raised, whose objects are missing.
    """

    observable: Observable
    ok: bool
    message: str
    #: The created objects plus the updated observable (or indicator).
    objects: list[dict[str, Any]] = field(default_factory=list)
    #: What the summary table shows: ``malicious``, ``total``, ``score`` (each only when known).
    summary: dict[str, Any] = field(default_factory=dict)
    #: VirusTotal requests made (a cache hit is not a request).
    requests: int = 0
    cache_hits: int = 0
    warnings: list[str] = field(default_factory=list)
    plugin_errors: list[PluginFailure] = field(default_factory=list)


def subject_of(observable: Observable) -> str:
    """How messages name an observable: ``StixFile 4bc00f7d…``."""
    value = observable.value if len(observable.value) <= 80 else observable.value[:77] + "…"
    return f"{observable.entity_type} {value}"


@dataclass
class StreamContext:
    """Handed to ``vtf_stream_event`` with every event.

    ``client`` is the VirusTotal client of the preset's key, ``state`` the
    shared state (SQLite or Redis: ``kv_get``/``kv_set``/``kv_delete``/
    ``kv_items``), ``opencti`` pycti's API client when connected to OpenCTI
    (``None`` otherwise), ``log`` a logger.
    """

    client: "VTClient"
    state: "StateStore"
    settings: "Settings"
    log: logging.Logger
    opencti: Any = None


class ImportContext(ABC):
    """Handed to ``vtf_import``: one plugin's part of one run of an external-import connector.

    ``client`` is the VirusTotal client of the preset's key, ``state`` the
    shared key-value state (SQLite or Redis), ``opencti`` pycti's API client
    (``None`` when the run does not talk to OpenCTI, as in tests), ``log`` a
    logger. The core implements it (:mod:`vtframework.pipeline.importing`);
    plugins use it, they never build one.
    """

    plugin: str
    client: Any
    state: Any
    settings: Any
    log: logging.Logger
    opencti: Any = None

    @property
    @abstractmethod
    def checkpoint(self) -> dict[str, Any]:
        """The plugin's progress as last saved (``{}`` on the very first run, or after a reset in OpenCTI)."""

    @property
    @abstractmethod
    def connector_state(self) -> dict[str, Any]:
        """The whole connector state as this run found it (read only): where another connector's keys are read
        when taking over from it."""

    @abstractmethod
    def save_checkpoint(self, value: Mapping[str, Any]) -> None:
        """Persist the plugin's progress now (OpenCTI's connector state).

        :raises vtframework.errors.ImportInterrupted: when the state was reset
            in OpenCTI meanwhile; the run must stop so the reset is honoured.
        """

    @abstractmethod
    def factory(self, markings: Iterable[str] = ()) -> "StixFactory":
        """The core's STIX factory, stamping the VirusTotal author, ``markings`` and deterministic ids."""

    @abstractmethod
    def send(self, objects: Iterable[Any], subject: str) -> int:
        """Send one bundle into the run's work; the author and the markings' definitions are added.

        :param subject: what the objects are about, for messages (``notification 2341…``).
        :return: The number of objects sent.
        """

    @abstractmethod
    def enrich(self, observable: Observable, report: Mapping[str, Any], *, with_owner: bool = False) -> list[dict[str, Any]]:
        """The objects the other plugins build for a VirusTotal object already in hand (no lookup is made).

        ``with_owner=False`` runs the plugins that own no type (malware
        configurations and other features); ``True`` also runs the type's
        owner (the file plugin for a StixFile). The returned objects include
        ``observable.stix`` as they updated it.

        :raises vtframework.errors.VTFrameworkError: when the enrichment failed.
        """

    @abstractmethod
    def store_sample(self, observable: Observable, *, max_size: int, description: str,
                     name: str | None = None) -> list[dict[str, Any]]:
        """The observable's sample as an Artifact, by the downloader's road (TLP gate, size cap, streamed,
        digest verified, not downloaded again when OpenCTI holds it), and the objects that tie it to the
        observable.

        :raises vtframework.errors.VTFrameworkError: the reason nothing was stored.
        """

    @abstractmethod
    def stopping(self) -> bool:
        """True when the connector is shutting down: save progress and return."""

    def warn(self, message: str) -> None:
        """Record a problem that costs part of the run but not all of it (it reaches the work's message)."""
        self.warnings.append(message)
        self.log.warning("%s", message)

    @property
    def warnings(self) -> list[str]:
        if not hasattr(self, "_warnings"):
            self._warnings: list[str] = []
        return self._warnings
