"""The connector manifests and configuration schemas the connector manager reads, shipped in step with the code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from vtframework import build_app
from vtframework.cli.manifest import MANIFEST_FILE, SCHEMA_FILE, documents
from vtframework.host.presets import PRESETS

ROOT = Path(__file__).resolve().parents[1]


def app_for(preset, **env):
    return build_app(preset, env={"VTF_EXTERNAL_PLUGINS": "false", **env}, config_file=None)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_shipped_files_are_the_generated_ones(preset):
    """Regenerate with: VTF_EXTERNAL_PLUGINS=false vtframework manifest --output-dir __metadata__"""
    for name, content in documents(app_for(preset)).items():
        assert (ROOT / "__metadata__" / preset / name).read_text(encoding="utf-8") == content, (preset, name)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_manifest_describes_the_image_and_the_connector(preset):
    manifest = json.loads((ROOT / "__metadata__" / preset / MANIFEST_FILE).read_text())
    assert manifest["slug"] == f"vtframework-{preset}" and manifest["container_image"] == "vtframework"
    assert manifest["container_type"] == {
        "virustotal-livehunt": "STREAM", "virustotal-livehunt-notifications": "EXTERNAL_IMPORT",
    }.get(preset, "INTERNAL_ENRICHMENT")
    assert manifest["manager_supported"] is (preset != "virustotal-livehunt")
    assert manifest["container_version"] and manifest["title"] and manifest["description"]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_config_schema_validates_real_configurations(preset):
    schema = json.loads((ROOT / "__metadata__" / preset / SCHEMA_FILE).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    api_key = app_for(preset).settings.entry(PRESETS[preset].api_key_path).key.env_name
    good = {"OPENCTI_URL": "https://opencti.example.org", "OPENCTI_TOKEN": "t", api_key: "k",
            "VTF_PRESET": preset, "VIRUSTOTAL_MAX_TLP": "TLP:AMBER+STRICT", "CONNECTOR_AUTO": True}
    assert list(validator.iter_errors(good)) == []
    assert schema["properties"]["VTF_PRESET"]["const"] == preset
    assert schema["properties"][api_key]["writeOnly"] is True and "default" not in schema["properties"][api_key]
    for bad in ({**good, "VIRUSTOTAL_MAX_TLP": "TLP:BLUE"}, {**good, "VTF_PRESET": "other"},
                {k: v for k, v in good.items() if k != api_key}, {**good, "VIRUSTOTAL_CACHE_TTL": -1}):
        assert list(validator.iter_errors(bad)), bad


def test_a_third_party_plugin_s_keys_appear_when_it_is_installed():
    with_hello = documents(build_app("virustotal", env={}, config_file=None))[SCHEMA_FILE]
    without = documents(app_for("virustotal"))[SCHEMA_FILE]
    assert "HELLO_GREETING" in json.loads(with_hello)["properties"]
    assert "HELLO_GREETING" not in json.loads(without)["properties"]


def test_manifest_command(tmp_path):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "VTF_EXTERNAL_PLUGINS": "false"}

    def vtframework(*args):
        return subprocess.run([sys.executable, "-m", "vtframework", "manifest", *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)

    printed = vtframework("--preset", "virustotal")
    assert printed.returncode == 0 and json.loads(printed.stdout)["slug"] == "vtframework-virustotal"
    schema = vtframework("--preset", "virustotal", "--schema")
    assert json.loads(schema.stdout)["properties"]["VTF_PRESET"]["const"] == "virustotal"
    written = vtframework("--output-dir", "meta")
    assert written.returncode == 0
    assert sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "meta").rglob("*.json")) == sorted(
        f"meta/{preset}/{name}" for preset in PRESETS for name in (MANIFEST_FILE, SCHEMA_FILE))
    missing = vtframework()
    assert missing.returncode == 2 and "--preset" in missing.stderr
