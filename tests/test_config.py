"""Configuration: declared keys, config.yml < environment, validation, secrets, old layouts."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from vtframework.errors import ConfigError
from vtframework.host.app import build_app
from vtframework.host.config import env_to_path, parse_list

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"

#: Every variable documented by the three original connectors' READMEs and configs.
ORIGINAL_VARIABLES = {
    "OPENCTI_URL", "OPENCTI_TOKEN", "CONNECTOR_ID", "CONNECTOR_NAME", "CONNECTOR_SCOPE", "CONNECTOR_AUTO",
    "CONNECTOR_LOG_LEVEL", "CONNECTOR_TYPE", "CONNECTOR_CONFIDENCE_LEVEL", "CONNECTOR_LIVE_STREAM_ID",
    "CONNECTOR_LIVE_STREAM_LISTEN_DELETE", "CONNECTOR_LIVE_STREAM_NO_DEPENDENCIES",
    "VIRUSTOTAL_TOKEN", "VIRUSTOTAL_MAX_TLP", "VIRUSTOTAL_REPLACE_WITH_LOWER_SCORE",
    "VIRUSTOTAL_FILE_CREATE_NOTE_FULL_REPORT", "VIRUSTOTAL_FILE_UPLOAD_UNSEEN_ARTIFACTS",
    "VIRUSTOTAL_FILE_INDICATOR_CREATE_POSITIVES", "VIRUSTOTAL_FILE_INDICATOR_VALID_MINUTES",
    "VIRUSTOTAL_FILE_INDICATOR_DETECT", "VIRUSTOTAL_FILE_IMPORT_YARA",
    "VIRUSTOTAL_IP_INDICATOR_CREATE_POSITIVES", "VIRUSTOTAL_IP_INDICATOR_VALID_MINUTES",
    "VIRUSTOTAL_IP_INDICATOR_DETECT", "VIRUSTOTAL_IP_ADD_RELATIONSHIPS",
    "VIRUSTOTAL_DOMAIN_INDICATOR_CREATE_POSITIVES", "VIRUSTOTAL_DOMAIN_INDICATOR_VALID_MINUTES",
    "VIRUSTOTAL_DOMAIN_INDICATOR_DETECT", "VIRUSTOTAL_DOMAIN_ADD_RELATIONSHIPS",
    "VIRUSTOTAL_URL_UPLOAD_UNSEEN", "VIRUSTOTAL_URL_INDICATOR_CREATE_POSITIVES",
    "VIRUSTOTAL_URL_INDICATOR_VALID_MINUTES", "VIRUSTOTAL_URL_INDICATOR_DETECT",
    "VIRUSTOTAL_INCLUDE_ATTRIBUTES_IN_NOTE", "VIRUSTOTAL_DOWNLOADER_API_KEY",
    "VIRUSTOTAL_LIVEHUNT_TOKEN", "VIRUSTOTAL_LIVEHUNT_NOTIFICATION_EMAILS", "VIRUSTOTAL_LIVEHUNT_SHARED_OWNERS",
}


def app(env=None, preset=None, config_file=None):
    return build_app(preset, env=env or {}, config_file=config_file)


def declared_variables(a) -> set[str]:
    return {entry.key.env_name for entry in a.settings.entries()}


def test_every_original_variable_is_declared():
    assert ORIGINAL_VARIABLES <= declared_variables(app())


@pytest.mark.skipif(not SEEDS.is_dir(), reason="the shared seed READMEs are not beside this checkout")
def test_every_variable_of_the_seed_readmes_is_declared():
    documented = set()
    for seed in SEEDS.glob("*.txt"):
        documented |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", seed.read_text(encoding="utf-8")))
    assert documented and documented <= declared_variables(app())
    assert documented <= ORIGINAL_VARIABLES


def test_original_defaults_are_kept():
    s = app().settings
    assert s["virustotal.max_tlp"] == "TLP:AMBER"
    assert s["virustotal.file_indicator_create_positives"] == 10
    assert s["virustotal.url_indicator_valid_minutes"] == 2880
    assert s["virustotal.replace_with_lower_score"] is True
    assert s["virustotal.ip_add_relationships"] is False
    assert s["virustotal.base_url"] == "https://www.virustotal.com/api/v3"


def test_env_names_split_at_the_namespace():
    namespaces = {"opencti", "connector", "virustotal", "virustotal_downloader", "vtf"}
    assert env_to_path("OPENCTI_URL", namespaces) == "opencti.url"
    assert env_to_path("VIRUSTOTAL_FILE_IMPORT_YARA", namespaces) == "virustotal.file_import_yara"
    assert env_to_path("VIRUSTOTAL_DOWNLOADER_API_KEY", namespaces) == "virustotal_downloader.api_key"
    assert env_to_path("PATH", namespaces) is None


def test_environment_wins_over_config_file(tmp_path):
    config = tmp_path / "config.yml"
    config.write_text(
        "virustotal:\n  max_tlp: TLP:GREEN\n  file_indicator_create_positives: 5\nconnector:\n  name: From file\n"
    )
    s = app({"VIRUSTOTAL_MAX_TLP": "TLP:RED"}, config_file=config).settings
    assert (s["virustotal.max_tlp"], s.entry("virustotal.max_tlp").source) == ("TLP:RED", "env")
    assert (s["virustotal.file_indicator_create_positives"], s.entry("virustotal.file_indicator_create_positives").source) == (5, "config.yml")
    assert s["connector.name"] == "From file"
    assert s.entry("virustotal.import_yara" if False else "virustotal.file_import_yara").source == "default"


def test_empty_variable_counts_as_unset():
    assert app({"VIRUSTOTAL_MAX_TLP": ""}).settings["virustotal.max_tlp"] == "TLP:AMBER"


def test_tokens_stay_strings():
    # dynaconf would parse 0123 / 123456 as TOML numbers; a key must stay exactly what was given.
    assert app({"VIRUSTOTAL_TOKEN": "0123456"}).settings["virustotal.token"] == "0123456"


@pytest.mark.parametrize(
    "variable,value,expected",
    [
        ("VIRUSTOTAL_FILE_INDICATOR_CREATE_POSITIVES", "ten",
         "invalid VIRUSTOTAL_FILE_INDICATOR_CREATE_POSITIVES (virustotal.file_indicator_create_positives) "
         "from the environment: got 'ten', expected a whole number >= 0"),
        ("VIRUSTOTAL_MAX_TLP", "TLP:PURPLE", "expected one of TLP:CLEAR, TLP:GREEN, TLP:AMBER, TLP:AMBER+STRICT, TLP:RED"),
        ("CONNECTOR_AUTO", "maybe", "invalid CONNECTOR_AUTO (connector.auto) from the environment: got 'maybe', expected true or false"),
        ("OPENCTI_URL", "localhost:8080", "expected an http:// or https:// URL"),
        ("CONNECTOR_LOG_LEVEL", "loud", "expected one of debug, info, warn, warning, error"),
    ],
)
def test_invalid_values_name_key_variable_and_expectation(variable, value, expected):
    with pytest.raises(ConfigError) as caught:
        app({variable: value})
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


def test_secrets_are_never_shown(tmp_path):
    config = tmp_path / "config.yml"
    config.write_text("opencti:\n  token: not-a-number-token\n")
    a = app({"VIRUSTOTAL_TOKEN": "vt-secret-123", "VIRUSTOTAL_DOWNLOADER_API_KEY": "dl-secret"}, config_file=config)
    shown = {entry.key.path: entry.shown for entry in a.settings.entries()}
    assert shown["virustotal.token"] == shown["opencti.token"] == shown["virustotal_downloader.api_key"] == "****"
    assert "vt-secret-123" not in repr(a.settings)
    assert "dl-secret" not in repr(a.settings)


def test_a_list_with_choices_takes_only_them_once_each_in_their_spelling():
    from vtframework.host.config import load_settings
    from vtframework.records import ConfigKey

    key = ConfigKey("x.kinds", "list", ["alpha"], "what to read", choices=("alpha", "beta"))
    assert load_settings([key], env={"X_KINDS": "Beta, alpha,BETA"})["x.kinds"] == ["beta", "alpha"]
    with pytest.raises(ConfigError) as caught:
        load_settings([key], env={"X_KINDS": "alpha,gamma"})
    assert "got 'alpha,gamma', expected a comma-separated list of alpha, beta" in str(caught.value)


def test_invalid_secret_is_not_echoed():
    from vtframework.host.config import load_settings
    from vtframework.records import ConfigKey

    key = ConfigKey("x.pin", "int", 0, "a secret number", secret=True)
    with pytest.raises(ConfigError) as caught:
        load_settings([key], env={"X_PIN": "hunter2"})
    assert "hunter2" not in str(caught.value)
    assert "****" in str(caught.value)


def test_list_settings_accept_comma_json_and_python_literals():
    assert parse_list("a@b.com, c@d.com") == ["a@b.com", "c@d.com"]
    assert parse_list('["user1", "user2"]') == ["user1", "user2"]
    assert parse_list("['user1']") == ["user1"]
    assert parse_list(["x", " y "]) == ["x", "y"]
    assert parse_list("") == []


def test_presets_restore_each_original_connectors_defaults():
    enrichment = app(preset="virustotal").settings
    downloader = app(preset="virustotal-downloader").settings
    livehunt = app(preset="virustotal-livehunt").settings
    assert enrichment["connector.id"] == "virustotal--9b7842f4-078f-4cec-8550-1c586d075a77"
    assert downloader["connector.name"] == "VirusTotal Downloader"
    assert downloader["connector.scope"] == ["StixFile"]
    assert livehunt["connector.type"] == "STREAM"
    assert livehunt["connector.confidence_level"] == 80
    assert app({"CONNECTOR_NAME": "Mine"}, preset="virustotal-downloader").settings["connector.name"] == "Mine"


OLD_ENRICHMENT = """
opencti:
  url: 'http://localhost:8080'
  token: 'ChangeMe'
connector:
  id: 'ChangeMe'
  name: 'VirusTotal'
  scope: 'StixFile,Artifact,IPv4-Addr,Domain-Name,Url,Hostname'
  auto: true
  log_level: 'info'
virustotal:
  token: 'ChangeMe'
  max_tlp: 'TLP:AMBER'
  replace_with_lower_score: true
  file_create_note_full_report: true
  file_upload_unseen_artifacts: true
  file_indicator_create_positives: 10
  file_indicator_valid_minutes: 2880
  file_indicator_detect: true
  file_import_yara: true
  ip_indicator_create_positives: 10
  ip_indicator_valid_minutes: 2880
  ip_indicator_detect: true
  ip_add_relationships: true
  domain_indicator_create_positives: 10
  domain_indicator_valid_minutes: 2880
  domain_indicator_detect: true
  domain_add_relationships: true
  url_upload_unseen: true
  url_indicator_create_positives: 10
  url_indicator_valid_minutes: 2880
  url_indicator_detect: true
  include_attributes_in_note: false
"""

OLD_DOWNLOADER = """
opencti:
  url: 'http://localhost:8080'
  token: 'ChangeMe'
connector:
  id: 'ChangeMe'
  name: 'VirusTotal Downloader'
  scope: 'StixFile'
  auto: false
  log_level: 'info'
virustotal_downloader:
  api_key: 'my-download-key'
"""

OLD_LIVEHUNT = """
opencti:
  url: 'http://localhost:8080'
  token: 'ChangeMe'
connector:
  id: 'ChangeMe'
  type: 'STREAM'
  live_stream_id: 'live'
  live_stream_listen_delete: true
  live_stream_no_dependencies: true
  name: 'VirusTotal LiveHunts'
  scope: 'yara'
  confidence_level: 80
  log_level: 'info'
virustotal_livehunt:
  token: 'my-livehunt-key'
  notification_emails: '["soc@example.com"]'
  shared_owners: '["user1", "user2"]'
"""


def test_old_enrichment_config_is_read(tmp_path):
    (tmp_path / "config.yml").write_text(OLD_ENRICHMENT)
    s = build_app(None, env={}, cwd=tmp_path).settings
    assert s["connector.auto"] is True
    assert s["connector.scope"] == ["StixFile", "Artifact", "IPv4-Addr", "Domain-Name", "Url", "Hostname"]
    assert s["virustotal.ip_add_relationships"] is True
    assert s.entry("virustotal.file_import_yara").source == "config.yml"


def test_old_downloader_config_is_read(tmp_path):
    (tmp_path / "config.yml").write_text(OLD_DOWNLOADER)
    a = build_app("virustotal-downloader", env={}, cwd=tmp_path)
    assert a.api_key == "my-download-key"
    assert a.settings["connector.name"] == "VirusTotal Downloader"


def test_old_livehunt_config_is_read(tmp_path):
    (tmp_path / "config.yml").write_text(OLD_LIVEHUNT)
    a = build_app("virustotal-livehunt", env={}, cwd=tmp_path)
    s = a.settings
    assert a.api_key == "my-livehunt-key"
    assert s["virustotal_livehunt.notification_emails"] == ["soc@example.com"]
    assert s["virustotal_livehunt.shared_owners"] == ["user1", "user2"]
    assert s["connector.live_stream_id"] == "live"


def test_vtframework_config_lists_every_variable_with_source_and_masks_secrets(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "VIRUSTOTAL_TOKEN": "super-secret-key", "VIRUSTOTAL_MAX_TLP": "TLP:GREEN"}
    done = subprocess.run(
        [sys.executable, "-m", "vtframework", "config"], cwd=tmp_path, env=env,
        capture_output=True, text=True, check=True,
    )
    assert "super-secret-key" not in done.stdout
    rows = {line.split()[0]: line.split() for line in done.stdout.splitlines() if line.strip()}
    assert ORIGINAL_VARIABLES <= set(rows)
    assert rows["VIRUSTOTAL_TOKEN"][-2:] == ["****", "env"]
    assert rows["VIRUSTOTAL_MAX_TLP"][1:] == ["virustotal.max_tlp", "TLP:AMBER", "TLP:GREEN", "env"]


def test_config_error_is_one_line_and_exit_code_2(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "vtframework", "config"], cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "VIRUSTOTAL_IP_ADD_RELATIONSHIPS": "sometimes"},
        capture_output=True, text=True,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "VIRUSTOTAL_IP_ADD_RELATIONSHIPS" in done.stderr


def test_config_sample_is_true_to_the_code():
    from vtframework.cli.main import sample_config

    committed = (Path(__file__).resolve().parents[1] / "config.yml.sample").read_text(encoding="utf-8")
    generated = sample_config(build_app(None, env={"VTF_EXTERNAL_PLUGINS": "false"}, config_file=None))
    assert committed == generated, "regenerate: VTF_EXTERNAL_PLUGINS=false vtframework config --sample > config.yml.sample"


def test_config_sample_loads_as_a_config_file(tmp_path):
    sample = (Path(__file__).resolve().parents[1] / "config.yml.sample").read_text(encoding="utf-8")
    uncommented = "\n".join(line.replace("  # ", "  ", 1) if line.startswith("  # ") and ": " in line else line
                            for line in sample.splitlines() if not line.startswith("  # ") or ": " in line)
    config = tmp_path / "config.yml"
    config.write_text(uncommented)
    assert build_app(None, env={}, config_file=config).settings["virustotal.max_tlp"] == "TLP:AMBER"


@pytest.mark.parametrize("document", ["README.md", "docker-compose.yml"])
def test_every_variable_the_docs_name_is_declared(document):
    text = (Path(__file__).resolve().parents[1] / document).read_text(encoding="utf-8")
    named = set(re.findall(r"\b((?:OPENCTI|CONNECTOR|VIRUSTOTAL|VTF)_[A-Z0-9_]*[A-Z0-9])\b", text))
    named -= {"VTF_DYNACONF_UNUSED"}
    declared = declared_variables(build_app(None, env={}, config_file=None)) | {"VTF_CONFIG_FILE"}
    # Abbreviated families in tables ("VIRUSTOTAL_{FILE,IP}_…") are not variables.
    assert {n for n in named if not n.endswith("_")} <= declared


def test_replay_turns_on_what_costs_quota_unless_the_user_said_otherwise():
    from vtframework.host.app import with_paid_features

    paid = sorted(e.key.env_name for e in app(preset="virustotal").settings.entries() if e.key.costs_requests)
    assert paid == [
        "VIRUSTOTAL_FILE_IMPORT_SIGMA", "VIRUSTOTAL_GTI_COLLECTION_TECHNIQUES", "VIRUSTOTAL_IMPORT_COMMUNITY",
    ]
    replayed = with_paid_features(app(preset="virustotal", env={"VIRUSTOTAL_IMPORT_COMMUNITY": "false"}))
    assert replayed.settings["virustotal.file_import_sigma"] is True
    assert replayed.settings.entry("virustotal.file_import_sigma").source == "replay"
    assert replayed.settings["virustotal.import_community"] is False  # set in the environment: kept
    assert app(preset="virustotal").settings["virustotal.file_import_sigma"] is False  # off by default


def test_a_score_reason_leans_one_of_three_ways():
    from vtframework import ScoreReason

    assert ScoreReason("GTI", "verdict malicious", "malicious").points_to == "malicious"
    with pytest.raises(ValueError, match="points_to must be one of malicious, benign, neutral"):
        ScoreReason("GTI", "verdict malicious", "bad")


def test_config_masks_the_password_of_every_url(tmp_path):
    import os
    import subprocess
    import sys

    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "VTF_EXTERNAL_PLUGINS": "false",
           "VTF_REDIS_URL": "redis://cache-user:s3cr3t-pw@redis.internal:6379/0",
           "OPENCTI_URL": "https://admin:0pencti-pw@opencti.internal"}
    done = subprocess.run([sys.executable, "-m", "vtframework", "config"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "redis://cache-user:***@redis.internal:6379/0" in done.stdout
    assert "https://admin:***@opencti.internal" in done.stdout
    assert "s3cr3t-pw" not in done.stdout + done.stderr and "0pencti-pw" not in done.stdout + done.stderr


def test_the_x_tool_header_names_the_integration_as_google_asks():
    """org.product.major.minor: without an x-tool header VirusTotal leaves GTI's attributes out."""
    import re

    from vtframework.host.services import client_config

    assert re.fullmatch(r"vtframework\.opencti\.\d+\.\d+", client_config(app(preset="virustotal")).tool)
