"""What a plugin's hooks are handed: the enrichment, stream and import contexts, and the result.

These are part of the plugin contract, like :mod:`vtframework.hookspecs`,
:mod:`vtframework.records` and :mod:`vtframework.errors`; plugins may annotate
with them (``from vtframework import EnrichmentContext``).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from vtframework.records import Observable

if TYPE_CHECKING:  # pragma: no cover
    from vtframework.stix.factory import StixFactory

#: OpenCTI's extension for SCO attributes (score, labels, external references…).
STIX_EXT_OCTI_SCO = "extension-definition--f93e2c80-4231-4f9a-af8b-95c9bd566a82"
#: OpenCTI's extension for SDO attributes (an Indicator's score…).
STIX_EXT_OCTI = "extension-definition--ea279b3e-5c71-4632-ac08-831c66a786ba"


@dataclass
class EnrichmentContext:
    """What a plugin's hooks get to do their part of one enrichment.

    ``target`` is the STIX dict that receives score, labels and external
    references: the observable itself, or the Indicator when the enrichment
    came through one (``via_indicator``).
    """

    observable: Observable
    target: dict[str, Any]
    factory: "StixFactory"
    client: Any
    settings: Any
    log: logging.Logger
    via_indicator: bool = False
    #: What the summary table shows: malicious, total, score.
    summary: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

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


@dataclass
class EnrichmentResult:
    observable: Observable
    ok: bool
    message: str
    #: The created objects plus the updated observable (or indicator).
    objects: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    requests: int = 0
    cache_hits: int = 0
    warnings: list[str] = field(default_factory=list)


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

    client: Any
    state: Any
    settings: Any
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
