"""A file's STIX id once its enrichment is known, and every reference to it moved along.

A file typed on the command line starts with the one hash the user gave and
an id derived from it; VirusTotal then adds MD5, SHA-1, SHA-256 and a name.
STIX derives a file's id from its hashes (one, MD5 first), name, extensions
and parent directory, so the id the bundle carries must be derived from the
final object. Relationships and notes derive their ids from what they point
at, so they follow. In OpenCTI the platform owns the observable's id and this
is never used.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import stix2

from vtframework.context import STIX_EXT_OCTI_SCO
from vtframework.stix.factory import note_id
from vtframework.stix.opencti_ids import relationship_id

#: The properties STIX derives a file's id from (OpenCTI's property extension is state, not identity).
_FILE_ID_PROPERTIES = ("hashes", "name", "extensions", "parent_directory_ref")


def file_id(file: Mapping[str, Any]) -> str:
    """The STIX deterministic id of a ``file`` object from the properties it carries."""
    properties = {key: file[key] for key in _FILE_ID_PROPERTIES if file.get(key)}
    extensions = {k: v for k, v in (properties.pop("extensions", None) or {}).items() if k != STIX_EXT_OCTI_SCO}
    if extensions:
        properties["extensions"] = extensions
    return str(stix2.File(**properties, allow_custom=True).id)


def _derived_id(obj: Mapping[str, Any]) -> str | None:
    """The id an object's own references give it, for the kinds whose id is derived from them."""
    if obj.get("type") == "relationship":
        return relationship_id(
            obj["relationship_type"], obj["source_ref"], obj["target_ref"], obj.get("start_time"), obj.get("stop_time")
        )
    if obj.get("type") == "note":
        return note_id(obj.get("content", ""), obj.get("abstract"), obj.get("object_refs") or [])
    return None


def _moved(value: Any, moves: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return moves.get(value, value)
    if isinstance(value, list):
        return [_moved(item, moves) for item in value]
    return value


def settle_file_id(objects: Iterable[Mapping[str, Any]], current_id: str) -> list[dict[str, Any]]:
    """``objects`` with the file ``current_id`` re-identified from its final properties.

    Every ``*_ref``/``*_refs`` pointing at a moved object is rewritten, and a
    relationship or note whose id was derived from its references gets the
    id its new references give it (and so on, for what points at those).
    """
    result = [dict(obj) for obj in objects]
    file = next((obj for obj in result if obj.get("id") == current_id and obj.get("type") == "file"), None)
    if file is None:
        return result
    moves = {current_id: file_id(file)}
    if moves[current_id] == current_id:
        return result
    # Each pass moves at least one id or stops; an object moves at most once.
    for _ in range(len(result) + 1):
        moved_now = False
        for obj in result:
            before = _derived_id(obj)
            for key, value in list(obj.items()):
                if key.endswith(("_ref", "_refs")):
                    obj[key] = _moved(value, moves)
            if obj["id"] in moves:
                obj["id"] = moves[obj["id"]]
            elif before is not None and before == obj["id"]:
                after = _derived_id(obj)
                if after != before:
                    moves[before] = obj["id"] = after
                    moved_now = True
        if not moved_now:
            break
    return result
