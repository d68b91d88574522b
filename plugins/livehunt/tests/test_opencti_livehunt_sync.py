"""`vtframework livehunt sync [--apply]` against the fake OpenCTI (pycti's API client) and the fake VirusTotal."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from test_livehunt import EMOTET, QAKBOT

from vtframework import TLP_MARKINGS
from vtframework.testing import FakeVirusTotal

from vtframework_plugins.livehunt.ruleset import indicator_of, marked_rules

pytestmark = pytest.mark.services

GREEN = TLP_MARKINGS["TLP:GREEN"]["id"]


def indicator_node(name, pattern, detection=True):
    return {"id": str(uuid.uuid4()), "standard_id": f"indicator--{uuid.uuid4()}", "entity_type": "Indicator",
            "name": name, "pattern": pattern, "pattern_type": "yara", "revoked": False,
            "x_opencti_detection": detection, "objectMarking": [{"id": "m", "standard_id": GREEN}]}


def sync(opencti, vt, tmp_path, *args):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OPENCTI_URL": opencti.url, "OPENCTI_TOKEN": "token",
           "VIRUSTOTAL_LIVEHUNT_TOKEN": "test-key", "VIRUSTOTAL_BASE_URL": vt.base_url,
           "VIRUSTOTAL_DETECT_QUOTA": "false", "VIRUSTOTAL_REQUESTS_PER_MINUTE": "1000",
           "VTF_STATE_DIR": str(tmp_path / "state"),
           "VTF_EXTERNAL_PLUGINS": "false"}
    return subprocess.run([sys.executable, "-m", "vtframework", "livehunt", "sync", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_sync_shows_then_fixes_the_drift(opencti, tmp_path):
    hunted = indicator_node("Emotet loader", EMOTET)
    resting = indicator_node("Qakbot", QAKBOT, detection=False)
    opencti.indicators[:] = [hunted, resting]
    opencti.max_page_size = 1  # one indicator a page: the listing must follow the platform's cursors
    with FakeVirusTotal() as vt:
        orphan_id = f"indicator--{uuid.uuid4()}"
        orphan = vt.add_hunting_ruleset("Deleted indicator [12345678]", marked_rules(orphan_id, QAKBOT), enabled=True)
        foreign = vt.add_hunting_ruleset("Someone else's", 'rule theirs { condition: true }')

        shown = sync(opencti, vt, tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert hunted["standard_id"] in shown.stdout and orphan_id in shown.stdout
        assert len(vt.hunting_rulesets) == 2  # showing changes nothing

        fixed = sync(opencti, vt, tmp_path, "--apply")
        assert fixed.returncode == 0, fixed.stderr + fixed.stdout
        owners = {indicator_of(r["attributes"]["rules"]) for r in vt.hunting_rulesets.values()}
        assert hunted["standard_id"] in owners
        assert orphan not in vt.hunting_rulesets and foreign in vt.hunting_rulesets
        assert resting["standard_id"] not in owners

        again = sync(opencti, vt, tmp_path)
        assert again.returncode == 0 and again.stdout.startswith("in sync")
    # Three listings of two pages each: the second page asked for after the first's last cursor.
    pages = [c.variables["after"] for c in opencti.calls if c.operation == "Indicators"]
    assert len(pages) == 6 and pages[0::2] == [None] * 3 and all(pages[1::2])
