"""State that breaks is said, not thrown: one line naming the path, what is wrong and what to do.

Each case runs `vtframework enrich` as a user would and checks that nothing
was sent to VirusTotal before the problem was found (no quota spent), or,
where it is safe (a damaged file), that the state was set aside and rebuilt.
Also: `-o` is written atomically, so a full disk never destroys the
previous bundle.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from vtframework.testing import FakeVirusTotal

GOOD = "4bc00f7d638e042da764e8648c03c0db46700599dd4f08d117e3e9e8b538519b"


@pytest.fixture
def fake(samples_dir):
    with FakeVirusTotal(str(samples_dir), api_key="test-key") as vt:
        yield vt


def cli(tmp_path: Path, fake: FakeVirusTotal, *args: str, state: Path | None = None, file_limit: int | None = None,
        **env: str) -> subprocess.CompletedProcess:
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "VTF_EXTERNAL_PLUGINS": "false",
                   "VIRUSTOTAL_TOKEN": "test-key", "VIRUSTOTAL_BASE_URL": fake.base_url,
                   "VIRUSTOTAL_DETECT_QUOTA": "false", "VIRUSTOTAL_REQUESTS_PER_MINUTE": "1000",
                   "VTF_STATE_DIR": str(state or tmp_path / "state"), **env}

    def limit_file_size() -> None:
        # A file may not grow past the limit: writes fail as on a full disk (EFBIG, not a kill).
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    return subprocess.run([sys.executable, "-m", "vtframework", "enrich", *args], cwd=tmp_path, env=environment,
                          capture_output=True, text=True, timeout=120,
                          preexec_fn=limit_file_size if file_limit is not None else None)


def one_line(done: subprocess.CompletedProcess) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def test_a_corrupt_state_is_set_aside_and_rebuilt(tmp_path, fake):
    state = tmp_path / "state"
    state.mkdir()
    (state / "vtframework.sqlite3").write_bytes(b"this is not a database" * 100)
    done = cli(tmp_path, fake, GOOD, "-o", "bundle.json")
    assert done.returncode == 0, done.stderr
    assert "is damaged (file is not a database); it was set aside as" in done.stderr
    aside = [p for p in state.iterdir() if ".corrupt-" in p.name]
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not a database")
    assert sqlite3.connect(state / "vtframework.sqlite3").execute("SELECT count(*) FROM cache").fetchone()[0] >= 1


def test_a_truncated_state_is_set_aside_and_rebuilt(tmp_path, fake):
    assert cli(tmp_path, fake, GOOD, "-o", "bundle.json").returncode == 0
    db = tmp_path / "state" / "vtframework.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with open(db, "r+b") as handle:
        handle.truncate(db.stat().st_size // 2)
    done = cli(tmp_path, fake, GOOD, "-o", "bundle.json")
    assert done.returncode == 0, done.stderr
    assert "is damaged (database disk image is malformed); it was set aside" in done.stderr


def state_file(tmp_path: Path, sql: str) -> Path:
    """A state directory whose SQLite file someone else wrote (``sql`` run in it)."""
    state = tmp_path / "state"
    state.mkdir()
    with sqlite3.connect(state / "vtframework.sqlite3") as conn:
        conn.execute(sql)
    return state


def test_a_state_with_another_schema_stops_before_any_request(tmp_path, fake):
    state = state_file(tmp_path, "CREATE TABLE cache (url TEXT, body BLOB)")
    done = cli(tmp_path, fake, GOOD)
    assert done.returncode == 2
    assert one_line(done) == (
        f"vtframework: the state file {state / 'vtframework.sqlite3'} was not written by vtframework: its table "
        "cache has the columns url, body, not key, value, expires_at, used_at, size; move it away or set "
        "VTF_STATE_DIR to another directory"
    )
    assert fake.requests == []


def test_a_state_from_a_newer_version_is_left_alone(tmp_path, fake):
    state_file(tmp_path, "PRAGMA user_version = 7")
    done = cli(tmp_path, fake, GOOD)
    assert done.returncode == 2 and "written by a newer vtframework (schema 7" in one_line(done)
    assert fake.requests == []


def test_a_state_directory_that_is_a_file(tmp_path, fake):
    (tmp_path / "state").write_text("oops")
    done = cli(tmp_path, fake, GOOD)
    assert done.returncode == 2
    assert one_line(done) == (
        f"vtframework: the state directory {tmp_path / 'state'} is a file, not a directory; set VTF_STATE_DIR "
        "to a directory (it is created when missing)"
    )
    assert fake.requests == []


def test_a_state_file_that_is_a_directory(tmp_path, fake):
    (tmp_path / "state" / "vtframework.sqlite3").mkdir(parents=True)
    done = cli(tmp_path, fake, GOOD)
    assert done.returncode == 2 and "cannot open the state file" in one_line(done)
    assert fake.requests == []


def test_a_missing_state_directory_is_created(tmp_path, fake):
    done = cli(tmp_path, fake, GOOD, "-o", "bundle.json", state=tmp_path / "a" / "b" / "state")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "a" / "b" / "state" / "vtframework.sqlite3").is_file()


def test_a_full_disk_is_found_before_any_quota_is_spent(tmp_path, fake):
    done = cli(tmp_path, fake, GOOD, file_limit=0)
    assert done.returncode == 2
    line = one_line(done)
    assert str(tmp_path / "state" / "vtframework.sqlite3") in line and "the disk may be full" in line
    assert fake.requests == []


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """``directory`` read-only for this test's processes: by permissions, or (as root) a read-only mount."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [directory, *directory.iterdir()]}
        for path in modes:
            path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
        return
    # Root writes through permissions: bind the directory read-only over itself.
    bound = subprocess.run(["mount", "--bind", str(directory), str(directory)], capture_output=True)
    if bound.returncode != 0:
        pytest.skip(f"cannot make a read-only directory as root here: {bound.stderr.decode().strip()}")
    try:
        remount = subprocess.run(["mount", "-o", "remount,bind,ro", str(directory)], capture_output=True)
        if remount.returncode != 0:
            pytest.skip(f"cannot remount read-only here: {remount.stderr.decode().strip()}")
        yield
    finally:
        subprocess.run(["umount", str(directory)], capture_output=True)


def test_a_read_only_state_stops_before_any_request(tmp_path, fake):
    assert cli(tmp_path, fake, GOOD, "-o", "bundle.json").returncode == 0
    fake.clear_log()
    with read_only(tmp_path / "state"):
        done = cli(tmp_path, fake, GOOD)
    assert done.returncode == 2
    line = one_line(done)
    assert str(tmp_path / "state" / "vtframework.sqlite3") in line
    assert "is read-only" in line and "set VTF_STATE_DIR to a writable directory" in line
    assert fake.requests == []


# -- the bundle file ------------------------------------------------------------------------
@pytest.mark.services
def test_a_full_disk_never_destroys_the_previous_bundle(tmp_path, fake, redis_url):
    # State in Redis: the only file this run writes is the bundle.
    redis = {"VTF_REDIS_URL": redis_url, "VIRUSTOTAL_CACHE_TTL": "0"}
    first = cli(tmp_path, fake, GOOD, "-o", "bundle.json", **redis)
    assert first.returncode == 0, first.stderr
    previous = (tmp_path / "bundle.json").read_bytes()
    assert len(previous) > 8192

    done = cli(tmp_path, fake, GOOD, "138.128.150.133", "-o", "bundle.json", file_limit=8192, **redis)
    assert done.returncode == 1
    assert (tmp_path / "bundle.json").read_bytes() == previous  # whole, not half-written
    assert "VALUE" in done.stderr and "138.128.150.133" in done.stderr  # the summary still comes
    assert "vtframework: cannot write the bundle to bundle.json (File too large); any previous file there is " \
           "unchanged" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".bundle")) == []  # no leftover


def test_an_output_that_cannot_be_written_is_refused_before_any_request(tmp_path, fake):
    done = cli(tmp_path, fake, GOOD, "-o", str(tmp_path / "missing" / "bundle.json"))
    assert done.returncode == 2 and "does not exist" in one_line(done)
    (tmp_path / "out").mkdir()
    done = cli(tmp_path, fake, GOOD, "-o", "out")
    assert done.returncode == 2 and "is a directory" in one_line(done)
    assert fake.requests == []


def test_a_new_bundle_replaces_the_old_one_with_the_same_permissions(tmp_path, fake):
    target = tmp_path / "bundle.json"
    target.write_text("{}")
    target.chmod(0o640)
    assert cli(tmp_path, fake, GOOD, "-o", "bundle.json").returncode == 0
    assert json.loads(target.read_text())["type"] == "bundle"
    assert target.stat().st_mode & 0o777 == 0o640


def test_damaged_redis_entries_count_as_absent(redis_url, tmp_path, fake):
    prefix = f"vtf:test:{uuid.uuid4().hex}:"
    from vtframework.state import RedisState

    store = RedisState(redis_url, prefix=prefix)
    try:
        store._redis.set(f"{prefix}cache:broken", b"\xff not json")
        store._redis.hset(f"{prefix}kv:livehunt", "indicator--1", b"{not json")
        assert store.cache_get("broken", 0) is None
        assert store.kv_items("livehunt") == {}
    finally:
        for key in store._redis.scan_iter(f"{prefix}*"):
            store._redis.delete(key)
        store.close()
