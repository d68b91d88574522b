"""What GTI relates the enriched object to: the lookup's own blocks, then follow-ups within the budget.

The lookup carries ``relationships=`` (``vtf_query_params``), so normally
every relationship's first page is already in the report and nothing is
asked. Follow-up requests, each counted against
``VIRUSTOTAL_GTI_MAX_REQUESTS``, read only what the lookup could not bring:
a relationship missing from the answer (VirusTotal refused the lookup with
the relationships in it, or the report came from a submission), the next
pages of a relationship with more than its first page (read from the
relationship endpoint, as Google's own integrations do, from its first page
on), and, when asked, the techniques of each collection found.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vtframework import addons
from vtframework.errors import ForbiddenError, VTError

from vtframework_plugins.gti import relations
from vtframework_plugins.gti.relations import COLLECTION_TECHNIQUES, PAGE_MAX, Relation

#: A collection id (``malware--<uuid>``, ``report--21-00006507``, ``malpedia_win_formbook``, 64 hex).
COLLECTION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}")
#: An object id that may go into a request path (a SHA-256, a domain, an IP address).
OBJECT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,252}")
#: An ATT&CK technique id (``T1059``, ``T1059.001``).
TECHNIQUE_ID = re.compile(r"T\d{4}(?:\.\d{3})?", re.I)
#: Collection kinds whose techniques ``VIRUSTOTAL_GTI_COLLECTION_TECHNIQUES`` reads.
WITH_TECHNIQUES = ("malware-family", "threat-actor", "campaign")


@dataclass(frozen=True)
class Item:
    """One related object: its GTI id and the attributes the answer gave (possibly none)."""

    id: str
    attributes: Mapping[str, Any]


@dataclass
class Found:
    """The items of each relationship (by name) and the techniques of each collection (by its id)."""

    items: dict[str, list[Item]] = field(default_factory=dict)
    techniques: dict[str, list[Item]] = field(default_factory=dict)
    #: The relationship each collection id was found in.
    relation_of: dict[str, Relation] = field(default_factory=dict)


def collect(context: Any, report: Mapping[str, Any]) -> Found:
    """Everything GTI relates the report's object to; asked once per enrichment, whichever hook asks first."""
    key = ("gti", "found")
    if key not in context.memo:
        context.memo[key] = _Collector(context, report).run()
    return context.memo[key]


@dataclass
class _Request:
    relation: Relation
    path: str
    cursor: str | None = None
    #: Where the items go: a relationship name, or the collection id whose techniques these are.
    into: str = ""


class _Collector:
    def __init__(self, context: Any, report: Mapping[str, Any]) -> None:
        self.context = context
        self.report = report
        self.settings = context.settings
        self.found = Found()
        self.licence = relations.licence(context.process_memo)
        self.budget = self.settings["virustotal.gti_max_requests"]
        self.spent = 0
        self.refused: list[Relation] = []
        self.short: list[str] = []
        self.short_said = False

    def run(self) -> Found:
        obj = addons.vt_object(self.report)
        if obj is None:
            return self.found
        collection, ident = obj
        queue: deque[_Request] = deque()
        if not OBJECT_ID.fullmatch(ident):
            # An id no object has must not steer a follow-up request; the lookup's own blocks still count.
            self.context.warn(f"GTI: the answer's object id {addons.clip(ident, 80)!r} cannot be asked about; "
                              "kept what the lookup gave")
            self.budget = self.spent = 0
            self.short_said = True
        data = self.report.get("data")
        blocks = data.get("relationships") if isinstance(data, Mapping) else None
        blocks = blocks if isinstance(blocks, Mapping) else {}
        for relation in relations.configured(collection, self.settings):
            block = blocks.get(relation.name)
            path = f"/{collection}/{ident}/{relation.name}"
            if isinstance(block, Mapping) and "data" in block:
                self._add(relation, relation.name, block.get("data"))
                if _cursor(block):
                    # Read the whole relationship from its endpoint: the embedded page's cursor is not its.
                    queue.append(_Request(relation, path, into=relation.name))
            elif isinstance(block, Mapping) and isinstance(block.get("error"), Mapping):
                self._block_error(relation, block["error"])
            elif self.licence.grants(relation):
                queue.append(_Request(relation, path, into=relation.name))
        self._drain(queue)
        if self.settings["virustotal.gti_collection_techniques"] and self.licence.grants(COLLECTION_TECHNIQUES):
            self._drain(deque(
                _Request(COLLECTION_TECHNIQUES, f"/collections/{item.id}/attack_techniques", into=item.id)
                for name, items in self.found.items.items() if relations.RELATIONS[name].kind in WITH_TECHNIQUES
                for item in items
            ), one_page=True)
        self._report_problems()
        return self.found

    def _drain(self, queue: deque[_Request], one_page: bool = False) -> None:
        """Make the queued requests in turn (a relationship's next page goes to the back) within the budget."""
        while queue:
            request = queue.popleft()
            if not self.licence.grants(request.relation) or request.relation in self.refused:
                continue
            if self.spent >= self.budget:
                self.short.append(request.into if request.relation is not COLLECTION_TECHNIQUES
                                  else f"techniques of {request.into}")
                continue
            self.spent += 1
            params = {"limit": str(min(PAGE_MAX, self.settings["virustotal.gti_page_limit"])),
                      "attributes": ",".join(request.relation.attributes)}
            if request.cursor:
                params["cursor"] = request.cursor
            try:
                answer = self.context.client.get(request.path, params, subject=f"GTI {request.path.lstrip('/')}")
            except ForbiddenError:
                self.refused.append(request.relation)
                continue
            except VTError as exc:
                self.context.warn(f"GTI {request.relation.name} skipped: {exc}")
                continue
            self._add(request.relation, request.into, answer.get("data"))
            following = _cursor(answer)
            if following and not one_page:
                queue.append(_Request(request.relation, request.path, following, request.into))

    def _add(self, relation: Relation, into: str, data: Any) -> None:
        items, skipped, cut = _items(relation, data)
        if skipped:
            self.context.warn(f"GTI {relation.name}: {skipped} item(s) without a usable id skipped")
        if cut:
            self.context.warn(f"GTI {relation.name}: a page of {cut + PAGE_MAX} items, only the first {PAGE_MAX} read")
        target = self.found.techniques if relation is COLLECTION_TECHNIQUES else self.found.items
        known = target.setdefault(into, [])
        ids = {item.id for item in known}
        for item in items:
            if item.id not in ids:
                known.append(item)
                ids.add(item.id)
                if relation is not COLLECTION_TECHNIQUES:
                    self.found.relation_of.setdefault(item.id, relation)

    def _block_error(self, relation: Relation, error: Mapping[str, Any]) -> None:
        if error.get("code") == "ForbiddenError":
            self.refused.append(relation)
        else:
            self.context.warn(
                f"GTI {relation.name} skipped: VirusTotal answered {addons.clip(error.get('code'), 60)}: "
                f"{addons.clip(error.get('message'), 200)}"
            )

    def _report_problems(self) -> None:
        newly = self.licence.refuse(self.refused)
        if newly:
            self.context.warn(relations.refusal_warning(newly))
        if self.short and not self.short_said:
            env = self.settings.entry("virustotal.gti_max_requests").key.env_name
            self.context.warn(
                f"GTI: {len(self.short)} more request(s) needed ({', '.join(dict.fromkeys(self.short))}), over "
                f"{env}={self.budget}; kept what the lookup and the first requests gave"
            )
        refusal = self.context.query_refused
        # Each relationship alone was granted, so the lookup carrying them is what VirusTotal refuses.
        if refusal is not None and not self.refused and not self.short and self.licence.refuse_inline():
            self.context.warn(
                f"VirusTotal refused the lookup carrying the GTI relationships ({addons.clip(refusal, 200)}); "
                "from now on each relationship is read with a request of its own"
            )


def _items(relation: Relation, data: Any) -> tuple[list[Item], int, int]:
    """The usable items of a relationship's ``data``, how many were unusable and how many over a page.

    A to-one relationship with no object is ``null``, one with an object a
    single descriptor.
    """
    if data is None:
        return [], 0, 0
    if isinstance(data, Mapping):
        data = [data]
    if not isinstance(data, list):
        return [], 1, 0
    pattern = TECHNIQUE_ID if relation.kind == "attack-technique" else COLLECTION_ID
    items, skipped = [], 0
    # A page holds at most PAGE_MAX items; more is not an answer to trust.
    for raw in data[:PAGE_MAX]:
        ident = raw.get("id") if isinstance(raw, Mapping) else None
        if not isinstance(ident, str) or not pattern.fullmatch(ident.strip()):
            skipped += 1
            continue
        attrs = raw.get("attributes")
        items.append(Item(ident.strip(), attrs if isinstance(attrs, Mapping) else {}))
    return items, skipped, max(0, len(data) - PAGE_MAX)


def _cursor(answer: Any) -> str | None:
    meta = answer.get("meta") if isinstance(answer, Mapping) else None
    cursor = meta.get("cursor") if isinstance(meta, Mapping) else None
    return cursor if isinstance(cursor, str) and cursor and len(cursor) <= 2000 else None
