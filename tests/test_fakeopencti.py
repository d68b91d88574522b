"""The fake OpenCTI answers like the platform and refuses what the platform refuses."""

from __future__ import annotations

import io
import json
import uuid
import zipfile

import pytest
import requests

from vtframework.policy.markings import TLP_MARKINGS
from vtframework.testing.fakeopencti import FakeOpenCTI, installed_pycti_version
from vtframework.testing.fakeopencti_schema import version_tuple

TOKEN = "d434ce02-e58e-4cac-8b4c-42bf16748e84"


@pytest.fixture
def fake():
    with FakeOpenCTI(token=TOKEN) as opencti:
        yield opencti


def post(fake, query, variables=None, token=TOKEN):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = requests.post(f"{fake.url}/graphql", json={"query": query, "variables": variables or {}},
                             headers=headers, timeout=10)
    return response.status_code, response.json()


def api(fake):
    from pycti import OpenCTIApiClient

    return OpenCTIApiClient(fake.url, TOKEN, log_level="error")


def test_announces_the_installed_pycti_version_by_default(fake):
    assert post(fake, "query healthCheck { about { version } }") == (200, {"data": {"about": {
        "version": installed_pycti_version()}}})


@pytest.mark.parametrize("query,message", [
    ("query Nope { settings { id } }", "Cannot query field 'settings' on type 'Query'."),
    ("query X { about { version memory { rss } } }", "Cannot query field 'memory' on type 'AppInfo'."),
    ("query X($id: String!) { stixCyberObservable(id: $id) { id whatever } }",
     "Cannot query field 'whatever' on type 'StixCyberObservable'."),
    ("query X($id: String!) { stixCyberObservable(id: $id) { ... on Martian { id } } }", "Unknown type 'Martian'."),
])
def test_refuses_what_it_does_not_model_instead_of_answering_nothing(fake, query, message):
    status, body = post(fake, query, {"id": "x"})
    assert status == 400 and "data" not in body
    assert body["errors"][0]["message"] == message
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert fake.refusals[-1].endswith(message)


def test_refuses_without_the_token(fake):
    for token in (None, "someone-else"):
        status, body = post(fake, "query healthCheck { about { version } }", token=token)
        assert body["errors"][0]["extensions"]["code"] == "AUTH_REQUIRED" and "data" not in body


def test_a_6x_platform_refuses_what_pycti_7_sends():
    """What a 7.x pycti does on a 6.x platform: registration and entity reads fail, as on the real one."""
    with FakeOpenCTI(version="6.9.29", token=TOKEN) as old:
        register = ("mutation RegisterConnector($input: RegisterConnectorInput) {"
                    " registerConnector(input: $input) { id jwks } }")
        status, body = post(old, register, {"input": {"id": str(uuid.uuid4()), "name": "x", "type": "STREAM"}})
        assert body["errors"][0]["message"] == "Cannot query field 'jwks' on type 'Connector'."
        status, body = post(old, "mutation R($input: RegisterConnectorInput) { registerConnector(input: $input) { id } }",
                            {"input": {"id": str(uuid.uuid4()), "name": "x", "type": "STREAM", "version": None}})
        assert "RegisterConnectorInput" in body["errors"][0]["message"]
        assert "field 'version'" in body["errors"][0]["message"]
        status, body = post(old, "query X($id: String!) { stixCyberObservable(id: $id) { ... on IMEI { value } } }",
                            {"id": "x"})
        assert body["errors"][0]["message"] == "Unknown type 'IMEI'."


def test_older_7x_platform_has_no_custom_field_values():
    query = "query Indicator($id: String!) { indicator(id: $id) { id customFieldValues { field_id } } }"
    with FakeOpenCTI(version="7.261008.0", token=TOKEN) as older:
        assert post(older, query, {"id": "x"})[1]["errors"][0]["message"] == (
            "Cannot query field 'customFieldValues' on type 'Indicator'.")
    with FakeOpenCTI(version="7.261014.0", token=TOKEN) as newer:
        assert post(newer, query, {"id": "x"}) == (200, {"data": {"indicator": None}})


def yara_indicator(name, detection=True):
    return {"standard_id": f"indicator--{uuid.uuid4()}", "entity_type": "Indicator", "name": name,
            "pattern": f"rule {name} {{ condition: true }}", "pattern_type": "yara", "x_opencti_detection": detection,
            "objectMarking": [{"standard_id": TLP_MARKINGS["TLP:GREEN"]["id"]}]}


def test_lists_span_pages_with_real_cursors_and_filters(fake):
    fake.max_page_size = 2
    for index in range(5):
        fake.add_entity(yara_indicator(f"r{index}"))
    fake.add_entity({**yara_indicator("sigma"), "pattern_type": "sigma"})
    query = ("query Indicators($filters: FilterGroup, $first: Int, $after: ID) {"
             " indicators(filters: $filters, first: $first, after: $after) {"
             " edges { cursor node { name revoked parent_types } }"
             " pageInfo { startCursor endCursor hasNextPage hasPreviousPage globalCount } } }")
    yara = {"mode": "and", "filterGroups": [],
            "filters": [{"key": "pattern_type", "values": ["yara"], "operator": "eq", "mode": "or"}]}
    _, first = post(fake, query, {"filters": yara, "first": 500})
    page = first["data"]["indicators"]
    assert [e["node"]["name"] for e in page["edges"]] == ["r0", "r1"]  # capped like the platform's max page
    assert page["pageInfo"]["hasNextPage"] is True and page["pageInfo"]["globalCount"] == 5
    assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
    assert page["edges"][0]["node"]["revoked"] is False
    assert page["edges"][0]["node"]["parent_types"][-1] == "Stix-Domain-Object"
    # pycti's own paging walks every page
    nodes = api(fake).indicator.list(filters=yara, getAll=True, customAttributes="name")
    assert [n["name"] for n in nodes] == [f"r{i}" for i in range(5)]
    _, empty = post(fake, query, {"filters": {**yara, "filters": [{**yara["filters"][0], "values": ["snort"]}]}})
    assert empty["data"]["indicators"]["pageInfo"] == {"startCursor": "", "endCursor": "", "hasNextPage": False,
                                                      "hasPreviousPage": False, "globalCount": 0}


def test_unmodelled_filter_keys_are_refused(fake):
    query = "query I($filters: FilterGroup) { indicators(filters: $filters) { edges { node { id } } } }"
    _, body = post(fake, query, {"filters": {"mode": "and", "filterGroups": [], "filters": [
        {"key": "x_opencti_workflow_id", "values": ["a"]}]}})
    assert body["errors"][0]["message"] == "fake OpenCTI does not model the filter key 'x_opencti_workflow_id'"


def test_works_answer_ids_and_unknown_works_are_refused(fake):
    message = fake.enrichment_message(
        fake.add_entity({"standard_id": f"ipv4-addr--{uuid.uuid4()}", "entity_type": "IPv4-Addr", "value": "1.1.1.1"}),
        None)
    assert message["internal"]["draft_id"] is None
    work_id = message["internal"]["work_id"]
    _, body = post(fake, "mutation workToProcessed($id: ID!, $message: String, $inError: Boolean) {"
                         " workEdit(id: $id) { toProcessed(message: $message, inError: $inError) } }",
                   {"id": work_id, "message": "done", "inError": False})
    assert body == {"data": {"workEdit": {"toProcessed": work_id}}}
    assert fake.works[work_id]["status"] == "complete"
    _, body = post(fake, "mutation W($id: ID!) { workEdit(id: $id) { ping } }", {"id": "work_unknown"})
    assert body["errors"][0]["message"] == "Work work_unknown not found"


@pytest.mark.services
def test_ping_echoes_state_and_connector_info(fake):
    from vtframework.testing.connector import RABBITMQ, require_service

    require_service(RABBITMQ, "RabbitMQ")  # registering declares the connector's queues
    connector_id = str(uuid.uuid4())
    register = ("mutation R($input: RegisterConnectorInput) { registerConnector(input: $input) {"
                " id connector_state config { s3 { bucket_name } push_exchange } } }")
    _, body = post(fake, register, {"input": {"id": connector_id, "name": "VirusTotal", "type": "STREAM"}})
    assert body["data"]["registerConnector"]["connector_state"] is None
    info = {"run_and_terminate": False, "buffering": False, "queue_threshold": 500.0, "queue_messages_size": 0.0,
            "next_run_datetime": None, "last_run_datetime": None}
    ping = ("mutation P($id: ID!, $state: String, $connectorInfo: ConnectorInfoInput) {"
            " pingConnector(id: $id, state: $state, connectorInfo: $connectorInfo) {"
            " id connector_state connector_info { run_and_terminate queue_threshold } } }")
    _, body = post(fake, ping, {"id": connector_id, "state": '{"start_from": "1-0"}', "connectorInfo": info})
    assert body["data"]["pingConnector"] == {"id": connector_id, "connector_state": '{"start_from": "1-0"}',
                                             "connector_info": {"run_and_terminate": False, "queue_threshold": 500.0}}
    # a replica registering again gets the state back, as from the platform
    _, body = post(fake, register, {"input": {"id": connector_id, "name": "VirusTotal", "type": "STREAM"}})
    assert body["data"]["registerConnector"]["connector_state"] == '{"start_from": "1-0"}'


def zip_of(entries):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return buffer.getvalue()


PE = b"MZ\x90\x00" + b"\x00" * 60 + b"PE\x00\x00" + b"program" * 200
DOCX = zip_of([("[Content_Types].xml", b'<?xml version="1.0"?><Types/>'), ("word/document.xml", b"<w:document/>")])


def upload(fake, data, name, mime):
    return api(fake).stix_cyber_observable.upload_artifact(
        file_name=name, data=data, mime_type=mime, x_opencti_description="test upload")


@pytest.mark.parametrize("version,docx_kept", [("6.9.29", False), ("7.261026.0", True)])
def test_artifact_import_extracts_zip_uploads_like_the_platform(version, docx_kept):
    import hashlib

    with FakeOpenCTI(version=version, token=TOKEN) as fake:
        upload(fake, PE, "plain.exe", "application/x-msdownload")
        assert fake.artifacts[hashlib.sha256(PE).hexdigest()]["data"] == PE
        # a ZIP upload: the platform keeps its first entry (when it can tell the entry's type)
        upload(fake, zip_of([("inner.exe", PE), ("readme.txt", b"hello")]), "bundle.zip", "application/zip")
        assert set(fake.artifacts) == {hashlib.sha256(PE).hexdigest()}
        # an Office document is a ZIP too: recent platforms only store it as it is
        upload(fake, DOCX, "report.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document")
        assert (hashlib.sha256(DOCX).hexdigest() in fake.artifacts) is docx_kept
        stored = fake.artifacts[hashlib.sha256(PE).hexdigest()]
        hashes = {h["algorithm"]: h["hash"] for h in stored["hashes"]}
        assert hashes == {"MD5": hashlib.md5(PE).hexdigest(), "SHA-1": hashlib.sha1(PE).hexdigest(),
                          "SHA-256": hashlib.sha256(PE).hexdigest(), "SHA-512": hashlib.sha512(PE).hexdigest()}
        assert stored["observable_value"] == hashes["SHA-512"]  # what OpenCTI displays
        (file,) = [e["node"] for e in stored["importFiles"]["edges"]]
        download = requests.get(f"{fake.url}/storage/get/{file['id']}", headers={"Authorization": f"Bearer {TOKEN}"},
                                timeout=10)
        assert download.content == PE


def test_versions_are_compared_as_numbers():
    assert version_tuple("7.261026.0") > version_tuple("7.261014.0") > version_tuple("6.9.29")
    with pytest.raises(ValueError):
        version_tuple("7.x")


def test_a_resolver_is_needed_for_every_root_field(monkeypatch):
    monkeypatch.delattr(FakeOpenCTI, "_resolve_workAdd")
    with pytest.raises(TypeError, match="workAdd"):
        FakeOpenCTI()


def test_json_logging_of_recorded_calls_hides_uploaded_content(fake):
    upload(fake, PE, "plain.exe", "application/x-msdownload")
    (call,) = [c for c in fake.calls if c.operation == "ArtifactImport"]
    assert json.dumps(call.variables).count("MZ") == 0 and call.variables["file"] == "<file plain.exe>"
