"""Build CONSTRUCTED ``GET /sigma_rules/{id}`` answers for the Sigma rules the real file samples name.

No real ``sigma_rule`` answer has been published, so these are built from the
documented object shape (docs.virustotal.com, "Sigma rule object"): the
title, description, author, level and ruleset come from the rule's entry in
the real file report (``sigma_analysis_results``); the log source, the
detection (each selection a JSON document inside a string, as documented),
the status and the ATT&CK tags are ours, written to fit the events the rule
matched. The files are named ``sigma_rule_<id>_CONSTRUCTED.json`` and listed in
tests/samples/SOURCES.md.

Run from the repository root: ``python tests/tools/build_sigma_rules.py``.
It writes the answers to tests/samples/ and to vtframework/replay/.
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "tests" / "samples"
TARGETS = (SAMPLES, ROOT / "vtframework" / "replay")
FILE_SAMPLES = (
    "file_malicious_sigma_ids_sandbox_6b60666d.json",
    "file_powershell_ai_sigma_020876e6.json",
    "file_clean_sigma_ids_29bd5781.json",
)

WINDOWS = "windows"
PS_SCRIPT = {"product": WINDOWS, "category": "ps_script", "definition": "Script Block Logging must be enabled"}


def script(*needles: str) -> dict:
    return {"ScriptBlockText|contains": list(needles)}


# Per rule (id prefix): log source, selections, condition, ATT&CK tags. CONSTRUCTED.
RULES: dict[str, tuple[dict, dict, str, list[str]]] = {
    "5be9da0a90": (
        {"product": WINDOWS, "category": "create_stream_hash"},
        {"selection": {"Hash|contains": "IMPHASH="},
         "filter_main_null": {"Hash|contains": "IMPHASH=00000000000000000000000000000000"}},
        "selection and not 1 of filter_main_*",
        ["attack.defense_evasion", "attack.s0139", "attack.t1564.004"],
    ),
    "683818f248": (
        {"product": WINDOWS, "category": "image_load"},
        {"selection": {"Image|endswith": ["\\InstallUtil.exe", "\\RegAsm.exe", "\\RegSvcs.exe"]},
         "filter_main_signed": {"Signed": "true"}},
        "selection and not 1 of filter_main_*",
        ["attack.t1218.011", "attack.defense_evasion"],
    ),
    "0328ed59c2": (
        PS_SCRIPT, {"selection": {"ScriptBlockText|re": "\\w+`(\\w+|-|.)`[\\w+|\\s]"}}, "selection",
        ["attack.defense_evasion", "attack.t1027.009"],
    ),
    "76e8bb8877": (
        {"product": WINDOWS, "category": "process_creation"},
        {"selection": {"Image|endswith": "\\csc.exe", "CommandLine|contains": "\\AppData\\Local\\Temp\\"}},
        "selection",
        ["attack.defense_evasion", "attack.t1027.004"],
    ),
    "bbb841b3f1": (
        PS_SCRIPT, {"selection": script("Invoke-WebRequest", "Get-WmiObject", "Add-MpPreference")}, "selection",
        ["attack.execution", "attack.discovery", "attack.t1059.001", "attack.t1087"],
    ),
    "124bf07ac7": (
        PS_SCRIPT, {"selection_webclient": script("System.Net.WebClient"),
                    "selection_function": script(".DownloadFile(", ".DownloadString(")},
        "all of selection_*",
        ["attack.execution", "attack.t1059.001"],
    ),
    "33e7351552": (
        {"product": WINDOWS, "category": "image_load"},
        {"selection": {"ImageLoaded|endswith": ["\\WsmSvc.dll", "\\WsmAuto.dll", "\\Microsoft.WSMan.Management.ni.dll"]}},
        "selection",
        ["attack.execution", "attack.lateral_movement", "attack.t1059.001", "attack.t1021.003"],
    ),
    "4e243e6a61": (
        PS_SCRIPT, {"selection": script("ls", " -R", "Select-String ", "-Pattern ")}, "selection",
        ["attack.credential_access", "attack.t1552.001"],
    ),
    "5e2ea8c055": (
        PS_SCRIPT, {"selection": script("powershell", "WindowStyle", "Hidden")}, "selection",
        ["attack.defense_evasion", "attack.t1564.003"],
    ),
    "60d527fe5a": (
        PS_SCRIPT, {"selection_cmdlet": script("New-ScheduledTaskAction", "Register-ScheduledTask")},
        "selection_cmdlet",
        ["attack.persistence", "attack.t1053.005"],
    ),
    "6291f85314": (
        PS_SCRIPT, {"selection": script("Invoke-WebRequest", "iwr ", "Invoke-RestMethod", "Net.WebClient")},
        "selection",
        ["attack.execution", "attack.t1059.001"],
    ),
    "7ce2e69836": (
        PS_SCRIPT, {"selection": script("Get-ChildItem", "-Recurse")}, "selection",
        ["attack.discovery", "attack.t1083"],
    ),
    "b39586c79b": (
        {"product": WINDOWS, "category": "process_creation"},
        {"selection_img": {"Image|endswith": "\\csc.exe"},
         "selection_cli": {"CommandLine|contains": ["\\AppData\\", "\\Windows\\Temp\\"]}},
        "all of selection_*",
        ["attack.defense_evasion", "attack.t1027.004"],
    ),
    "beee5a67ce": (
        PS_SCRIPT, {"selection": script("Get-ChildItem", " -Recurse ", " -Include ")}, "selection",
        ["attack.collection", "attack.t1119"],
    ),
    "ce0c4f663a": (
        PS_SCRIPT, {"selection": script("Start-Process", "-PassThru ", "-FilePath ")}, "selection",
        ["attack.defense_evasion", "attack.t1036.003"],
    ),
    "ece68c3b6f": (
        PS_SCRIPT, {"selection": script("Start-Process", ".cmd", ".bat")}, "selection",
        ["attack.execution", "attack.t1059.003"],
    ),
    "764276dba9": (
        {"product": WINDOWS, "category": "file_event"},
        {"selection": {"TargetFilename|endswith": ".cmdline"}}, "selection",
        ["attack.defense_evasion", "attack.t1027.004"],
    ),
    "8aa937de88": (
        PS_SCRIPT, {"selection": script("Mount-DiskImage ", "-ImagePath ")}, "selection",
        ["attack.defense_evasion", "attack.t1553.005"],
    ),
    "b0d225f323": (
        PS_SCRIPT, {"selection": script("Get-Process ")}, "selection",
        ["attack.discovery", "attack.t1057"],
    ),
    "1dfbc92aba": (
        {"product": WINDOWS, "category": "process_creation"},
        {"sysnative": [{"CommandLine|startswith": "C:\\Windows\\Sysnative\\"},
                       {"Image|startswith": "C:\\Windows\\Sysnative\\"}]},
        "sysnative",
        ["attack.defense_evasion", "attack.privilege_escalation", "attack.t1055"],
    ),
    "3e5fe19fbb": (
        {"product": WINDOWS, "category": "registry_set"},
        {"selection_wow_current_version_base": {"TargetObject|contains": "\\SOFTWARE\\Wow6432Node\\Microsoft\\Windows\\CurrentVersion"},
         "selection_wow_current_version_keys": {"TargetObject|contains": ["\\Run\\", "\\RunOnce\\"]}},
        "all of selection_*",
        ["attack.persistence", "attack.t1547.001"],
    ),
    "134564d292": (
        {"product": WINDOWS, "service": "security"},
        {"selection": {"EventID": [5038, 6281]}}, "selection",
        ["attack.defense_evasion", "attack.t1027"],
    ),
}


def sigma_rule(result: dict) -> dict:
    logsource, selections, condition, tags = RULES[result["rule_id"][:10]]
    rule_id = result["rule_id"]
    return {
        "data": {
            "type": "sigma_rule",
            "id": rule_id,
            "links": {"self": f"https://www.virustotal.com/api/v3/sigma_rules/{rule_id}"},
            "attributes": {
                "title": result["rule_title"],
                "description": result.get("rule_description", ""),
                "author": result.get("rule_author", ""),
                "level": result["rule_level"],
                "status": "test",
                "source": result["rule_source"],
                "tags": tags,
                "references": [],
                "false_positives": ["Unknown"],
                "fields": [],
                "action": "",
                "log_source": logsource,
                "detection": {
                    "condition": condition,
                    "details": {name: json.dumps(selection) for name, selection in selections.items()},
                },
            },
        }
    }


def main() -> None:
    for sample in FILE_SAMPLES:
        report = json.loads((SAMPLES / sample).read_text(encoding="utf-8"))
        for result in report["data"]["attributes"]["sigma_analysis_results"]:
            body = json.dumps(sigma_rule(result), indent=2) + "\n"
            for target in TARGETS:
                path = target / f"sigma_rule_{result['rule_id'][:10]}_CONSTRUCTED.json"
                path.write_text(body, encoding="utf-8")
                print(path.relative_to(ROOT))


if __name__ == "__main__":
    main()
