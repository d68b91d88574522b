"""Typed records that plugins and the core exchange through the hooks.

Hooks return these records (or lists of them); the core never hands a plugin a
mutable global to poke at. Every record is frozen so a plugin cannot change what
another plugin sees.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

#: Value types a configuration key may declare.
CONFIG_TYPES = ("str", "int", "float", "bool", "list", "tlp", "url", "path")


@dataclass(frozen=True)
class ConfigKey:
    """One configuration key, declared once by the plugin (or core part) that owns it.

    ``path`` is the dotted ``config.yml`` path (``virustotal.file_import_yara``);
    the environment variable is derived from it (``VIRUSTOTAL_FILE_IMPORT_YARA``)
    unless ``env`` is given.
    """

    path: str
    type: str
    default: Any
    description: str
    secret: bool = False
    required: bool = False
    env: str | None = None
    #: Allowed values (compared case-insensitively for strings; each item's for lists), if restricted.
    choices: tuple[str, ...] | None = None
    #: Smallest accepted value for ``int`` and ``float`` keys.
    minimum: float | None = None
    #: A switch (``bool``) that turns on extra VirusTotal requests. Off by default
    #: because it spends quota; ``enrich --replay`` turns it on (replay costs none).
    costs_requests: bool = False

    def __post_init__(self) -> None:
        if self.type not in CONFIG_TYPES:
            close = difflib.get_close_matches(str(self.type), CONFIG_TYPES, n=1)
            suggestion = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(
                f"config key {self.path}: unknown type {self.type!r}; {suggestion}"
                f"the types are {', '.join(CONFIG_TYPES)}"
            )
        if "." not in self.path:
            raise ValueError(f"config key {self.path}: path must be namespace.key")

    @property
    def namespace(self) -> str:
        return self.path.split(".", 1)[0]

    @property
    def env_name(self) -> str:
        return self.env or self.path.replace(".", "_").upper()


@dataclass(frozen=True)
class VTQuery:
    """The VirusTotal request a plugin needs for one observable.

    The core makes it through its client (quota, cache, retries); the plugin
    never opens an HTTP connection itself.
    """

    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    #: What the user reads in messages: ``file 4bc00f7d…``, ``URL http://…``.
    subject: str = ""


@dataclass(frozen=True)
class Observable:
    """What is being enriched, independent of where it came from.

    ``entity_type`` uses OpenCTI's names (``StixFile``, ``IPv4-Addr``, ``Hostname``…).
    ``stix`` is the STIX 2.1 object the enrichment updates and sends back;
    ``markings`` are the marking-definition ids every created object inherits.
    """

    entity_type: str
    value: str
    stix: Mapping[str, Any]
    hashes: Mapping[str, str] = field(default_factory=dict)
    markings: tuple[str, ...] = ()
    #: The most restrictive TLP of the observable (``TLP:CLEAR`` … ``TLP:RED``).
    tlp: str = "TLP:CLEAR"
    #: Files attached to the observable in OpenCTI (Artifacts): name, size, id.
    files: tuple[Mapping[str, Any], ...] = ()
    #: True when the enrichment targets an Indicator naming this observable.
    via_indicator: Mapping[str, Any] | None = None
    #: What the source says about its markings (OpenCTI's ``objectMarking`` entries, STIX
    #: marking-definitions): the egress policy reads a marking's name here when it is not a known id.
    marking_details: tuple[Mapping[str, Any], ...] = ()

    @property
    def id(self) -> str:
        return str(self.stix.get("id", ""))


@dataclass(frozen=True)
class ScoreReason:
    """One thing that argues for or against an observable's score, for the analyst who reads it.

    ``source`` says who says it (``GTI``, ``Community votes``, your plugin's
    name), ``text`` what it says in one line, ``points_to`` which way it leans:
    ``malicious``, ``benign`` or ``neutral``.
    """

    source: str
    text: str
    points_to: str = "neutral"

    def __post_init__(self) -> None:
        if self.points_to not in SCORE_LEANINGS:
            raise ValueError(f"score reason {self.source!r}: points_to must be one of {', '.join(SCORE_LEANINGS)}")


#: Which way a :class:`ScoreReason` may lean.
SCORE_LEANINGS = ("malicious", "benign", "neutral")


@dataclass(frozen=True)
class PluginInfo:
    """How ``vtframework plugins`` describes one plugin."""

    name: str
    origin: str
    version: str
    status: str
    hooks: tuple[str, ...] = ()


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that failed to load, or raised in a hook, as a result reports it.

    ``hook`` is the hook that raised (``vtf_stix_objects``…), or ``None`` when
    the plugin failed to load (import error, bad declaration, bad default) and
    so took no part at all.
    """

    plugin: str
    hook: str | None
    message: str

    def __str__(self) -> str:
        where = f"failed in {self.hook}" if self.hook else "failed to load"
        return f"plugin {self.plugin!r} {where}: {self.message}"


@dataclass(frozen=True)
class CliCommand:
    """A sub-command a plugin adds to ``vtframework``.

    ``configure(parser)`` adds the arguments; ``run(args, context)`` returns the
    exit code.
    """

    name: str
    help: str
    configure: Callable[[Any], None]
    run: Callable[[Any, Any], int]


@dataclass(frozen=True)
class StreamEvent:
    """One OpenCTI live-stream event, parsed.

    ``type`` is ``create``, ``update``, ``delete`` or ``merge``; ``data`` the
    STIX object (with OpenCTI's extensions); ``context`` the event's extra
    data (``patch``/``reverse_patch`` on updates); ``id`` the stream position.
    """

    type: str
    id: str
    data: Mapping[str, Any]
    context: Mapping[str, Any] = field(default_factory=dict)
    message: str = ""
