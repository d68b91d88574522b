"""Parameters that plugins add to the owner's lookup (``vtf_query_params``), merged into one query.

A feature that needs more of an object (GTI relationships and their
attributes) asks for it in the lookup the type's owner makes anyway, so it
comes back in the same answer instead of costing a request of its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from vtframework.records import VTQuery

#: Parameters VirusTotal reads as comma-separated lists: what plugins add is united with what is there.
LIST_PARAMS = ("relationships", "attributes", "exclude_attributes")
_RELATIONSHIP_ATTRIBUTES = re.compile(r"relationship_attributes\[[a-z0-9_]{1,64}\]")
#: A plugin's parameter name and value lengths beyond these are a bug or an attack, not a query.
MAX_NAME, MAX_VALUE = 100, 4000


def is_list_param(name: str) -> bool:
    """True for the parameters whose value is a comma-separated list (``relationships``…)."""
    return name in LIST_PARAMS or bool(_RELATIONSHIP_ATTRIBUTES.fullmatch(name))


def merge(query: VTQuery, answers: Iterable[tuple[str, Any]]) -> tuple[VTQuery, list[str]]:
    """The owner's ``query`` with every plugin's parameters merged in, and one line per thing refused.

    List parameters are united (the owner's items first, then each plugin's
    new ones, in load order); any other parameter keeps the first value given,
    the owner's before any plugin's. The query comes back unchanged (the same
    object) when nothing was added.
    """
    params: dict[str, str] = {str(name): str(value) for name, value in (query.params or {}).items()}
    problems: list[str] = []
    changed = False
    for plugin, answer in answers:
        if not isinstance(answer, Mapping):
            problems.append(f"plugin {plugin!r} gave query parameters that are not a mapping: {answer!r:.80}")
            continue
        for name, value in answer.items():
            refusal = _refusal(name, value)
            if refusal:
                problems.append(f"plugin {plugin!r}: query parameter {str(name)[:MAX_NAME]!r} skipped: {refusal}")
                continue
            if is_list_param(name):
                merged = _union(params.get(name, ""), value)
                if merged != params.get(name):
                    params[name], changed = merged, True
            elif name not in params:
                params[name], changed = value, True
            elif params[name] != value:
                problems.append(
                    f"plugin {plugin!r}: query parameter {name!r} kept as {params[name]!r:.80}, not {value!r:.80}"
                )
    if not changed:
        return query, problems
    return VTQuery(query.path, params, query.subject), problems


def _refusal(name: Any, value: Any) -> str | None:
    if not isinstance(name, str) or not name or len(name) > MAX_NAME:
        return "the name is not a short text"
    if not isinstance(value, str):
        return f"the value is {type(value).__name__}, not text"
    if len(value) > MAX_VALUE:
        return f"the value is {len(value)} characters long (at most {MAX_VALUE})"
    return None


def _union(current: str, added: str) -> str:
    items = [item.strip() for item in f"{current},{added}".split(",")]
    return ",".join(dict.fromkeys(item for item in items if item))
