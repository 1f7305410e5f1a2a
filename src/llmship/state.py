"""The record of everything llmship creates in the cloud: a local cache of what exists.

SQLite in WAL mode with a busy timeout, so two llmship processes can use it at once.
A resource is written as CREATING before the create call and marked UP once it exists,
so a process killed in between still leaves a record `destroy` can act on; it is
removed only after its deletion succeeded, and every change is appended to a history
table (for cost reports). A store that is not a database is moved aside as a backup
and reported, never silently overwritten.

Each resource names its owner, the target whose `destroy` removes it (local, sagemaker,
bedrock, bedrock-import, gateway), written with its CREATING record by a store bound to
that target (`owned_by`). Stores written before the column existed are upgraded once
when opened: the column is added and each deployment's rows get the owner its kinds
imply (`implied_owner`, the rule `status` and `destroy` used before the column).

Location: $LLMSHIP_HOME/state.db, default ~/.llmship/state.db.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from llmship.errors import StateError

SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    kind TEXT NOT NULL,             -- e.g. sagemaker:endpoint, s3:object, iam:role
    name TEXT NOT NULL,             -- the resource's name or ARN
    region TEXT NOT NULL DEFAULT '',
    deployment TEXT NOT NULL,       -- llmship:deployment tag
    project TEXT NOT NULL,          -- llmship:project tag
    status TEXT NOT NULL,           -- CREATING, UP, DELETING
    details TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL,
    updated REAL NOT NULL,
    owner TEXT NOT NULL DEFAULT '',  -- the target whose destroy removes it
    PRIMARY KEY (kind, name, region)
);
CREATE TABLE IF NOT EXISTS history (
    at REAL NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, region TEXT NOT NULL,
    deployment TEXT NOT NULL, event TEXT NOT NULL, details TEXT NOT NULL DEFAULT '{}'
);
"""
COLUMNS = "kind, name, region, deployment, project, status, details, created, updated, owner"


class Kind(StrEnum):
    """What a record is: `<service>:<resource>`, the same string in the store, in plans and
    in `status --discover`. Every kind llmship creates is listed here and nowhere else."""

    LOCAL_SERVER = "local:server"
    SAGEMAKER_MODEL = "sagemaker:model"
    SAGEMAKER_ENDPOINT_CONFIG = "sagemaker:endpoint-config"
    SAGEMAKER_ENDPOINT = "sagemaker:endpoint"
    SAGEMAKER_TRAINING_JOB = "sagemaker:training-job"
    S3_BUCKET = "s3:bucket"
    S3_ARTIFACT = "s3:artifact"
    S3_PREFIX = "s3:prefix"
    IAM_ROLE = "iam:role"
    IAM_ROLE_POLICY = "iam:role-policy"
    SECRET = "secretsmanager:secret"
    VPC_ENDPOINT = "ec2:vpc-endpoint"
    SCALING_TARGET = "autoscaling:target"
    SCALING_POLICY = "autoscaling:policy"
    ALARM = "cloudwatch:alarm"
    SCHEDULE = "scheduler:schedule"
    QUEUE = "sqs:queue"
    BEDROCK_CUSTOMIZATION_JOB = "bedrock:customization-job"
    BEDROCK_CUSTOM_MODEL = "bedrock:custom-model"
    BEDROCK_DEPLOYMENT = "bedrock:custom-model-deployment"
    BEDROCK_PROVISIONED_THROUGHPUT = "bedrock:provisioned-throughput"
    BEDROCK_IMPORT_JOB = "bedrock:model-import-job"
    BEDROCK_IMPORTED_MODEL = "bedrock:imported-model"
    LAMBDA_FUNCTION = "lambda:function"
    REST_API = "apigateway:rest-api"
    USAGE_PLAN = "apigateway:usage-plan"
    API_KEY = "apigateway:api-key"
    DYNAMODB_TABLE = "dynamodb:table"


TAG_PREFIX = "llmship:"


def tags(project: str, deployment: str, run: str) -> dict[str, str]:
    """The llmship:* tags on everything a deployment creates: how `status --discover`
    finds it again and how the IAM policies scope their grants."""
    return {
        f"{TAG_PREFIX}project": project,
        f"{TAG_PREFIX}deployment": deployment,
        f"{TAG_PREFIX}run": run,
    }


def tag_list(values: dict[str, str]) -> list[dict[str, str]]:
    """Tags as most AWS APIs take them: [{"Key": ..., "Value": ...}]."""
    return [{"Key": key, "Value": value} for key, value in values.items()]


class Status(StrEnum):
    """Where a resource is in its life: written before its create call, UP once it exists,
    DELETING while its deletion runs (a record is removed only after that succeeded)."""

    CREATING = "CREATING"
    UP = "UP"
    DELETING = "DELETING"


STATUSES = tuple(Status)


@dataclass(frozen=True)
class Resource:
    kind: str
    name: str
    region: str
    deployment: str
    project: str
    status: str
    details: dict[str, Any]
    created: float
    updated: float
    owner: str = ""


def implied_owner(resources: list[Resource]) -> str:
    """The target a deployment's kinds imply: the rule used before the owner was recorded,
    kept to upgrade old stores and for records written without a bound store."""
    kinds = {r.kind for r in resources}
    if any(r.details.get("gateway_route") for r in resources):
        return "gateway"
    if kinds and all(kind.startswith("local:") for kind in kinds):
        return "local"
    if kinds & {Kind.BEDROCK_IMPORT_JOB, Kind.BEDROCK_IMPORTED_MODEL}:
        return "bedrock-import"
    if any(kind.startswith("bedrock:") for kind in kinds) or any(
        r.kind == Kind.IAM_ROLE and r.details.get("service") == "bedrock" for r in resources
    ):
        return "bedrock"
    return "sagemaker"


@contextmanager
def connect(path: Path, timeout_s: float, transaction: bool = True) -> Iterator[sqlite3.Connection]:
    """A WAL connection in one write transaction taken at once (so writers queue behind a
    busy timeout instead of failing); shared by every SQLite store llmship keeps."""
    db = sqlite3.connect(path, timeout=timeout_s, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
        if not transaction:
            yield db
            return
        db.execute("BEGIN IMMEDIATE")
        yield db
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    finally:
        db.close()


def state_path() -> Path:
    """$LLMSHIP_HOME/state.db (default ~/.llmship/state.db)."""
    home = Path(os.environ.get("LLMSHIP_HOME", Path.home() / ".llmship"))
    return home / "state.db"


class StateStore:
    """Resources llmship created, and their history."""

    def __init__(
        self, path: str | Path | None = None, timeout_s: float = 30.0, owner: str | None = None
    ):
        self.path = Path(path) if path is not None else state_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.timeout_s = timeout_s
        self.owner = owner
        try:
            with self._connect(transaction=False) as db:
                db.executescript(SCHEMA)
                _add_owner_column(db)
        except sqlite3.OperationalError as exc:  # locked, read-only, disk full: not corrupt
            raise StateError(f"cannot open the state store {self.path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            backup = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            shutil.move(self.path, backup)
            raise StateError(
                f"the state store {self.path} is not a valid database ({exc}); it was moved to "
                f"{backup} and a new, empty store starts in its place (the resources it listed "
                "still carry their llmship:* tags in the cloud: "
                "`llmship status --discover --adopt` records them again)"
            ) from exc

    def _connect(self, transaction: bool = True):
        return connect(self.path, self.timeout_s, transaction)

    def owned_by(self, owner: str) -> StateStore:
        """The same store, writing `owner` into every record it creates: a target hands this
        to the helpers that create resources for it (roles, secrets, schedules)."""
        bound = object.__new__(StateStore)
        bound.path, bound.timeout_s, bound.owner = self.path, self.timeout_s, owner
        return bound

    def _owner_for(self, db, kind: str, deployment: str, details: dict | None) -> str:
        """The bound owner; else the deployment's recorded one; else what its kinds imply."""
        if self.owner:
            return self.owner
        row = db.execute(
            "SELECT owner FROM resources WHERE deployment=? AND owner != '' LIMIT 1", (deployment,)
        ).fetchone()
        if row is not None:
            return row[0]
        probe = Resource(kind, "", "", deployment, "", Status.CREATING, details or {}, 0.0, 0.0)
        return implied_owner([probe])

    def record_creating(
        self,
        kind: str,
        name: str,
        deployment: str,
        project: str,
        region: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        """Write the record before the create call (so a crash leaves a trace to clean)."""
        now = time.time()
        with self._connect() as db:
            owner = self._owner_for(db, kind, deployment, details)
            db.execute(
                f"INSERT INTO resources ({COLUMNS}) VALUES (?, ?, ?, ?, ?, 'CREATING', ?, ?, ?, ?) "
                "ON CONFLICT (kind, name, region) DO UPDATE SET status='CREATING', "
                "details=excluded.details, updated=excluded.updated, owner=excluded.owner",
                _row(kind, name, region, deployment, project, details, now, owner),
            )
            self._log(db, kind, name, region, deployment, "creating", details)

    def adopt(
        self,
        kind: str,
        name: str,
        deployment: str,
        project: str,
        region: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        """Record a resource found in the cloud (status --discover --adopt) as UP; a
        resource already recorded is left as it is."""
        now = time.time()
        with self._connect() as db:
            owner = self._owner_for(db, kind, deployment, details)
            inserted = db.execute(
                f"INSERT INTO resources ({COLUMNS}) VALUES (?, ?, ?, ?, ?, 'UP', ?, ?, ?, ?) "
                "ON CONFLICT (kind, name, region) DO NOTHING",
                _row(kind, name, region, deployment, project, details, now, owner),
            ).rowcount
            if inserted:
                self._log(db, kind, name, region, deployment, "adopted", details)

    def set_status(
        self,
        kind: str,
        name: str,
        status: str,
        region: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        """UP once it exists, DELETING while its deletion runs."""
        if status not in STATUSES:
            raise StateError(f"unknown status {status!r}; one of {', '.join(STATUSES)}")
        with self._connect() as db:
            row = db.execute(
                "SELECT deployment, details FROM resources WHERE kind=? AND name=? AND region=?",
                (kind, name, region),
            ).fetchone()
            if row is None:
                raise StateError(f"{kind} {name} is not in the state store")
            merged = {**json.loads(row[1]), **(details or {})}
            db.execute(
                "UPDATE resources SET status=?, details=?, updated=? WHERE kind=? AND "
                "name=? AND region=?",
                (status, json.dumps(merged), time.time(), kind, name, region),
            )
            self._log(db, kind, name, region, row[0], status.lower(), details)

    def remove(self, kind: str, name: str, region: str = "") -> None:
        """Forget a resource after its deletion succeeded (a no-op if already gone)."""
        with self._connect() as db:
            row = db.execute(
                "SELECT deployment FROM resources WHERE kind=? AND name=? AND region=?",
                (kind, name, region),
            ).fetchone()
            if row is None:
                return
            db.execute(
                "DELETE FROM resources WHERE kind=? AND name=? AND region=?", (kind, name, region)
            )
            self._log(db, kind, name, region, row[0], "deleted", None)

    def resources(
        self, deployment: str | None = None, project: str | None = None
    ) -> list[Resource]:
        """Recorded resources, oldest first, optionally of one deployment or project."""
        query, args = f"SELECT {COLUMNS} FROM resources WHERE 1=1", []
        if deployment is not None:
            query, args = query + " AND deployment=?", [*args, deployment]
        if project is not None:
            query, args = query + " AND project=?", [*args, project]
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY created, rowid", args).fetchall()
        return [_resource(row) for row in rows]

    def history(self, deployment: str | None = None) -> list[dict[str, Any]]:
        """Every recorded event, oldest first."""
        query = "SELECT at, kind, name, region, deployment, event, details FROM history"
        args: list[str] = []
        if deployment is not None:
            query, args = query + " WHERE deployment=?", [deployment]
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY rowid", args).fetchall()
        keys = ("at", "kind", "name", "region", "deployment", "event", "details")
        return [
            {**dict(zip(keys, row, strict=True)), "details": json.loads(row[6])} for row in rows
        ]

    @staticmethod
    def _log(db, kind, name, region, deployment, event, details) -> None:
        db.execute(
            "INSERT INTO history VALUES (?, ?, ?, ?, ?, ?, ?)",
            (time.time(), kind, name, region, deployment, event, json.dumps(details or {})),
        )


def _row(kind, name, region, deployment, project, details, now, owner) -> tuple:
    """A new record's values in COLUMNS order but status (the statement sets it)."""
    return (kind, name, region, deployment, project, json.dumps(details or {}), now, now, owner)


def _resource(row: tuple) -> Resource:
    """A row of `SELECT {COLUMNS}` as a Resource."""
    kind, name, region, deployment, project, status, details, created, updated, owner = row
    return Resource(
        kind,
        name,
        region,
        deployment,
        project,
        status,
        json.loads(details),
        created,
        updated,
        owner,
    )


def _add_owner_column(db: sqlite3.Connection) -> None:
    """Upgrade a store written before resources named their owner: add the column and
    fill it, once, per deployment, with the owner its kinds imply."""
    db.execute("BEGIN IMMEDIATE")  # a second process waits here, then finds the column
    columns = {row[1] for row in db.execute("PRAGMA table_info(resources)")}
    if "owner" in columns:
        db.execute("COMMIT")
        return
    db.execute("ALTER TABLE resources ADD COLUMN owner TEXT NOT NULL DEFAULT ''")
    rows = db.execute(f"SELECT {COLUMNS} FROM resources").fetchall()
    by_deployment: dict[str, list[Resource]] = {}
    for row in rows:
        resource = _resource(row)
        by_deployment.setdefault(resource.deployment, []).append(resource)
    for deployment, resources in by_deployment.items():
        db.execute(
            "UPDATE resources SET owner=? WHERE deployment=?",
            (implied_owner(resources), deployment),
        )
    db.execute("COMMIT")
