"""Start-up: commands import neither pycti nor plugins they do not need, and load plugins once."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _modules_after(code: str) -> set[str]:
    env = {**os.environ, "VTF_EXTERNAL_PLUGINS": "false"}
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True, env=env).stdout
    return set(out.split())


def test_the_command_line_and_the_pipeline_do_not_import_pycti():
    assert "pycti" not in _modules_after("import vtframework.cli.main")
    assert "pycti" not in _modules_after("import vtframework.pipeline.enrich, vtframework.stix.ids")
    # The check can fail: what imports pycti is seen.
    assert "pycti" in _modules_after("import vtframework.cli.main, pycti")


def test_help_loads_no_plugin_and_no_pycti():
    code = (
        "import contextlib, io\n"
        "from vtframework.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        main(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
    )
    loaded = _modules_after(code)
    assert "pycti" not in loaded
    assert not any(name.startswith("vtframework_plugins") for name in loaded)


def test_enrich_loads_the_plugins_once_and_help_not_at_all(monkeypatch, tmp_path, capsys):
    import vtframework.host.plugins as plugins
    from vtframework.cli.main import main

    built = []

    class CountedHost(plugins.PluginHost):
        def __init__(self, *args, **kwargs):
            built.append(self)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(plugins, "PluginHost", CountedHost)
    monkeypatch.chdir(tmp_path)
    assert main(["enrich", "--replay", "1.1.1.1", "-o", "bundle.json"]) == 0
    assert len(built) == 1
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "enrich" in capsys.readouterr().out and len(built) == 1
