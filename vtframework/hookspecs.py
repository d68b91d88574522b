"""Hook specifications: everything a vtframework plugin can contribute.

A plugin is a module (or object) with functions marked ``@vtframework.hookimpl``
whose names match the specs below. Every hook is optional; a plugin implements
what it needs and may take only the arguments it uses (pluggy passes the ones
its signature names).

The core calls each plugin's implementation inside its own error boundary: a
plugin that raises is reported with its name and the other plugins' results
still ship (``VTF_STRICT_PLUGINS=1`` turns that into a fatal error).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    from vtframework.host.config import Settings
    from vtframework.records import CliCommand, ConfigKey, Observable, VTQuery

PROJECT = "vtframework"

_hookspec = pluggy.HookspecMarker(PROJECT)


@_hookspec
def vtf_config_keys() -> Iterable["ConfigKey"]:
    """Declare the configuration keys this plugin owns.

    Each key is declared exactly once in the whole process, with its type,
    default, description and whether it is secret. The core validates every
    key at start (one line per invalid value, naming the key and its
    environment variable) and then freezes the settings.

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
def vtf_report_not_found(
    observable: "Observable", context: Any, settings: "Settings"
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
    observable: "Observable", report: "dict[str, Any]", context: Any, settings: "Settings"
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

    :param observable: The observable being enriched.
    :param report: VirusTotal's answer (``{"data": {...}}``).
    :param context: The :class:`~vtframework.context.EnrichmentContext`:
        ``factory``, ``client``, ``settings``, ``observable`` (mutable STIX dict
        of the observable to update in place), ``log``.
    :param settings: The validated, frozen settings.
    :return: STIX objects (stix2 objects or dicts) to add to the bundle.

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
        ``size``, ``mime_type``, ``name``, ``existing`` (True when OpenCTI
        already held it and nothing was downloaded).
    :param context: ``factory`` (the core's STIX factory, stamped with the
        observable's markings), ``settings``, ``log``.
    :param settings: The validated, frozen settings.
    :return: STIX objects to send (a ``related-to`` relationship, typically).

    .. versionadded:: 0.1
    """


@_hookspec
def vtf_stream_event(event: Any, context: Any, settings: "Settings") -> "str | None":
    """Handle one OpenCTI live-stream event (stream features such as livehunt).

    Called on every plugin that implements it, for each ``create``,
    ``update``, ``delete`` or ``merge`` event. A plugin ignores events it does
    not care about by returning ``None`` quickly. Handlers must be idempotent:
    after a restart the platform may deliver an event again.

    :param event: The parsed :class:`~vtframework.records.StreamEvent`:
        ``.type`` (create/update/delete/merge), ``.data`` (the STIX object),
        ``.id`` (stream position), ``.context`` (``patch`` on updates,
        ``sources`` on merges).
    :param context: The stream context: ``client`` (VirusTotal), ``state``
        (the shared key-value state), ``log``.
    :param settings: The validated, frozen settings.
    :return: A short description of what was done, or ``None``.

    .. versionadded:: 0.1
    """


@_hookspec
def vtf_cli_commands() -> "Iterable[CliCommand]":
    """Add sub-commands to the ``vtframework`` command line.

    :return: :class:`~vtframework.records.CliCommand` records; a name that
        clashes with a core command or another plugin's is a load error.

    .. versionadded:: 0.1
    """
