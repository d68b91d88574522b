"""Hook specifications: everything a vtframework plugin can contribute.

A plugin is a module (or object) with functions marked ``@vtframework.hookimpl``
whose names match the specs below. Every hook is optional; a plugin implements
what it needs and may take only the arguments it uses (pluggy passes the ones
its signature names).

The core calls each plugin's implementation inside its own error boundary: a
plugin that raises is reported with its name (in the enrichment result's
``plugin_errors``) and the other plugins' results still ship
(``VTF_STRICT_PLUGINS=1`` turns that into a fatal error). docs/plugins.md
describes every object a hook is handed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Mapping

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    from vtframework.context import EnrichmentContext, StreamContext
    from vtframework.host.config import Settings
    from vtframework.records import CliCommand, ConfigKey, Observable, ScoreReason, StreamEvent, VTQuery

PROJECT = "vtframework"

_hookspec = pluggy.HookspecMarker(PROJECT)


@_hookspec
def vtf_config_keys() -> Iterable["ConfigKey"]:
    """Declare the configuration keys this plugin owns.

    Each key is declared exactly once in the whole process, with its type
    (``str``, ``int``, ``float``, ``bool``, ``list``, ``tlp``, ``url``,
    ``path``), default, description and whether it is secret. A default that
    does not fit its type fails this plugin at load, by name. The core
    validates every value at start (one line per invalid value, naming the key
    and its environment variable) and then freezes the settings.

    :return: The plugin's :class:`~vtframework.records.ConfigKey` records.

    Example::

        @hookimpl
        def vtf_config_keys():
            return [ConfigKey("hello.greeting", "str", "hi", "What to say.")]

    .. versionadded:: 0.1
    """


@_hookspec
def vtf_observable_types() -> Iterable[str]:
    """Name the OpenCTI entity types this plugin enriches.

    Names are OpenCTI's (``StixFile``, ``Artifact``, ``IPv4-Addr``,
    ``IPv6-Addr``, ``Domain-Name``, ``Hostname``, ``Url``). Exactly one loaded
    plugin may own a type; a second owner is a load error naming both.

    :return: The entity types, or nothing for plugins that only add objects.

    .. versionadded:: 0.1
    """


@_hookspec
def vtf_vt_query(observable: "Observable", settings: "Settings") -> "VTQuery | None":
    """Say which VirusTotal request enriches ``observable``.

    Called only on the plugin that owns ``observable.entity_type``. The core
    makes the request through its client (egress check, quota, cache, retries) and
    hands the answer to :func:`vtf_stix_objects`.

    :param observable: The observable being enriched.
    :param settings: The validated, frozen settings.
    :return: The request to make, or ``None`` when no request is needed.
    :raises vtframework.errors.InputError: when the observable cannot be looked
        up (a StixFile without any usable hash, a malformed value); the
        message names what is wrong.

    .. versionadded:: 0.1
    """


@_hookspec
def vtf_query_params(
    observable: "Observable", query: "VTQuery", context: "EnrichmentContext", settings: "Settings"
) -> "Mapping[str, str] | None":
    """Add parameters to the lookup the owner of the observable's type makes.

    Called on every plugin that owns no type, each inside its own error
    boundary, after the owner's :func:`vtf_vt_query` and before the request
    is made, so that what a feature needs comes back in the same answer
    instead of costing a request of its own (GTI relationships:
    ``relationships=malware_families`` and
    ``relationship_attributes[malware_families]=name,collection_type``).
    The core merges the answers: ``relationships``, ``attributes``,
    ``exclude_attributes`` and ``relationship_attributes[…]`` are
    comma-separated lists whose items are united with the owner's; any other
    parameter the owner (or an earlier plugin) already sets with another value
    is left as it is, with a warning naming the plugin. When VirusTotal refuses
    the extended lookup (403 or 400), the core makes the owner's own query
    instead and tells the plugins through ``context.query_refused``.

    :param observable: The observable being enriched.
    :param query: The owner's :class:`~vtframework.records.VTQuery` (read it).
    :param context: The :class:`~vtframework.context.EnrichmentContext`
        (``process_memo`` holds what the plugin learned in earlier enrichments).
    :param settings: The validated, frozen settings.
    :return: Parameters to add (text values), or ``None``.

    .. versionadded:: 0.1
    """


@_hookspec
def vtf_report_not_found(
    observable: "Observable", context: "EnrichmentContext", settings: "Settings"
) -> "dict[str, Any] | None":
    """Handle an observable VirusTotal has never seen.

    Called only on the owning plugin, after VirusTotal answered 404. A plugin
    may submit the observable (upload an Artifact, submit a URL) through
    ``context.client`` and return the report of the finished analysis.
    ``context.client`` refuses anything that sends data to VirusTotal when the
    observable's markings forbid sharing it (``VIRUSTOTAL_UPLOAD_MAX_TLP``,
    PAP:RED, a marking it cannot place); call ``context.client.check("upload")``
    (or ``check("submission")`` for a URL) first to fail before any work.

    :param observable: The observable VirusTotal does not know.
    :param context: The :class:`~vtframework.context.EnrichmentContext`.
    :param settings: The validated, frozen settings.
    :return: A VirusTotal object envelope (``{"data": {...}}``) to continue
        with, or ``None`` to report the observable as not found.

    .. versionadded:: 0.1
    """


@_hookspec
def vtf_stix_objects(
    observable: "Observable", report: "dict[str, Any]", context: "EnrichmentContext", settings: "Settings"
) -> "Iterable[Any] | None":
    """Build the STIX 2.1 objects for one enriched observable.

    Called on the owner of the observable's type first, which turns the
    report into notes, indicators and relationships, then on every plugin that
    owns no type, which may add objects of its own to every enrichment. A
    plugin that owns types is never called for another plugin's types. Objects must come from
    ``context.factory`` (the core's STIX factory) so that they carry the
    VirusTotal author, the observable's markings and deterministic ids.
    Follow-up VirusTotal requests (a YARA ruleset) go through
    ``context.client``.

    A plugin that raises here loses only its own objects: the enrichment
    still succeeds and its result names the plugin in ``plugin_errors``
    (``vtframework enrich --strict`` fails the observable instead).

    :param observable: The observable being enriched (frozen; read it).
    :param report: VirusTotal's answer (``{"data": {...}}``).
    :param context: The :class:`~vtframework.context.EnrichmentContext`:
        ``target`` (the mutable STIX dict that receives score, labels and
        external references: the observable, or the Indicator when
        ``via_indicator``), ``target_id``, ``factory``, ``client``,
        ``settings``, ``warn(message)``, ``log``.
    :param settings: The validated, frozen settings.
    :return: STIX objects (stix2 objects or dicts) to add to the bundle.

    .. versionadded:: 0.1
    """


@_hookspec
def vtf_score_reasons(
    observable: "Observable", report: "dict[str, Any]", context: Any, settings: "Settings"
) -> "Iterable[ScoreReason] | None":
    """Say what argues for or against the score of one enriched observable.

    Asked once per enrichment, the first time a plugin calls
    ``context.score_reasons()`` (the built-in ``explain`` plugin does, to
    write the "why this score" note), on every plugin that implements it,
    each inside its own error boundary. Reasons come from what the plugin
    knows beyond the report itself (a verdict fetched from another endpoint,
    the community's votes, an in-house reputation); the report's own
    detections, rules and sandbox verdicts are already explained. A
    follow-up request must go through ``context.client`` (cached, counted).

    :param observable: The observable being enriched.
    :param report: VirusTotal's answer (``{"data": {...}}``).
    :param context: The :class:`~vtframework.context.EnrichmentContext`.
    :param settings: The validated, frozen settings.
    :return: :class:`~vtframework.records.ScoreReason` records, or nothing.

    Example::

        @hookimpl
        def vtf_score_reasons(report):
            if in_house_blocklist(report["data"]["id"]):
                return [ScoreReason("SOC blocklist", "listed since 2024-05-01", "malicious")]

    .. versionadded:: 0.1
    """


@_hookspec(firstresult=True)
def vtf_download_query(observable: "Observable", settings: "Settings") -> "VTQuery | None":
    """Say which VirusTotal download gives the sample of ``observable``.

    The core checks the TLP, skips the download when OpenCTI already holds the
    Artifact, streams the sample to a temporary file through its client (the
    download endpoint answers with a redirect to a signed URL), verifies its
    digest against ``VTQuery.subject``'s hash and refuses it above the size
    cap.

    :param observable: The StixFile whose sample is wanted.
    :param settings: The validated, frozen settings.
    :return: The download request, or ``None`` when this plugin does not
        download samples. Stops at first non-None result.
    :raises vtframework.errors.InputError: when the observable has no hash
        VirusTotal can look up.

    .. versionadded:: 0.1
    """


@_hookspec
def vtf_artifact_objects(
    observable: "Observable", artifact: "dict[str, Any]", context: Any, settings: "Settings"
) -> "Iterable[Any] | None":
    """Build the STIX objects that tie a downloaded sample to its observable.

    :param observable: The StixFile the sample was downloaded for.
    :param artifact: The stored Artifact: ``id`` (its STIX id), ``sha256``,
        ``existing`` (True when OpenCTI already held it and nothing was
        downloaded) and, when it was downloaded, ``size`` and ``mime_type``.
    :param context: ``factory`` (the core's STIX factory, stamped with the
        observable's markings), ``settings``, ``log``.
    :param settings: The validated, frozen settings.
    :return: STIX objects to send (a ``related-to`` relationship, typically).

    .. versionadded:: 0.1
    """


@_hookspec
def vtf_stream_event(event: "StreamEvent", context: "StreamContext", settings: "Settings") -> "str | None":
    """Handle one OpenCTI live-stream event (stream features such as livehunt).

    Called on every plugin that implements it, for each ``create``,
    ``update``, ``delete`` or ``merge`` event. A plugin ignores events it does
    not care about by returning ``None`` quickly. Handlers must be idempotent:
    after a restart the platform may deliver an event again.

    :param event: The parsed :class:`~vtframework.records.StreamEvent`:
        ``.type`` (create/update/delete/merge), ``.data`` (the STIX object),
        ``.id`` (stream position), ``.context`` (``patch`` on updates,
        ``sources`` on merges).
    :param context: The :class:`~vtframework.context.StreamContext`:
        ``client`` (VirusTotal), ``state`` (the shared key-value state),
        ``opencti`` (pycti's API client, or ``None``), ``settings``, ``log``.
    :param settings: The validated, frozen settings.
    :return: A short description of what was done, or ``None``.

    .. versionadded:: 0.1
    """


@_hookspec
def vtf_import(context: Any, settings: "Settings") -> "str | None":
    """Import what is new since the last run (external-import features such as Livehunt notifications).

    Called once per scheduled run of an OpenCTI external-import connector
    (``vtframework run notifications``), on every plugin that implements it,
    each in its own error boundary: one plugin's failure is reported in the
    run's work and the others still run. A run is one OpenCTI work; every
    bundle sent during it belongs to that work.

    Progress is the plugin's to keep, in ``context.checkpoint``: save it with
    ``context.save_checkpoint()`` after each item is sent, so a crash loses
    nothing and repeats at most the item in flight (send objects with
    deterministic ids, so a repeat changes nothing). A run that stops early
    (a per-run limit, ``context.stopping()``, a transient failure) resumes
    from the checkpoint at the next run.

    :param context: The :class:`~vtframework.context.ImportContext` of this
        plugin for this run: ``client`` (VirusTotal), ``state`` (the shared
        key-value state), ``settings``, ``log``, ``opencti`` (pycti's API
        client, ``None`` offline), ``checkpoint`` / ``save_checkpoint()``,
        ``factory()`` (the core's STIX factory), ``send()`` (one bundle into
        the run's work), ``enrich()`` (the other plugins' objects for a
        VirusTotal object in hand), ``store_sample()`` (the downloader's road
        to an Artifact), ``stopping()`` and ``warn()``.
    :param settings: The validated, frozen settings.
    :return: A short account of the run for the work's message (``"3
        notifications imported"``), or ``None`` when there was nothing to do.
    :raises vtframework.errors.VTFrameworkError: when the run cannot go on
        (VirusTotal unreachable, quota spent); what was saved in the
        checkpoint stays done, and the work is reported as failed with the
        message.

    .. versionadded:: 0.2
    """


@_hookspec
def vtf_cli_commands() -> "Iterable[CliCommand]":
    """Add sub-commands to the ``vtframework`` command line.

    :return: :class:`~vtframework.records.CliCommand` records; a name that
        clashes with a core command or another plugin's is a load error.

    .. versionadded:: 0.1
    """
