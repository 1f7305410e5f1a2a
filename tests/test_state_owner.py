"""Each record names its owner: stores older than the column are upgraded once (also with
two processes opening them at once), a bound store stamps its owner, and a deployment
recorded under two owners is refused."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time

import pytest

from llmship.errors import DeployError
from llmship.state import Kind, StateStore
from llmship.target import recorded_target, target_of

# The schema before resources named their owner, as stores written then hold it.
OLD_SCHEMA = """
CREATE TABLE resources (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    region TEXT NOT NULL DEFAULT '',
    deployment TEXT NOT NULL,
    project TEXT NOT NULL,
    status TEXT NOT NULL,
    details TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (kind, name, region)
);
CREATE TABLE history (
    at REAL NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, region TEXT NOT NULL,
    deployment TEXT NOT NULL, event TEXT NOT NULL, details TEXT NOT NULL DEFAULT '{}'
);
"""
GATEWAY = {"gateway_route": "r"}
BEDROCK_ROLE = {"service": "bedrock"}
# deployment -> its records (kind, name, details), and the owner its kinds imply.
OLD_DEPLOYMENTS = {
    "loc": ([("local:server", "loc", {"pid": 1})], "local"),
    "sm": (
        [
            ("sagemaker:model", "sm-v1", {}),
            ("sagemaker:endpoint-config", "sm-v1", {}),
            ("sagemaker:endpoint", "sm", {"instance": "ml.g5.xlarge"}),
            ("iam:role-policy", "role/llmship-secret-sm", {}),
        ],
        "sagemaker",
    ),
    "br": (
        [
            ("iam:role", "llmship-bedrock-br", BEDROCK_ROLE),
            ("bedrock:custom-model", "br", {}),
            ("bedrock:provisioned-throughput", "br", {}),
        ],
        "bedrock",
    ),
    # Only the role says Bedrock: a run killed after the role, before the job.
    "br-role": (
        [("s3:artifact", "s3://b/br-role/", {}), ("iam:role", "llmship-br-role", BEDROCK_ROLE)],
        "bedrock",
    ),
    "bi": (
        [
            ("iam:role", "llmship-bedrock-bi", BEDROCK_ROLE),
            ("bedrock:model-import-job", "bi-job", {}),
            ("bedrock:imported-model", "bi", {}),
        ],
        "bedrock-import",
    ),
    "gw": (
        [
            ("dynamodb:table", "gw", GATEWAY),
            ("iam:role", "llmship-gw", GATEWAY),
            ("lambda:function", "gw", GATEWAY),
            ("apigateway:rest-api", "gw", GATEWAY),
        ],
        "gateway",
    ),
}


def write_old_store(path) -> None:
    """A store as written before the owner column, with a history row per record."""
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    at = 1000.0
    for deployment, (records, _) in OLD_DEPLOYMENTS.items():
        for kind, name, details in records:
            at += 1
            db.execute(
                "INSERT INTO resources VALUES (?, ?, 'us-east-1', ?, 'proj', 'UP', ?, ?, ?)",
                (kind, name, deployment, json.dumps(details), at, at),
            )
            db.execute(
                "INSERT INTO history VALUES (?, ?, ?, 'us-east-1', ?, 'creating', ?)",
                (at, kind, name, deployment, json.dumps(details)),
            )
    db.commit()
    db.close()


def rows(path, table: str) -> list[tuple]:
    db = sqlite3.connect(path)
    try:
        return db.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
    finally:
        db.close()


def owners_by_deployment(store: StateStore) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for resource in store.resources():
        out.setdefault(resource.deployment, set()).add(resource.owner)
    return out


def test_an_old_store_gets_each_deployment_its_owner_once(tmp_path):
    path = tmp_path / "state.db"
    write_old_store(path)
    old_resources, old_history = rows(path, "resources"), rows(path, "history")

    store = StateStore(path)

    expected = {deployment: {owner} for deployment, (_, owner) in OLD_DEPLOYMENTS.items()}
    assert owners_by_deployment(store) == expected
    for deployment, (_, owner) in OLD_DEPLOYMENTS.items():
        assert target_of(store.resources(deployment)) == owner
    # The rows are as they were, with the owner added; the history is not touched.
    upgraded = rows(path, "resources")
    assert [row[:-1] for row in upgraded] == old_resources
    assert rows(path, "history") == old_history
    # Opening it again changes nothing.
    StateStore(path)
    assert rows(path, "resources") == upgraded
    assert rows(path, "history") == old_history


OPENER = """
import sys
from llmship.state import StateStore
store = StateStore(sys.argv[1])
print(sorted({(r.deployment, r.owner) for r in store.resources()}))
"""


def test_processes_opening_an_old_store_at_once_all_succeed(tmp_path):
    path = tmp_path / "state.db"
    write_old_store(path)
    # Hold the write lock (old stores are WAL too) until every process is waiting on it,
    # so that they all open the old store at once.
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("BEGIN IMMEDIATE")
    openers = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    time.sleep(3.0)
    assert all(opener.poll() is None for opener in openers)  # all waiting, none done
    holder.execute("COMMIT")
    holder.close()
    expected = sorted((deployment, owner) for deployment, (_, owner) in OLD_DEPLOYMENTS.items())
    for opener in openers:
        out, err = opener.communicate(timeout=120)
        assert opener.returncode == 0, err
        assert out.strip() == str(expected)
    columns = [row[1] for row in sqlite3.connect(path).execute("PRAGMA table_info(resources)")]
    assert columns.count("owner") == 1


def test_a_bound_store_stamps_its_owner(tmp_path):
    store = StateStore(tmp_path / "state.db")
    store.owned_by("x").record_creating(Kind.SAGEMAKER_ENDPOINT, "ep", "dep", "proj", "eu-west-1")
    [resource] = store.resources("dep")
    assert resource.owner == "x"
    assert target_of(store.resources("dep")) == "x"
    assert recorded_target(store, "dep") == "x"
    assert recorded_target(store, "nothing-recorded") is None

    # Bound, the store's owner wins over what the kind implies (local:server -> local).
    store.owned_by("sagemaker").record_creating(Kind.LOCAL_SERVER, "srv", "srv", "proj")
    assert [r.owner for r in store.resources("srv")] == ["sagemaker"]
    assert target_of(store.resources("srv")) == "sagemaker"

    # Unbound, a record joins its deployment's recorded owner, else the implied one.
    store.record_creating(Kind.S3_ARTIFACT, "s3://b/dep/", "dep", "proj", "eu-west-1")
    store.record_creating(Kind.LOCAL_SERVER, "alone", "alone", "proj")
    assert {r.owner for r in store.resources("dep")} == {"x"}
    assert target_of(store.resources("alone")) == "local"


def test_a_deployment_under_two_owners_is_refused(tmp_path):
    store = StateStore(tmp_path / "state.db")
    store.owned_by("sagemaker").record_creating(Kind.SAGEMAKER_ENDPOINT, "both", "both", "p")
    store.owned_by("bedrock").record_creating(Kind.BEDROCK_CUSTOM_MODEL, "both", "both", "p")
    with pytest.raises(DeployError, match="both") as refused:
        target_of(store.resources("both"))
    assert "bedrock" in str(refused.value) and "sagemaker" in str(refused.value)
    with pytest.raises(DeployError, match=r"bedrock.*sagemaker"):
        recorded_target(store, "both")
