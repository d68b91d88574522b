"""Fixtures shared by the core's tests (tests/) and each built-in plugin's (plugins/*/tests/).

Cassette settings, the fake VirusTotal, clients answered by a cassette or by the
fake, state stores, a fake clock, and the service fixtures (Redis, RabbitMQ with
the fake OpenCTI) that skip locally without the service and fail under CI=true.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from vtframework.state import RedisState, SQLiteState
from vtframework.testing import FakeClock, FakeVirusTotal, default_vcr_config
from vtframework.vt import ClientConfig, VTClient

SAMPLES_DIR = Path(__file__).parent / "tests" / "samples"
REDIS_URL = os.environ.get("VTF_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def vcr_config() -> dict:
    config = default_vcr_config()
    # --block-network stays on for the world; the fake VirusTotal and Redis live here.
    config["allowed_hosts"] = [r"127\.0\.0\.1", "localhost"]
    return config


@pytest.fixture
def samples_dir() -> Path:
    return SAMPLES_DIR


@pytest.fixture
def fake_vt() -> Iterator[FakeVirusTotal]:
    with FakeVirusTotal(str(SAMPLES_DIR), api_key="test-key") as fake:
        yield fake


@contextlib.contextmanager
def make_client(tmp_path: Path, **config) -> Iterator[VTClient]:
    """A real client on its own SQLite state, a fake clock and no quota detection."""
    state = SQLiteState(str(tmp_path / "state.sqlite3"))
    config = ClientConfig(api_key="test-key", detect_quota=False, requests_per_minute=1000, **config)
    try:
        with VTClient(config, state, clock=FakeClock()) as vt:
            yield vt
    finally:
        state.close()


@pytest.fixture
def client(tmp_path: Path) -> Iterator[VTClient]:
    """A client whose requests the test's cassette answers."""
    with make_client(tmp_path) as vt:
        yield vt


@pytest.fixture
def fake_client(tmp_path: Path, fake_vt: FakeVirusTotal) -> Iterator[VTClient]:
    """A client of the fake VirusTotal, for answers no cassette holds."""
    with make_client(tmp_path, base_url=fake_vt.base_url) as vt:
        yield vt


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sqlite_state(tmp_path: Path) -> Iterator[SQLiteState]:
    store = SQLiteState(str(tmp_path / "state.sqlite3"))
    yield store
    store.close()


def redis_available(url: str = REDIS_URL) -> str | None:
    """None when Redis answers at ``url``, else why not."""
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
        return None
    except redis.RedisError as exc:
        return str(exc)


@pytest.fixture
def redis_url() -> str:
    """The test Redis URL; skips without Redis locally, fails without it in CI (CI=true)."""
    problem = redis_available()
    if problem is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Redis is required in CI but not reachable at {REDIS_URL}: {problem}")
        pytest.skip(f"Redis not reachable at {REDIS_URL} ({problem}); set CI=true to make this a failure")
    return REDIS_URL


@pytest.fixture
def redis_state(redis_url: str) -> Iterator[RedisState]:
    # A prefix of its own per test: tests never see each other's keys, and cleanup is exact.
    store = RedisState(redis_url, prefix=f"vtf:test:{uuid.uuid4().hex}:")
    yield store
    for key in store._redis.scan_iter(f"{store.prefix}*"):
        store._redis.delete(key)
    store.close()


@pytest.fixture(scope="module")
def opencti():
    """A fake OpenCTI platform wired to the real RabbitMQ (one per test module)."""
    from vtframework.testing.connector import RABBITMQ, require_service
    from vtframework.testing.fakeopencti import FakeOpenCTI

    require_service(RABBITMQ, "RabbitMQ")
    with FakeOpenCTI() as fake:
        yield fake
    # The platform would have refused these too: a connector that sends them is broken.
    assert fake.refusals == [], "the fake OpenCTI refused requests:\n" + "\n".join(fake.refusals)
