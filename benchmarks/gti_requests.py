"""VirusTotal requests for Google Threat Intelligence context: one lookup against one request per relationship.

Enriches a file, a domain, an IP address and a URL (the CONSTRUCTED GTI
answers the gti plugin's tests replay) through the real pipeline and client
against the fake GTI, three ways on fresh state each:

- ``one lookup``: the relationships ride in the lookup the type plugin makes;
- ``per relationship``: the same plugin when it reads each relationship with a
  request of its own (what it falls back to when VirusTotal refuses the lookup
  carrying them; the naive design);
- ``repeat``: the first way again on the same state.

Prints the requests each made, counted by the fake VirusTotal, and the ratio.
Exits 1 when the two ways do not give the same objects or the repeat makes a
request.

    python benchmarks/gti_requests.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vtframework.host.app import build_app  # noqa: E402
from vtframework.host.services import open_app_state, open_client  # noqa: E402
from vtframework.pipeline.enrich import Pipeline  # noqa: E402
from vtframework.stix.observables import from_value  # noqa: E402
from vtframework.testing import FakeGTI  # noqa: E402
from vtframework_plugins.gti import relations  # noqa: E402

SAMPLES = ROOT / "plugins" / "gti" / "tests" / "samples"
VALUES = (
    "4bc00f7d638e042da764e8648c03c0db46700599dd4f08d117e3e9e8b538519b",
    "tawuhoju.com",
    "138.128.150.133",
    "http://soclosebutyetqq.com/69.exe",
)
ENV = {"VTF_PLUGINS": "file,ip,domain,url,gti", "VIRUSTOTAL_IMPORT_GTI": "true", "VIRUSTOTAL_FILE_IMPORT_YARA": "false"}


def run(fake: FakeGTI, state_dir: str, inline: bool, rounds: int = 1) -> list[tuple[int, set[str]]]:
    """Per enrichment (every round): the requests the fake received and the ids of the objects made."""
    app = build_app("virustotal", env=ENV, config_file=None)
    if not inline:
        relations.licence(app.memo).refuse_inline()
    client = open_client(app, open_app_state(app, state_dir), base_url=fake.base_url, api_key="bench",
                         detect_quota=False, requests_per_minute=100_000, requests_per_day=1_000_000)
    out = []
    with client:
        pipeline = Pipeline(app, client)
        for _ in range(rounds):
            for value in VALUES:
                before = len(fake.requests)
                result = pipeline.enrich(from_value(value, tlp="TLP:AMBER"))
                if not result.ok:
                    raise SystemExit(f"{value}: {result.message}")
                out.append((len(fake.requests) - before, {o["id"] for o in result.objects if o["type"] != "note"}))
    return out


def main() -> int:
    with FakeGTI(str(SAMPLES)) as fake, tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as per:
        inline = run(fake, one, inline=True, rounds=2)
        separate = run(fake, per, inline=False)
    first, repeat = inline[:len(VALUES)], inline[len(VALUES):]
    print(f"{'VALUE':66} {'ONE LOOKUP':>10} {'PER RELATIONSHIP':>16} {'REPEAT':>6}")
    for value, (a, _), (b, _), (c, _) in zip(VALUES, first, separate, repeat):
        print(f"{value[:66]:66} {a:>10} {b:>16} {c:>6}")
    total_one, total_per = sum(n for n, _ in first), sum(n for n, _ in separate)
    print(f"one lookup: {total_one} requests, per relationship: {total_per}, "
          f"ratio {total_one / total_per:.2f}; repeat: {sum(n for n, _ in repeat)}")
    same = all(a == b for (_, a), (_, b) in zip(first, separate))
    print("same objects both ways:", same)
    return 0 if same and not sum(n for n, _ in repeat) else 1


if __name__ == "__main__":
    sys.exit(main())
