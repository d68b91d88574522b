"""``vtframework plugin new NAME [--type T]``: an installable plugin skeleton with a passing test.

From nothing to a green test in two commands::

    vtframework plugin new mine
    python -m pytest vtframework-mine

The skeleton is a package (``vtframework_mine``) declared under the
``vtframework`` entry point, one hook, and one test that enriches a real
VirusTotal answer vtframework ships, offline, through the ``vtf_enrich``
fixture. With ``--type`` the plugin owns an observable type (and replaces the
built-in that owns it); without, it adds a note to every enrichment.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any, Callable

from vtframework.cli.common import EXIT_OK, UsageError

#: Real answers shipped with vtframework (the ``--replay`` recordings).
RECORDINGS = Path(__file__).resolve().parent.parent / "replay"

_NAME = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")


@dataclass(frozen=True)
class _Kind:
    """How a type plugin looks its type up, and the recorded answer its test enriches."""

    imports: str
    path: str
    value: str
    recording: str


_DOMAIN = _Kind("", 'f"/domains/{observable.value}"', "tawuhoju.com", "domain_malicious_tawuhoju.com.json")
#: The types ``--type`` accepts: those a value can name and a recorded answer ships for
#: (an Artifact comes only from OpenCTI; there is no IPv6 recording).
KINDS: dict[str, _Kind] = {
    "StixFile": _Kind(", lookup_hash", 'f"/files/{lookup_hash(observable)[1]}"',
                      "4bc00f7d638e042da764e8648c03c0db46700599dd4f08d117e3e9e8b538519b", "file_malicious_4bc00f7d.json"),
    "IPv4-Addr": _Kind("", 'f"/ip_addresses/{observable.value}"', "138.128.150.133", "ip_address_138.128.150.133.json"),
    "Domain-Name": _DOMAIN,
    "Hostname": _DOMAIN,
    "Url": _Kind(", url_id", 'f"/urls/{url_id(observable.value)}"', "http://soclosebutyetqq.com/69.exe",
                 "url_malicious_7d83e9f6.json"),
}

PYPROJECT = Template('''\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "$dist"
version = "0.1.0"
description = "$description"
requires-python = ">=3.11"
dependencies = ["vtframework"]

[project.optional-dependencies]
test = ["vtframework[test]"]

# How vtframework finds the plugin once it is installed (`vtframework plugins` lists it).
[project.entry-points.vtframework]
$name = "$module"

[tool.setuptools]
packages = ["$module"]

[tool.pytest.ini_options]
# The tests import the plugin from this folder, installed or not.
pythonpath = ["."]
testpaths = ["tests"]
''')

README = Template('''\
# $dist

$description

```bash
python -m pytest                 # the tests, offline (vtframework's fixtures: vtf_enrich, vtf_fake_vt, vtf_app)
pip install -e .                 # then `vtframework plugins` lists "$name"
```

What each hook receives (the enrichment context, the STIX factory, the
VirusTotal client, the result) is described in vtframework's `docs/plugins.md`.
''')

FEATURE_PLUGIN = Template('''\
"""$dist: adds a note of VirusTotal's tags to every enrichment.

vtframework's docs/plugins.md describes every hook and what it receives.
"""

from vtframework import EnrichmentContext, Observable, blocks, hookimpl


@hookimpl
def vtf_stix_objects(observable: Observable, report: dict, context: EnrichmentContext) -> list:
    tags = blocks.attributes(report).get("tags")
    if not isinstance(tags, list) or not tags:
        return []
    content = blocks.table(("VirusTotal tag",), [(tag,) for tag in tags])
    abstract = f"$dist ({observable.entity_type}: {observable.value})"
    return [context.factory.note(abstract, content, [context.target_id])]
''')

FEATURE_TEST = Template('''\
"""$module adds its note to an enrichment (a real recorded VirusTotal answer, offline)."""

import $module
from vtframework.testing import assert_valid_bundle, notes_by_abstract

WORD_DOC = "001015aafcae8a6942366cbb0e7d39c0738752a7800c41ea1c655d47b0a4d04c"  # shipped with vtframework


def test_${test_name}_notes_the_tags(vtf_enrich):
    result = vtf_enrich(WORD_DOC, plugin=$module)
    assert result.ok and not result.plugin_errors, result.message
    note = notes_by_abstract(result)[f"$dist (StixFile: {WORD_DOC})"]
    assert "| macros |" in note["content"]
    assert_valid_bundle(result)
''')

TYPE_PLUGIN = Template('''\
"""$dist: enriches $entity_type observables from VirusTotal.

vtframework's docs/plugins.md describes every hook and what it receives.
"""

from vtframework import EnrichmentContext, Observable, VTQuery, blocks, hookimpl$imports


@hookimpl
def vtf_observable_types():
    return ["$entity_type"]


@hookimpl
def vtf_vt_query(observable: Observable) -> VTQuery:
    return VTQuery(path=$path, subject=f"$entity_type {observable.value}")


@hookimpl
def vtf_stix_objects(observable: Observable, report: dict, context: EnrichmentContext) -> list:
    attributes = blocks.attributes(report)
    if blocks.has_stats(attributes):
        counts = blocks.stats(attributes)
        context.summary.update(malicious=counts["malicious"], total=sum(counts.values()))
    blocks.add_external_reference(context, report, "VirusTotal Report")
    return blocks.apply_score(context, blocks.vt_score(attributes)) + blocks.results_note(context, attributes)
''')

TYPE_TEST = Template('''\
"""$module enriches $entity_type (a real recorded VirusTotal answer, offline)."""

import $module
from vtframework.testing import assert_valid_bundle, notes_by_abstract

VALUE = "$value"  # shipped with vtframework


def test_${test_name}_scores_and_notes(vtf_enrich):
    result = vtf_enrich(VALUE, entity_type="$entity_type", plugin=$module)
    assert result.ok and not result.plugin_errors, result.message
    assert (result.summary["malicious"], result.summary["score"]) == ($malicious, $score)
    assert f"VirusTotal Results ($entity_type: {VALUE})" in notes_by_abstract(result)
    assert_valid_bundle(result)
''')


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="plugin_action", metavar="ACTION", parser_class=type(parser))
    actions.required = True
    new = actions.add_parser(
        "new", help="write an installable plugin skeleton with a passing test",
        description="Write vtframework-NAME/: a package declared under the vtframework entry point, one hook "
        "and one test on a recorded VirusTotal answer. `python -m pytest vtframework-NAME` runs it.",
    )
    new.add_argument("name", metavar="NAME", help="the plugin's name: lower case, digits, - or _ (e.g. passive-dns)")
    new.add_argument(
        "--type", dest="entity_type", metavar="T", choices=sorted(KINDS),
        help="make a type plugin that enriches T (replacing the built-in that does): " + ", ".join(sorted(KINDS)),
    )
    new.add_argument("--dir", default=".", help="where to create vtframework-NAME/ (default: here)")


def run(args: argparse.Namespace, app_factory: Callable[..., Any]) -> int:
    target = write_skeleton(args.name, args.entity_type, Path(args.dir))
    kind = f"a type plugin for {args.entity_type}" if args.entity_type else "a feature plugin"
    sys.stdout.write(
        f"created {target} ({kind})\n"
        f"next:  python -m pytest {target}      # its test, offline\n"
        f"       pip install -e {target}        # then `vtframework plugins` lists {args.name!r}\n"
    )
    return EXIT_OK


def write_skeleton(name: str, entity_type: str | None, directory: Path) -> Path:
    """Write ``directory/vtframework-NAME`` and return it.

    :raises UsageError: for a name that cannot be a plugin's, or a folder that exists.
    """
    from vtframework.host.plugins import DEFAULT_PLUGINS
    from vtframework.pipeline import blocks

    if not _NAME.match(name):
        raise UsageError(f"plugin new: {name!r} is not a plugin name: use lower case letters, digits, - or _")
    if name in DEFAULT_PLUGINS:
        raise UsageError(f"plugin new: {name!r} is the name of a built-in plugin; choose another")
    module = "vtframework_" + name.replace("-", "_")
    dist = f"vtframework-{name}"
    target = directory / dist
    if target.exists():
        raise UsageError(f"plugin new: {target} already exists; choose another NAME or --dir")
    values = {"name": name, "module": module, "dist": dist, "test_name": name.replace("-", "_")}
    if entity_type:
        kind = KINDS[entity_type]
        attributes = blocks.attributes(json.loads((RECORDINGS / kind.recording).read_text(encoding="utf-8")))
        values.update(
            entity_type=entity_type, imports=kind.imports, path=kind.path, value=kind.value,
            malicious=str(blocks.stats(attributes)["malicious"]), score=str(blocks.vt_score(attributes)),
            description=f"A vtframework plugin that enriches {entity_type} observables from VirusTotal.",
        )
        plugin, test = TYPE_PLUGIN, TYPE_TEST
    else:
        values["description"] = "A vtframework plugin that adds a note of VirusTotal's tags to every enrichment."
        plugin, test = FEATURE_PLUGIN, FEATURE_TEST
    files = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        f"{module}/__init__.py": plugin,
        f"tests/test_{values['test_name']}.py": test,
    }
    for relative, template in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.substitute(values), encoding="utf-8")
    return target


COMMAND = ("plugin", "write a new plugin: `vtframework plugin new NAME [--type T]`", configure, run)
