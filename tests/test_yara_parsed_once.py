"""A YARA ruleset is parsed once, however many files hit it; a reused parser parses as a new one does."""

from __future__ import annotations

import copy
import hashlib
import json

import plyara
import pytest

from vtframework import ClientConfig, Pipeline, SQLiteState, VTClient, build_app, extract_yara_rule, from_value
from vtframework.testing import RECORDINGS_DIR
from vtframework.testing.fakevt import FakeVirusTotal

RECORDED = json.loads((RECORDINGS_DIR / "file_malicious_4bc00f7d.json").read_text(encoding="utf-8"))


def _file_hitting_the_ruleset(seed: int) -> tuple[str, dict]:
    answer = copy.deepcopy(RECORDED)
    attrs = answer["data"]["attributes"]
    for name, algorithm in (("md5", hashlib.md5), ("sha1", hashlib.sha1), ("sha256", hashlib.sha256)):
        attrs[name] = algorithm(f"file {seed}".encode()).hexdigest()
    answer["data"]["id"] = attrs["sha256"]
    return attrs["sha256"], answer


@pytest.fixture
def parses(monkeypatch):
    """How many times plyara parses a ruleset and builds a parser, from a cache that starts empty."""
    import vtframework.stix.yara as yara

    monkeypatch.setattr(yara, "_PARSER", yara._RulesetParser())
    counts = {"parse": 0, "build": 0}
    parse, build = plyara.Plyara.parse_string, plyara.Plyara.__init__

    def counted_parse(self, text):
        counts["parse"] += 1
        return parse(self, text)

    def counted_build(self, *args, **kwargs):
        counts["build"] += 1
        build(self, *args, **kwargs)

    monkeypatch.setattr(plyara.Plyara, "parse_string", counted_parse)
    monkeypatch.setattr(plyara.Plyara, "__init__", counted_build)
    return counts


def test_files_hitting_the_same_ruleset_parse_it_once(tmp_path, parses):
    files = [_file_hitting_the_ruleset(seed) for seed in range(6)]
    app = build_app("virustotal", env={"VTF_PLUGINS": "file"}, config_file=None)
    with FakeVirusTotal(str(RECORDINGS_DIR)) as fake:
        for _sha256, answer in files:
            fake.add_object(answer)
        state = SQLiteState(str(tmp_path / "state.sqlite3"))
        config = ClientConfig(api_key="test-key-of-the-yara-test", base_url=fake.base_url, detect_quota=False,
                              requests_per_minute=100_000, requests_per_day=1_000_000)
        with VTClient(config, state) as client:
            pipeline = Pipeline(app, client)
            results = [pipeline.enrich(from_value(sha256, tlp="TLP:AMBER")) for sha256, _answer in files]
        state.close()
    yara_indicators = [[o for o in r.objects if o.get("pattern_type") == "yara"] for r in results]
    assert all(r.ok for r in results) and all(len(found) == 1 for found in yara_indicators)
    assert len({found[0]["id"] for found in yara_indicators}) == 1
    assert parses == {"parse": 1, "build": 1}


RULESETS = [
    'import "pe"\nrule a { condition: pe.number_of_sections > 1 }\nrule b { strings: $x = "b" condition: $x and a }\n',
    'rule broken { condition: ',  # does not parse: the parser that failed is not reused
    "rule c : tag1 tag2 {\n meta:\n  author = \"x\"\n strings:\n  $h = { 4D 5A }\n condition:\n  $h at 0\n}\n"
    "rule d { condition: c or uint16(0) == 0x5a4d }\n",
    'rule a { condition: true }\n',
]


def test_a_reused_parser_cuts_the_same_rules_as_a_new_one(parses):
    import vtframework.stix.yara as yara

    for text in RULESETS * 2:
        fresh = yara._RulesetParser(capacity=0)
        for name in ("a", "b", "c", "d", "missing"):
            try:
                expected = _cut_with_a_new_parser(text, name)
            except Exception as exc:
                with pytest.raises(type(exc)):
                    extract_yara_rule(text, name)
                with pytest.raises(type(exc)):
                    fresh.parsed(text)
                continue
            assert extract_yara_rule(text, name) == expected, (text, name)
    # Three rulesets parse; the broken one fails once and is remembered; the second round is all cached.
    assert parses["parse"] > 4 and yara._PARSER._parsed.keys() == {
        hashlib.sha256(text.encode()).hexdigest() for text in RULESETS}


def test_the_cache_keeps_at_most_its_capacity():
    import vtframework.stix.yara as yara

    cache = yara._RulesetParser(capacity=2)
    for text in RULESETS:
        try:
            cache.parsed(text)
        except Exception:
            pass
    assert len(cache._parsed) == 2


def _cut_with_a_new_parser(text: str, name: str) -> str | None:
    """The rule as the previous implementation cut it: a new plyara parser for every call."""
    import re
    from collections import OrderedDict

    parsed = plyara.Plyara().parse_string(text)
    by_name = {rule["rule_name"]: rule for rule in parsed}
    if name not in by_name:
        return None
    lines = text.splitlines()
    needed: list[str] = []

    def visit(rule: str) -> None:
        if rule in needed:
            return
        for term in by_name[rule].get("condition_terms", []):
            if term in by_name and term != rule:
                visit(term)
        needed.append(rule)

    visit(name)
    imports = list(OrderedDict.fromkeys(m.strip() for m in re.findall(r'^\s*import\s+"[^"]+"\s*$', text, re.M)))
    sources = ["\n".join(lines[by_name[n]["start_line"] - 1: by_name[n]["stop_line"]]) for n in needed]
    return "\n\n".join(part for part in ("\n".join(imports), *sources) if part).strip() + "\n"
