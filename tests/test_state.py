"""The state store: lifecycle records, history, two processes at once, a corrupt file."""

from __future__ import annotations

import subprocess
import sys

import pytest

from llmship.errors import StateError
from llmship.state import StateStore, state_path


def test_lifecycle_and_history(tmp_path):
    store = StateStore(tmp_path / "state.db")
    store.record_creating(
        "sagemaker:endpoint", "demo-ep", "demo", "proj", "us-east-1", {"instance": "ml.g5.xlarge"}
    )
    [resource] = store.resources()
    assert (resource.status, resource.deployment, resource.details) == (
        "CREATING",
        "demo",
        {"instance": "ml.g5.xlarge"},
    )
    store.set_status("sagemaker:endpoint", "demo-ep", "UP", "us-east-1", {"arn": "arn:x"})
    assert store.resources(deployment="demo")[0].details == {
        "instance": "ml.g5.xlarge",
        "arn": "arn:x",
    }
    assert store.resources(deployment="other") == []
    store.remove("sagemaker:endpoint", "demo-ep", "us-east-1")
    store.remove("sagemaker:endpoint", "demo-ep", "us-east-1")  # idempotent
    assert store.resources() == []
    assert [e["event"] for e in store.history("demo")] == ["creating", "up", "deleted"]
    with pytest.raises(StateError, match="not in the state store"):
        store.set_status("sagemaker:endpoint", "demo-ep", "UP", "us-east-1")
    with pytest.raises(StateError, match="unknown status"):
        store.set_status("sagemaker:endpoint", "x", "RUNNING")


def test_llmship_home_moves_the_store(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMSHIP_HOME", str(tmp_path / "home"))
    assert state_path() == tmp_path / "home" / "state.db"
    StateStore().record_creating("s3:object", "a", "d", "p")
    assert (tmp_path / "home" / "state.db").is_file()


WRITER = """
import sys
from llmship.state import StateStore
store = StateStore(sys.argv[1])
for i in range(150):
    store.record_creating("s3:object", f"{sys.argv[2]}-{i}", "d", "p")
    store.set_status("s3:object", f"{sys.argv[2]}-{i}", "UP")
"""


def test_two_processes_write_at_once(tmp_path):
    path = tmp_path / "state.db"
    StateStore(path)
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), name], stderr=subprocess.PIPE, text=True
        )
        for name in ("a", "b")
    ]
    for writer in writers:
        assert writer.wait(timeout=120) == 0, writer.stderr.read()
    resources = StateStore(path).resources()
    assert len(resources) == 300 and {r.status for r in resources} == {"UP"}


def test_a_corrupt_store_is_reported_and_kept_as_a_backup(tmp_path):
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StateError, match=r"not a valid database.*moved to .*llmship:\* tags"):
        StateStore(path)
    [backup] = tmp_path.glob("state.db.corrupt-*")
    assert backup.read_bytes() == b"this is not sqlite" * 100
    assert StateStore(path).resources() == []  # a fresh store takes its place
