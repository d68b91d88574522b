"""Every hook is specified with a contract and documented for plugin authors."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from vtframework import hookspecs

DOCS = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"
HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("vtf_")]


def test_there_are_hooks():
    assert {"vtf_config_keys", "vtf_vt_query", "vtf_stix_objects", "vtf_stream_event"} <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented(hook):
    spec = getattr(hookspecs, hook)
    args = ", ".join(inspect.signature(spec).parameters)
    assert f"`{hook}({args})`" in DOCS.read_text(encoding="utf-8"), f"docs/plugins.md lacks {hook}({args})"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_docstring_states_its_contract(hook):
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    assert ":return:" in doc
    for parameter in inspect.signature(getattr(hookspecs, hook)).parameters:
        assert re.search(rf":param {parameter}:", doc), f"{hook} does not document {parameter}"
