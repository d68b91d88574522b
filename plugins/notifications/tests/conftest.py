"""The notifications plugin's test harness: the real import run against the fake VirusTotal and an in-memory OpenCTI."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from vtframework import SQLiteState, build_app, open_client
from vtframework.testing import FakeVirusTotal, MemoryOpenCTI, import_offline

PRESET = "virustotal-livehunt-notifications"
SAMPLES = Path(__file__).resolve().parents[3] / "tests" / "samples"
#: The file of the recorded Livehunt notification (CyberGate RAT, 64 engines flag it).
CYBERGATE = "843bdd8f7843fd1f9ce488666dd6cf88e79c6b098e9c9aada96af1d802aab7e2"
KERRDOWN = "4bc00f7d638e042da764e8648c03c0db46700599dd4f08d117e3e9e8b538519b"
WORD_DOC = "001015aafcae8a6942366cbb0e7d39c0738752a7800c41ea1c655d47b0a4d04c"
CLEAN_EXE = "ddecc35aa198f401948c73a0d53fd93c4ecb770198ad7db308de026745c56b71"

BASE_ENV = {
    "VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_API_KEY": "test-key",
    "VIRUSTOTAL_DETECT_QUOTA": "false",
    "VIRUSTOTAL_REQUESTS_PER_MINUTE": "10000",
    "VIRUSTOTAL_REQUESTS_PER_DAY": "1000000",
    "VIRUSTOTAL_MAX_RETRIES": "2",
    "VTF_EXTERNAL_PLUGINS": "false",
    # The recorded files were first submitted years ago; the age filter has tests of its own.
    "VIRUSTOTAL_LIVEHUNT_NOTIFICATIONS_MAX_AGE_DAYS": "0",
}


class Harness:
    """One connector's life: the same state store and OpenCTI across runs, as in production."""

    def __init__(self, vt: FakeVirusTotal, tmp_path: Path) -> None:
        self.vt = vt
        self.state = SQLiteState(str(tmp_path / "state.sqlite3"))
        self.platform = MemoryOpenCTI()
        self.env = {**BASE_ENV, "VIRUSTOTAL_BASE_URL": vt.base_url, "VTF_STATE_DIR": str(tmp_path / "vtf")}
        self.extra_plugins: list[tuple[str, Any]] = []

    def app(self, **env: str) -> Any:
        return build_app(PRESET, env={**self.env, **env}, config_file=None, extra_plugins=self.extra_plugins)

    def run(self, **env: str) -> Any:
        app = self.app(**env)
        client = open_client(app, self.state, retry_budget=5.0, backoff_base=0.01, backoff_max=0.05)
        with client:
            return import_offline(app, client, self.state, self.platform)

    # -- VirusTotal side ------------------------------------------------------------------
    def recorded_file(self, sha256: str) -> dict[str, Any]:
        if sha256 == CYBERGATE:
            import json

            item = json.loads((SAMPLES / "hunting_notification_files_list_cybergate.json").read_text())["data"][0]
            return {k: v for k, v in item.items() if k != "context_attributes"}
        return self.vt.recorded("files", sha256)

    def notify(self, sha256_or_entity: Any, ruleset_id: str, rule_name: str, ago: int = 600, **extra: Any) -> Any:
        entity = self.recorded_file(sha256_or_entity) if isinstance(sha256_or_entity, str) else sha256_or_entity
        return self.vt.add_hunting_notification(entity, ruleset_id=ruleset_id, rule_name=rule_name,
                                                date=int(time.time()) - ago, **extra)

    def objects(self, stix_type: str) -> list[dict[str, Any]]:
        return self.platform.objects_of(stix_type)


@pytest.fixture
def vt():
    with FakeVirusTotal(str(SAMPLES), api_key="test-key") as fake:
        yield fake


@pytest.fixture
def harness(vt, tmp_path):
    h = Harness(vt, tmp_path)
    yield h
    h.state.close()
