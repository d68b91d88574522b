"""Fixtures of the livehunt plugin's tests: a fresh fake VirusTotal, and the state on SQLite and on Redis."""

from __future__ import annotations

import pytest

from vtframework.testing import FakeVirusTotal


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.services)])
def store(request):
    """Each test runs on both stores: SQLite, and Redis (skipped locally without Redis, required in CI)."""
    return request.getfixturevalue(f"{request.param}_state")


@pytest.fixture
def vt():
    with FakeVirusTotal(api_key="test-key") as fake:
        yield fake
