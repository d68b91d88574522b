"""An Artifact's file read from OpenCTI storage for an enrichment: streamed, and a failure named."""

from __future__ import annotations

import hashlib
import socket
import uuid
from types import SimpleNamespace

import pytest

from vtframework.errors import InputError
from vtframework.opencti.enrichment import EnrichmentConnector
from vtframework.testing.fakeopencti import FakeOpenCTI

TOKEN = str(uuid.uuid4())
SAMPLE = b"MZ" + bytes(range(256)) * 40_000  # about 10 MB: beyond the in-memory part of the spool


@pytest.fixture(scope="module")
def opencti():
    with FakeOpenCTI(token=TOKEN) as fake:
        yield fake


def reader(opencti):
    """The connector's file reader on pycti's real API client, without a queue or a VirusTotal client."""
    from pycti import OpenCTIApiClient

    connector = EnrichmentConnector.__new__(EnrichmentConnector)
    connector.helper = SimpleNamespace(opencti_url=opencti.url, api=OpenCTIApiClient(opencti.url, TOKEN,
                                                                                      log_level="error"))
    return connector._open_file


def test_the_stored_file_comes_back_byte_for_byte(opencti):
    from pycti import OpenCTIApiClient

    client = OpenCTIApiClient(opencti.url, TOKEN, log_level="error")
    client.stix_cyber_observable.upload_artifact(file_name="sample.exe", data=SAMPLE,
                                                 mime_type="application/octet-stream", x_opencti_description="sample")
    stored = opencti.artifacts[hashlib.sha256(SAMPLE).hexdigest()]
    (file,) = [edge["node"] for edge in stored["importFiles"]["edges"]]
    with reader(opencti)(file) as spool:
        assert spool._rolled  # on disk, not held in memory
        assert hashlib.sha256(spool.read()).hexdigest() == hashlib.sha256(SAMPLE).hexdigest()


def test_a_file_opencti_does_not_return_is_named_with_its_status(opencti):
    missing = f"import/Artifact/{uuid.uuid4()}/gone.exe"
    with pytest.raises(InputError) as raised:
        reader(opencti)({"id": missing})
    assert str(raised.value) == (f"OpenCTI did not return the file {missing} of this Artifact (HTTP 404); "
                                 "nothing was sent to VirusTotal")


def test_an_unreachable_platform_is_named_not_a_type_error(opencti):
    read = reader(opencti)
    with socket.socket() as probe:  # a port nothing listens on: the connection is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    read.__self__.helper.opencti_url = f"http://127.0.0.1:{port}"
    with pytest.raises(InputError) as raised:
        read({"id": "import/Artifact/x/sample.exe"})
    assert str(raised.value) == ("OpenCTI did not return the file import/Artifact/x/sample.exe of this Artifact "
                                 "(ConnectionError); nothing was sent to VirusTotal")
