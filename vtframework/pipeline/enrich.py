"""The enrichment pipeline: observable -> TLP gate -> VirusTotal -> STIX -> bundle.

The core runs the flow and owns its failure modes; plugins only say which
VirusTotal request to make and which STIX objects to build from the answer.
An enrichment either succeeds with a complete set of objects or fails with a
reason: never a half-built bundle, never an empty success.
"""

from __future__ import annotations

import copy
import json
import logging
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from vtframework.context import STIX_EXT_OCTI, EnrichmentContext, EnrichmentResult, subject_of
from vtframework.errors import (
    BadRequestError,
    ForbiddenError,
    InputError,
    MalformedResponse,
    NotFoundError,
    PluginError,
    VTFrameworkError,
    clean_text,
)
from vtframework.host.app import App
from vtframework.pipeline import blocks, extend
from vtframework.policy.markings import TLP_MARKING_BY_ID
from vtframework.records import Observable, PluginFailure, ScoreReason, VTQuery
from vtframework.stix.factory import StixFactory, author_dict, to_dict
from vtframework.vt.egress import BoundClient

#: The client a plugin's hooks receive (``context.client``), by its earlier name.
GuardedClient = BoundClient

log = logging.getLogger("vtframework.pipeline")


class Pipeline:
    """Runs enrichments for one configured :class:`~vtframework.app.App`.

    :param strict: a plugin that failed (to load, or in a hook) fails the
        enrichment instead of costing only its own objects.
    """

    def __init__(
        self, app: App, client: Any, *, factory_kwargs: Mapping[str, Any] | None = None, strict: bool = False
    ) -> None:
        self.app = app
        self.client = client
        self.factory_kwargs = dict(factory_kwargs or {})
        self.strict = strict

    # -- public ---------------------------------------------------------
    def enrich(
        self,
        observable: Observable,
        target: Mapping[str, Any] | None = None,
        *,
        report: Mapping[str, Any] | None = None,
        with_owner: bool = True,
    ) -> EnrichmentResult:
        """Enrich one observable; failures come back as a result, never raised.

        :param target: the Indicator to update instead of the observable (for
            Indicator enrichment).
        :param report: VirusTotal's object for the observable when the caller
            already holds it (an imported Livehunt match): no lookup is made.
        :param with_owner: ``False`` runs only the plugins that own no type
            (features such as malware configurations), not the type's owner.
        """
        usage = self.client.track()
        # A plugin that failed to load takes no part in any enrichment: every result says so.
        plugin_errors = list(self.app.host.failures)
        with usage:
            try:
                context = self._context(observable, target)
                # Everything this thread asks VirusTotal from here on is about this observable.
                with self.client.scope(observable):
                    objects = self._run(context, plugin_errors, report, with_owner)
                # A NaN or an object JSON cannot carry would break the whole bundle, not just this result.
                json.dumps(objects, allow_nan=False)
            except Exception as exc:  # one enrichment's failure, whatever it is, is that enrichment's failure
                # The message says what a VirusTotal or input problem is; only a surprise needs its traceback.
                log.debug("enrichment of %s failed", subject_of(observable),
                          exc_info=not isinstance(exc, VTFrameworkError))
                message = failure_message(observable, exc) + _plugin_errors_note(plugin_errors)
                if isinstance(exc, PluginError):
                    plugin_errors.append(PluginFailure(exc.plugin, exc.hook, exc.reason))
                return EnrichmentResult(
                    observable, False, message,
                    requests=usage.requests, cache_hits=usage.cache_hits, plugin_errors=plugin_errors,
                )
        if self.strict and plugin_errors:
            return EnrichmentResult(
                observable, False,
                f"{subject_of(observable)}: not enriched, plugins must not fail (strict): "
                + "; ".join(str(failure) for failure in plugin_errors),
                requests=usage.requests, cache_hits=usage.cache_hits, warnings=list(context.warnings),
                plugin_errors=plugin_errors,
            )
        summary = dict(context.summary)
        message = f"{subject_of(observable)}: {describe(summary)}"
        if context.warnings:
            message += f" ({len(context.warnings)} warning(s): {'; '.join(context.warnings)})"
        message += _plugin_errors_note(plugin_errors)
        return EnrichmentResult(
            observable,
            True,
            message,
            objects=objects,
            summary=summary,
            requests=usage.requests,
            cache_hits=usage.cache_hits,
            warnings=list(context.warnings),
            plugin_errors=plugin_errors,
        )

    def enrich_indicator(self, indicator: Mapping[str, Any], observables: list[Observable]) -> EnrichmentResult:
        """Enrich every observable an Indicator names; one result, one bundle.

        The Indicator receives the highest VirusTotal score among them, the
        external references and labels; notes and YARA indicators attach to
        it. If any observable fails, the whole enrichment fails with every
        reason (nothing is sent for a half-enriched Indicator).
        """
        label = f"Indicator {clean_text(indicator.get('name') or indicator.get('id'), 120)}"
        try:
            return self._enrich_indicator(label, indicator, observables)
        except Exception as exc:
            log.debug("enrichment of %s failed", label, exc_info=not isinstance(exc, VTFrameworkError))
            return EnrichmentResult(_indicator_placeholder(indicator), False, f"{label}: {_describe_error(exc)}")

    def _enrich_indicator(
        self, label: str, indicator: Mapping[str, Any], observables: list[Observable]
    ) -> EnrichmentResult:
        if not observables:
            return EnrichmentResult(
                _indicator_placeholder(indicator), False,
                f"{label}: its pattern names no observable vtframework enriches "
                "(StixFile hashes, IPv4/IPv6, domain, hostname, URL)",
            )
        target = copy.deepcopy(dict(indicator))
        original_score = blocks.existing_score(target)
        results = []
        for observable in observables:
            result = self.enrich(observable, target=target)
            results.append(result)
            if result.ok:
                target = next(obj for obj in result.objects if obj.get("id") == target.get("id"))
        combined = EnrichmentResult(
            _indicator_placeholder(target), all(r.ok for r in results), "",
            requests=sum(r.requests for r in results), cache_hits=sum(r.cache_hits for r in results),
            warnings=[w for r in results for w in r.warnings],
            plugin_errors=list(dict.fromkeys(f for r in results for f in r.plugin_errors)),
        )
        if not combined.ok:
            combined.message = f"{label}: " + "; ".join(r.message for r in results if not r.ok)
            return combined
        scores = [r.summary["score"] for r in results if r.summary.get("score") is not None]
        if scores:
            best = max(scores)
            if original_score is None or best >= original_score or self.app.settings["virustotal.replace_with_lower_score"]:
                blocks.put_extension(target, STIX_EXT_OCTI, "score", best)
            combined.summary = {"score": best, "observables": len(results)}
        combined.objects = dedupe([*(obj for r in results for obj in r.objects), target])
        combined.message = f"{label}: " + "; ".join(r.message for r in results)
        return combined

    # -- steps ----------------------------------------------------------
    def _context(self, observable: Observable, target: Mapping[str, Any] | None) -> EnrichmentContext:
        factory = StixFactory(markings=observable.markings, **self.factory_kwargs)
        return EnrichmentContext(
            observable=observable,
            target=copy.deepcopy(dict(target if target is not None else observable.stix)),
            factory=factory,
            # Plugins see the client bound to the observable: every request is checked against its markings.
            client=self.client.bound(observable),
            settings=self.app.settings,
            log=log,
            via_indicator=target is not None,
            process_memo=self.app.memo,
        )

    def _run(
        self,
        context: EnrichmentContext,
        plugin_errors: list[PluginFailure],
        report: Mapping[str, Any] | None = None,
        with_owner: bool = True,
    ) -> list[dict[str, Any]]:
        observable = context.observable
        subject = subject_of(observable)
        owner = self.app.host.owner_of(observable.entity_type)
        if owner is None and (with_owner or report is None):
            loaded = ", ".join(sorted(self.app.host.owners)) or "none"
            raise InputError(f"{subject}: no loaded plugin enriches {observable.entity_type} (enriched types: {loaded})")
        if report is None:
            # Refused before the plugin is even asked (the client would refuse the request anyway).
            context.client.check("lookup")
            query = self.app.host.call_plugin(owner, "vtf_vt_query", observable=observable, settings=self.app.settings)
            if not isinstance(query, VTQuery):
                raise PluginError(
                    f"plugin {owner!r} returned no VirusTotal query for {subject}", plugin=owner, hook="vtf_vt_query",
                    reason=f"returned {type(query).__name__}, not a VTQuery, for {subject}",
                )
            subject = query.subject or subject
            extended = self._extend(query, context, plugin_errors)
            context.query = extended
            report = self._lookup(owner, extended, context, plain=query if extended is not query else None)
        if not blocks.attributes(report) and not isinstance((report.get("data") or {}).get("attributes"), dict):
            raise MalformedResponse("the answer has no data.attributes", subject=subject)
        settings = self.app.settings
        context._reasons_source = lambda: self._score_reasons(context, report)
        objects: list[Any] = []
        if with_owner:
            created = self.app.host.call_plugin(
                owner, "vtf_stix_objects", observable=observable, report=report, context=context, settings=settings
            )
            objects = list(created or [])
        extra, failures = self.app.host.call_each(
            "vtf_stix_objects", observable=observable, report=report, context=context, settings=settings,
            # Type plugins hear only about their own types; the owner was called above.
            exclude=set(self.app.host.owners.values()),
        )
        plugin_errors.extend(failure.record() for failure in failures)
        for _plugin, result in extra:
            objects.extend(result)
        created = cap_objects(context, [to_dict(obj) for obj in objects])
        markings = [TLP_MARKING_BY_ID[m] for m in observable.markings if m in TLP_MARKING_BY_ID]
        return dedupe([author_dict(), *markings, context.target, *created])

    def _score_reasons(self, context: EnrichmentContext, report: Mapping[str, Any]) -> list[ScoreReason]:
        """Every plugin's ``vtf_score_reasons``; a plugin that fails costs its reasons, with a warning."""
        answers, failures = self.app.host.call_each(
            "vtf_score_reasons", observable=context.observable, report=report, context=context,
            settings=self.app.settings,
        )
        for failure in failures:
            context.warn(str(failure))
        reasons: list[ScoreReason] = []
        for plugin, answer in answers:
            for reason in _as_list(answer):
                if isinstance(reason, ScoreReason):
                    reasons.append(reason)
                else:
                    context.warn(f"plugin {plugin!r} gave a score reason that is not a ScoreReason: {reason!r:.80}")
        return reasons

    def _extend(self, query: VTQuery, context: EnrichmentContext, plugin_errors: list[PluginFailure]) -> VTQuery:
        """The owner's query with what every typeless plugin's ``vtf_query_params`` adds."""
        answers, failures = self.app.host.call_each(
            "vtf_query_params", observable=context.observable, query=query, context=context,
            settings=self.app.settings, exclude=set(self.app.host.owners.values()),
        )
        plugin_errors.extend(failure.record() for failure in failures)
        extended, problems = extend.merge(query, answers)
        for problem in problems:
            context.warn(problem)
        return extended

    def _lookup(
        self, owner: str, query: VTQuery, context: EnrichmentContext, plain: VTQuery | None = None
    ) -> dict[str, Any]:
        """The report; ``plain`` is the owner's own query, made when VirusTotal refuses what plugins added."""
        subject = query.subject or subject_of(context.observable)
        try:
            return context.client.get(query.path, query.params or None, subject=subject)
        except (ForbiddenError, BadRequestError) as err:
            if plain is None:
                raise
            # The added parameters were refused (a licence, a relationship VirusTotal does not know),
            # not the lookup the owner needs: its own query still enriches, one request later.
            log.info("%s: the extended lookup was refused (%s); making the owner's own query", subject, err)
            context.query, context.query_refused = plain, err
            return self._lookup(owner, plain, context)
        except NotFoundError as err:
            report = self.app.host.call_plugin(
                owner, "vtf_report_not_found", observable=context.observable, context=context,
                settings=self.app.settings,
            )
            if report is None:
                if self.app.host.implements(owner, "vtf_report_not_found"):
                    # Only what its plugin can submit (a file, a URL) is worth submitting.
                    err.hint = NotFoundError.SUBMIT_HINT
                raise
            return report


def cap_objects(context: EnrichmentContext, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """At most ``VIRUSTOTAL_MAX_RELATED_OBJECTS`` created objects, and no relationship left dangling.

    A domain with 50,000 DNS records must not become a bundle of 100,000
    objects: the first ones are kept, the rest is left out with a warning.
    """
    limit = context.settings.get("virustotal.max_related_objects") or 1000
    if len(objects) <= limit:
        return objects
    kept = objects[:limit]
    dropped = {str(obj.get("id")) for obj in objects[limit:]}
    kept = [obj for obj in kept if not (_refs_of(obj) & dropped)]
    context.warn(
        f"{len(objects) - len(kept)} of {len(objects)} related objects left out "
        f"(VIRUSTOTAL_MAX_RELATED_OBJECTS={limit})"
    )
    return kept


#: Properties by which an object points at another (a relationship, a sighting, a note).
_REFS = ("source_ref", "target_ref", "sighting_of_ref", "where_sighted_refs", "object_refs")


def _refs_of(obj: Mapping[str, Any]) -> set[str]:
    found: set[str] = set()
    for name in _REFS:
        value = obj.get(name)
        found.update(str(v) for v in (value if isinstance(value, list) else [value]) if v)
    return found


def failure_message(observable: Observable, exc: BaseException) -> str:
    """What the user reads when the enrichment of ``observable`` failed: it names the observable."""
    text = _describe_error(exc)
    subject = subject_of(observable)
    value = observable.value[:40]
    return text if (value and value in text) or subject in text else f"{subject}: {text}"


def _describe_error(exc: BaseException) -> str:
    if isinstance(exc, VTFrameworkError):
        return clean_text(str(exc), 1000)
    if isinstance(exc, MemoryError):
        return "ran out of memory while enriching it (MemoryError)"
    if isinstance(exc, RecursionError):
        return "the data nests too deeply to be handled (RecursionError)"
    if isinstance(exc, ValueError) and "JSON compliant" in str(exc):
        return f"the enrichment produced a value JSON cannot carry ({clean_text(exc)})"
    return f"unexpected {type(exc).__name__}: {clean_text(exc)}"


def _indicator_placeholder(indicator: Mapping[str, Any]) -> Observable:
    return Observable(entity_type="Indicator", value=str(indicator.get("name") or indicator.get("id")), stix=indicator)


def _plugin_errors_note(plugin_errors: list[PluginFailure]) -> str:
    """`` (1 plugin error(s): …)`` for a result message; empty when there are none."""
    if not plugin_errors:
        return ""
    return f" ({len(plugin_errors)} plugin error(s): {'; '.join(str(f) for f in plugin_errors)})"


def describe(summary: Mapping[str, Any]) -> str:
    if "malicious" in summary:
        text = f"{summary['malicious']}/{summary.get('total', '?')} engines flag it"
    else:
        text = "no detection statistics"
    if summary.get("score") is not None:
        text += f", score {summary['score']}"
    return text


def _as_list(answer: Any) -> list[Any]:
    """A hook's answer as a list: one record alone, or any iterable of them."""
    if isinstance(answer, (str, bytes, Mapping)) or not isinstance(answer, Iterable):
        return [answer]
    return list(answer)


def dedupe(objects: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Keep the last version of each id, in first-seen order."""
    by_id: dict[str, dict[str, Any]] = {}
    for obj in objects:
        by_id[str(obj.get("id"))] = dict(obj)
    return list(by_id.values())


def bundle(objects: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    return {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": dedupe(objects)}
