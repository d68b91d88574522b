"""Nothing above an observable's markings ever reaches VirusTotal, whichever way it would go.

Every TLP level, PAP:RED and PAP:AMBER, markings the policy cannot place (an
unknown TLP value, a statement, an id it has never seen) and a mapped one,
against every egress path: lookup, sample upload, URL submission, sample
download, Livehunt rule. The fake VirusTotal counts what it received; the
expectation is written here from the policy's rules, not read from the code.
Plugins that try to step around the check are refused too.
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
import uuid

import pytest

from vtframework import (
    STIX_EXT_OCTI,
    TLP_MARKINGS,
    EgressRefused,
    Observable,
    Pipeline,
    StreamContext,
    StreamEvent,
    build_app,
    fetch_sample,
    hookimpl,
    open_app_state,
    open_client,
)
from vtframework.policy.markings import PAP_MARKINGS
from vtframework.testing import FakeVirusTotal

from vtframework_plugins.livehunt import vtf_stream_event

KEY = "matrix-test-key"
KNOWN = "4bc00f7d638e042da764e8648c03c0db46700599dd4f08d117e3e9e8b538519b"
SAMPLE = b"MZ" + bytes(range(256)) * 16
SAMPLE_SHA256 = hashlib.sha256(SAMPLE).hexdigest()
UNSEEN_URL = "http://unseen.example/path"
RULE = 'rule hunted {\n  strings:\n    $s = "secret-campaign"\n  condition:\n    $s\n}'
TLPS = ("TLP:CLEAR", "TLP:GREEN", "TLP:AMBER", "TLP:AMBER+STRICT", "TLP:RED")


def tlp(name):
    marking = TLP_MARKINGS[name]
    return marking["id"], {"standard_id": marking["id"], "definition_type": "TLP", "definition": name}


def custom(definition_type, definition):
    ident = f"marking-definition--{uuid.uuid5(uuid.NAMESPACE_URL, definition)}"
    return ident, {"standard_id": ident, "definition_type": definition_type, "definition": definition}


#: case -> (markings as (id, OpenCTI's description or None), the TLP to hold it to, or None: nothing may leave).
CASES = {
    **{name: ([tlp(name)], name) for name in TLPS},
    "PAP:RED": ([tlp("TLP:CLEAR"), (PAP_MARKINGS["PAP:RED"]["id"], None)], None),
    "PAP:AMBER": ([tlp("TLP:CLEAR"), (PAP_MARKINGS["PAP:AMBER"]["id"], None)], "TLP:CLEAR"),
    "unknown TLP value": ([custom("TLP", "TLP:EXTERNAL")], None),
    "statement": ([custom("statement", "Internal use only")], None),
    "unknown id": ([(custom("TLP", "TLP:PARTNERS")[0], None)], None),
    "unknown, with TLP:CLEAR": ([tlp("TLP:CLEAR"), custom("TLP", "TLP:EXTERNAL")], None),
    "mapped": ([custom("TLP", "TLP:EXTERNAL")], "TLP:GREEN"),
}
MARKING_MAP = "TLP:EXTERNAL=TLP:GREEN"
#: Path -> the most restrictive TLP it allows with the default settings (VIRUSTOTAL_MAX_TLP=TLP:AMBER,
#: VIRUSTOTAL_UPLOAD_MAX_TLP=TLP:GREEN).
LIMITS = {"lookup": "TLP:AMBER", "download": "TLP:AMBER", "livehunt": "TLP:AMBER",
          "upload": "TLP:GREEN", "submission": "TLP:GREEN"}


def allowed(case: str, path: str) -> bool:
    held_to = CASES[case][1]
    return held_to is not None and TLPS.index(held_to) <= TLPS.index(LIMITS[path])


@pytest.fixture
def fake(samples_dir):
    with FakeVirusTotal(str(samples_dir), api_key=KEY) as vt:
        vt.add_route("POST", "/files", 200, {"data": {"type": "analysis", "id": "upload-1"}})
        vt.add_route("POST", "/urls", 200, {"data": {"type": "analysis", "id": "submission-1"}})
        vt.add_download(SAMPLE_SHA256, SAMPLE)
        yield vt


def make_app(preset: str, case: str, extra_plugins=()):
    env = {"VTF_EXTERNAL_PLUGINS": "false", "VIRUSTOTAL_TOKEN": KEY, "VIRUSTOTAL_DOWNLOADER_API_KEY": KEY,
           "VIRUSTOTAL_LIVEHUNT_TOKEN": KEY}
    if case == "mapped":
        env["VIRUSTOTAL_MARKING_MAP"] = MARKING_MAP
    return build_app(preset, env=env, extra_plugins=extra_plugins, config_file=None)


@pytest.fixture
def connect(fake, tmp_path):
    """A client as the connectors and the CLI open it (requests outside a scope are refused)."""
    clients = []

    def build(app):
        state = open_app_state(app, tmp_path / f"state-{len(clients)}")
        client = open_client(app, state, base_url=fake.base_url, detect_quota=False,
                             requests_per_minute=10_000, max_retries=0)
        clients.append((client, state))
        return client

    yield build
    for client, state in clients:
        client.close()
        state.close()


def observable(case: str, entity_type: str, value: str, stix: dict, **extra) -> Observable:
    markings = CASES[case][0]
    return Observable(
        entity_type=entity_type, value=value, stix={**stix, "object_marking_refs": [m for m, _ in markings]},
        markings=tuple(m for m, _ in markings), tlp="TLP:CLEAR",
        marking_details=tuple(d for _, d in markings if d), **extra,
    )


def enrich(app, client, obs):
    return Pipeline(app, client).enrich(obs)


@pytest.mark.parametrize("case", list(CASES))
def test_every_marking_on_every_egress_path(case, fake, connect):
    app = make_app("virustotal", case)
    client = connect(app)
    refusals = []

    # lookup: a file VirusTotal knows.
    fake.clear_log()
    file = observable(case, "StixFile", KNOWN, {"type": "file", "id": f"file--{uuid.uuid4()}"},
                      hashes={"SHA-256": KNOWN})
    result = enrich(app, client, file)
    assert fake.count(f"/api/v3/files/{KNOWN}") == (1 if allowed(case, "lookup") else 0), result.message
    assert result.ok == allowed(case, "lookup"), result.message
    refusals.append(result.message)

    # upload: an Artifact VirusTotal has never seen, with its file.
    fake.clear_log()
    artifact = observable(
        case, "Artifact", SAMPLE_SHA256, {"type": "artifact", "id": f"artifact--{uuid.uuid4()}"},
        hashes={"SHA-256": SAMPLE_SHA256},
        files=({"name": "sample.exe", "size": len(SAMPLE), "id": "f1", "open": lambda: io.BytesIO(SAMPLE)},),
    )
    result = enrich(app, client, artifact)
    posts = [r for r in fake.requests if r.method == "POST"]
    assert len(posts) == (1 if allowed(case, "upload") else 0), result.message
    assert not any(SAMPLE in r.body for r in fake.requests if not allowed(case, "upload"))
    refusals.append(result.message)

    # submission: a URL VirusTotal has never seen.
    fake.clear_log()
    url = observable(case, "Url", UNSEEN_URL, {"type": "url", "id": f"url--{uuid.uuid4()}", "value": UNSEEN_URL})
    result = enrich(app, client, url)
    submitted = [r for r in fake.requests if r.method == "POST" and r.path == "/api/v3/urls"]
    assert len(submitted) == (1 if allowed(case, "submission") else 0), result.message
    refusals.append(result.message)

    # download: the sample of a file.
    fake.clear_log()
    downloader = make_app("virustotal-downloader", case)
    sample_file = observable(case, "StixFile", SAMPLE_SHA256, {"type": "file", "id": f"file--{uuid.uuid4()}"},
                             hashes={"SHA-256": SAMPLE_SHA256})
    try:
        fetch_sample(downloader, connect(downloader), sample_file, max_size=1 << 20).discard()
        downloaded = True
    except EgressRefused as refused:
        downloaded = False
        refusals.append(str(refused))
    assert downloaded == allowed(case, "download")
    assert len(fake.requests) == (2 if allowed(case, "download") else 0)  # the API, then the storage

    # livehunt: a hunted YARA indicator arrives on the stream.
    fake.clear_log()
    livehunt = make_app("virustotal-livehunt", case)
    live_client = connect(livehunt)
    context = StreamContext(live_client, live_client.state, livehunt.settings, logging.getLogger("test"))
    message = vtf_stream_event(event=yara_event(case), context=context, settings=livehunt.settings)
    rules = [r for r in fake.requests if b"secret-campaign" in r.body]
    assert len(rules) == (1 if allowed(case, "livehunt") else 0), message
    refusals.append(str(message))

    if CASES[case][1] is None:
        # Refused at every path, each time saying which marking and what to set.
        if case.startswith("PAP"):
            assert all("PAP:RED" in m for m in refusals), refusals
        else:
            assert all("VIRUSTOTAL_MARKING_MAP" in m for m in refusals), refusals
            assert all(("TLP:EXTERNAL" in m or "Internal use only" in m or "marking-definition--" in m)
                       for m in refusals), refusals


def yara_event(case: str) -> StreamEvent:
    markings = CASES[case][0]
    data = {
        "id": f"indicator--{uuid.uuid4()}", "type": "indicator", "spec_version": "2.1", "name": "Hunted",
        "pattern": RULE, "pattern_type": "yara", "valid_from": "2024-05-02T08:00:00.000Z",
        "created": "2024-05-02T08:00:00.000Z", "modified": "2024-05-02T08:00:00.000Z",
        "object_marking_refs": [m for m, _ in markings],
        "objectMarking": [d for _, d in markings if d],
        "extensions": {STIX_EXT_OCTI: {"extension_type": "property-extension", "detection": True}},
    }
    return StreamEvent(type="create", id="1-0", data=data)


# -- no way around the check --------------------------------------------------------------
class Sneaky:
    """A third-party plugin that tries to upload whatever it enriches, past the policy."""

    def __init__(self) -> None:
        self.outcomes: list[str] = []

    @hookimpl
    def vtf_stix_objects(self, observable, report, context, settings):
        attempts = {
            "the bound client": lambda: context.client.post("/files", files={"file": ("x", io.BytesIO(b"x"))}),
            "the client behind it": lambda: context.client._vt.post("/files", files={"file": ("x", io.BytesIO(b"x"))}),
            "a URL of its own": lambda: context.client._vt.post(f"{context.client._vt.config.base_url}/urls",
                                                                   data={"url": observable.value}),
        }
        for name, attempt in attempts.items():
            try:
                attempt()
                self.outcomes.append(f"{name}: sent")
            except EgressRefused as refused:
                self.outcomes.append(f"{name}: refused ({refused})")
        # From a thread of its own, outside the enrichment's scope.
        thread = threading.Thread(target=self._from_a_thread, args=(context.client._vt,))
        thread.start()
        thread.join()
        return []

    def _from_a_thread(self, client):
        try:
            client.get(f"/files/{KNOWN}")
            self.outcomes.append("a thread: sent")
        except EgressRefused as refused:
            self.outcomes.append(f"a thread: refused ({refused})")


def test_a_plugin_cannot_step_around_the_client(fake, connect):
    sneaky = Sneaky()
    app = make_app("virustotal", "TLP:AMBER", extra_plugins=[("sneaky", sneaky)])
    client = connect(app)
    result = enrich(app, client, observable("TLP:AMBER", "StixFile", KNOWN, {"type": "file", "id": f"file--{uuid.uuid4()}"},
                                            hashes={"SHA-256": KNOWN}))
    assert result.ok, result.message
    assert [o.split(":")[0] for o in sneaky.outcomes if "refused" in o] == [
        "the bound client", "the client behind it", "a URL of its own", "a thread"
    ], sneaky.outcomes
    assert [r.method for r in fake.requests] == ["GET", "GET"]  # the file and its YARA ruleset, nothing else
    assert "VIRUSTOTAL_UPLOAD_MAX_TLP=TLP:GREEN" in sneaky.outcomes[0]
    assert "outside the enrichment" in sneaky.outcomes[-1]


def test_a_refused_observable_is_refused_even_from_the_cache(fake, connect):
    app = make_app("virustotal", "TLP:AMBER")
    client = connect(app)
    file = observable("TLP:AMBER", "StixFile", KNOWN, {"type": "file", "id": f"file--{uuid.uuid4()}"},
                      hashes={"SHA-256": KNOWN})
    assert enrich(app, client, file).ok
    red = observable("PAP:RED", "StixFile", KNOWN, {"type": "file", "id": f"file--{uuid.uuid4()}"},
                     hashes={"SHA-256": KNOWN})
    result = enrich(app, client, red)
    assert not result.ok and "PAP:RED" in result.message and result.cache_hits == 0


def test_an_invalid_marking_map_stops_start_up(tmp_path):
    from vtframework.cli.main import main

    env = {"VIRUSTOTAL_MARKING_MAP": "TLP:EXTERNAL=PURPLE", "VIRUSTOTAL_TOKEN": KEY}
    app_factory = lambda preset: build_app(preset, env={**env, "VTF_STATE_DIR": str(tmp_path)},  # noqa: E731
                                           config_file=None)
    assert main(["enrich", KNOWN], app_factory=app_factory) == 2
