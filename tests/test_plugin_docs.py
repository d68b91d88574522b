"""docs/plugins.md describes everything a hook receives, exactly as the code has it.

A hook, a context attribute, a factory method, a client argument or a result
field that the code has and the reference lacks (or the reverse) fails here.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import pytest

import vtframework
from vtframework import hookspecs
from vtframework.pipeline.enrich import GuardedClient

DOCS = (Path(__file__).resolve().parent.parent / "docs" / "plugins.md").read_text(encoding="utf-8")
HOOKS = {name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("vtf_")}

#: Client methods the core keeps for itself (lifecycle and accounting); every other public one is documented.
CLIENT_INTERNALS = {"start", "start_lazily", "detect_tier", "close", "track"}


def section(title: str) -> str:
    """The text under ``### title`` up to the next heading."""
    match = re.search(rf"^### {re.escape(title)}\n(.*?)(?=^#)", DOCS + "\n#", re.S | re.M)
    assert match, f"docs/plugins.md has no section '### {title}'"
    return match.group(1)


def rows(title: str) -> dict[str, str]:
    """First cell of each table row of a section: name -> the whole cell (``warn(message)``)."""
    cells = re.findall(r"^\| `([^`]+)` \|", section(title), re.M)
    return {cell.split("(", 1)[0]: cell for cell in cells}


def public_members(cls: type, instance: object | None = None) -> set[str]:
    """Fields, properties and methods a plugin can use (``_private`` ones and inherited ``object`` ones aside)."""
    names = {f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")} if dataclasses.is_dataclass(cls) else set()
    names |= {name for name in vars(cls) if not name.startswith("_") and (
        isinstance(vars(cls)[name], property) or inspect.isfunction(vars(cls)[name]))}
    if instance is not None:
        names |= {name for name in vars(instance) if not name.startswith("_")}
    return names


def argument_names(cell: str) -> set[str]:
    """The argument names of a documented call: ``get(path, params=None, *, subject="")`` -> path, params, subject."""
    inside = cell.split("(", 1)[1].rsplit(")", 1)[0] if "(" in cell else ""
    pieces, depth, current = [], 0, ""
    for char in inside:  # split on the commas outside brackets: defaults hold tuples
        depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            pieces.append(current)
            current = ""
        else:
            current += char
    pieces.append(current)
    names = (piece.strip().lstrip("*").split("=", 1)[0].strip() for piece in pieces)
    return {name for name in names if name}


def assert_signatures_documented(documented: dict[str, str], cls: type) -> None:
    for name, cell in documented.items():
        member = getattr(cls, name, None)
        if inspect.isfunction(member):
            documented_args = argument_names(cell)
            real = [p for p in inspect.signature(member).parameters if p != "self"]
            missing = [p for p in real if p not in documented_args]
            assert not missing, f"docs/plugins.md: {cls.__name__}.{name} does not document {missing}"
            assert documented_args <= set(real), f"docs/plugins.md: {cls.__name__}.{name} documents {documented_args - set(real)}"


def test_every_hook_has_a_section_and_every_hook_section_is_a_hook():
    headings = set(re.findall(r"^### `(vtf_\w+)\(", DOCS, re.M))
    assert headings == HOOKS


HANDED = [
    vtframework.Observable, vtframework.EnrichmentContext, vtframework.EnrichmentResult, vtframework.PluginFailure,
    vtframework.VTQuery, vtframework.ConfigKey, vtframework.StreamContext, vtframework.StreamEvent,
    vtframework.CliCommand, vtframework.StixFactory,
]


@pytest.mark.parametrize("cls", HANDED, ids=lambda cls: cls.__name__)
def test_every_attribute_and_method_is_documented(cls):
    title = f"`{cls.__name__}`"
    documented = rows(title)
    expected = public_members(cls, cls() if cls is vtframework.StixFactory else None)
    assert set(documented) == expected, (
        f"docs/plugins.md {title}: undocumented {sorted(expected - set(documented))}, "
        f"documented but gone {sorted(set(documented) - expected)}"
    )
    assert_signatures_documented(documented, cls)
    assert getattr(vtframework, cls.__name__) is cls, f"export {cls.__name__} from vtframework"


def test_the_client_methods_and_their_arguments_are_documented():
    documented = rows("The client")
    expected = {name for name in public_members(vtframework.VTClient) if name not in CLIENT_INTERNALS}
    expected -= {name for name in vars(vtframework.VTClient) if isinstance(vars(vtframework.VTClient)[name], property)}
    expected.add("check_upload")
    assert set(documented) == expected
    assert_signatures_documented({k: v for k, v in documented.items() if k != "check_upload"}, vtframework.VTClient)
    assert_signatures_documented({"check_upload": documented["check_upload"]}, GuardedClient)
    cell = documented["get"]
    for argument in ("params", "subject", "cache"):
        assert argument in section("The client").split(cell, 1)[1].split("\n", 1)[0], f"explain get's {argument}"


def test_settings_are_documented():
    settings = vtframework.Settings({}, None, {})
    assert set(rows("`Settings`")) == public_members(vtframework.Settings, settings) | {"[path]"}
    assert_signatures_documented(rows("`Settings`"), vtframework.Settings)


def test_every_config_key_type_is_documented_and_no_other():
    assert list(rows("Config key types")) == list(vtframework.CONFIG_TYPES)


def test_the_reference_would_catch_a_new_context_attribute():
    """The check bites: an attribute added to the context without a line in the docs fails it."""
    @dataclasses.dataclass
    class Grown(vtframework.EnrichmentContext):
        sigma_rules: list = dataclasses.field(default_factory=list)

    assert "sigma_rules" in public_members(Grown) - set(rows("`EnrichmentContext`"))
