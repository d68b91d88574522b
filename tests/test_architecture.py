"""The import rules of docs/architecture.md, checked on the source.

Every ``import`` counts, at module level or inside a function, except those under
``if TYPE_CHECKING:`` (annotations only, never executed).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "vtframework"
PLUGINS = ROOT / "plugins"

#: Package (or contract module) -> rank. A module may import its own package and lower ranks only.
RANKS = {
    "errors": 0, "records": 0, "hookspecs": 0, "context": 0,
    "policy": 1, "state": 1,
    "vt": 2, "stix": 2,
    "host": 3,
    "pipeline": 4,
    "opencti": 5,
    "testing": 6,
    "cli": 7, "__main__": 8,
}
CONTRACT = {name for name, rank in RANKS.items() if rank == 0}
#: What a plugin may import from the core: the public API and the errors (and the testing kit, in tests).
PLUGIN_ALLOWED = {"vtframework", "vtframework.errors"}
#: ``vtframework.cli`` is the console script's entry point (``main``).
PLUGIN_TEST_ALLOWED = PLUGIN_ALLOWED | {"vtframework.testing", "vtframework.cli"}


def _module_name(path: Path, base: Path, package: str) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path, module: str) -> set[str]:
    """Absolute names of the modules ``path`` imports (a name imported from a package counts as that package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    is_package = path.name == "__init__.py"

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = module.split(".")
                    base = base[: len(base) - child.level + (1 if is_package else 0)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                found.add(target)
                # ``from vtframework.pipeline import blocks`` imports the sub-module too.
                for alias in child.names:
                    found.add(f"{target}.{alias.name}")
            visit(child)

    visit(tree)
    return found


def _core_modules() -> dict[str, Path]:
    return {_module_name(path, CORE, "vtframework"): path for path in CORE.rglob("*.py")}


CORE_MODULES = _core_modules()


def _resolve(name: str) -> str | None:
    """The core module an imported name refers to (the longest known prefix), or None."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in CORE_MODULES:
            return candidate
        parts.pop()
    return None


def _part(module: str) -> str | None:
    """The top-level part of the core a module belongs to (``vtframework.vt.client`` -> ``vt``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def core_edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for module, path in CORE_MODULES.items():
        targets = {_resolve(name) for name in imports_of(path, module) if name.startswith("vtframework")}
        edges[module] = {t for t in targets if t and t != module}
    return edges


def test_every_core_module_belongs_to_a_declared_part():
    undeclared = sorted({_part(m) for m in CORE_MODULES if _part(m) and _part(m) not in RANKS})
    assert undeclared == [], f"add these to RANKS and to docs/architecture.md: {undeclared}"


def test_no_part_imports_a_higher_or_sibling_part():
    violations = []
    for module, targets in core_edges().items():
        part = _part(module)
        if part is None:  # vtframework/__init__.py: checked below
            continue
        for target in targets:
            other = _part(target)
            if other is None or other == part:
                continue
            if RANKS[other] >= RANKS[part] and not (part in CONTRACT and other in CONTRACT):
                violations.append(f"{module} imports {target} ({other} is not below {part})")
    assert violations == [], "\n".join(sorted(violations))


def test_no_import_cycles():
    edges = core_edges()
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt == "vtframework":  # the public API, imported lazily by name
                continue
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif state.get(nxt) is None:
                walk(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if state.get(node) is None:
            walk(node)
    assert cycles == [], "\n".join(cycles)


def test_the_package_root_imports_only_the_contract_eagerly():
    eager = {t for t in core_edges()["vtframework"]}
    assert {_part(t) for t in eager} <= CONTRACT, eager


def test_importing_vtframework_loads_only_the_contract():
    code = (
        "import sys, vtframework; "
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('vtframework.'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert {m.split(".")[1] for m in loaded} <= CONTRACT, loaded


def test_the_public_api_resolves():
    import vtframework

    for name in vtframework.__all__:
        assert getattr(vtframework, name) is not None, name


def test_the_core_never_imports_a_plugin():
    offenders = [
        module for module, path in CORE_MODULES.items()
        if any(name.startswith("vtframework_plugins") for name in imports_of(path, module))
    ]
    assert offenders == []


@pytest.mark.parametrize("path", sorted(PLUGINS.rglob("*.py")), ids=lambda p: str(p.relative_to(PLUGINS)))
def test_plugins_use_only_the_public_api(path):
    module = _module_name(path, PLUGINS, "vtframework_plugins")
    allowed = PLUGIN_TEST_ALLOWED if "tests" in path.parts or path.name == "conftest.py" else PLUGIN_ALLOWED
    used = {name for name in imports_of(path, module) if name.split(".")[0] == "vtframework"}
    # ``from vtframework import X`` records vtframework.X too; public names are fine.
    import vtframework

    private = sorted(
        name for name in used
        if name not in allowed
        and not (name.startswith("vtframework.") and name.split(".", 1)[1] in vtframework.__all__)
        and not any(name.startswith(ok + ".") and ok != "vtframework" for ok in allowed)
    )
    assert private == [], f"{path.relative_to(ROOT)} reaches past the public API: {private}"


def test_plugins_do_not_import_each_other():
    offenders = []
    for path in PLUGINS.rglob("*.py"):
        plugin = path.relative_to(PLUGINS).parts[0]
        if plugin.endswith(".py"):
            continue
        module = _module_name(path, PLUGINS, "vtframework_plugins")
        for name in imports_of(path, module):
            parts = name.split(".")
            if parts[0] == "vtframework_plugins" and len(parts) > 1 and parts[1] != plugin:
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offenders == []
