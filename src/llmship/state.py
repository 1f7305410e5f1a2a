"""The record of everything llmship creates in the cloud: a local cache of what exists.

SQLite in WAL mode with a busy timeout, so two llmship processes can use it at once.
A resource is written as CREATING before the create call and marked UP once it exists,
so a process killed in between still leaves a record `destroy` can act on; it is
removed only after its deletion succeeded, and every change is appended to a history
table (for cost reports). A store that is not a database is moved aside as a backup
and reported, never silently overwritten.

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
    PRIMARY KEY (kind, name, region)
);
CREATE TABLE IF NOT EXISTS history (
    at REAL NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, region TEXT NOT NULL,
    deployment TEXT NOT NULL, event TEXT NOT NULL, details TEXT NOT NULL DEFAULT '{}'
);
"""
STATUSES = ("CREATING", "UP", "DELETING")


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

    def __init__(self, path: str | Path | None = None, timeout_s: float = 30.0):
        self.path = Path(path) if path is not None else state_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.timeout_s = timeout_s
        try:
            with self._connect(transaction=False) as db:
                db.executescript(SCHEMA)
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
            db.execute(
                "INSERT INTO resources VALUES (?, ?, ?, ?, ?, 'CREATING', ?, ?, ?) "
                "ON CONFLICT (kind, name, region) DO UPDATE SET status='CREATING', "
                "details=excluded.details, updated=excluded.updated",
                (kind, name, region, deployment, project, json.dumps(details or {}), now, now),
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
            inserted = db.execute(
                "INSERT INTO resources VALUES (?, ?, ?, ?, ?, 'UP', ?, ?, ?) "
                "ON CONFLICT (kind, name, region) DO NOTHING",
                (kind, name, region, deployment, project, json.dumps(details or {}), now, now),
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
        query, args = "SELECT * FROM resources WHERE 1=1", []
        if deployment is not None:
            query, args = query + " AND deployment=?", [*args, deployment]
        if project is not None:
            query, args = query + " AND project=?", [*args, project]
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY created, rowid", args).fetchall()
        return [
            Resource(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), r[7], r[8]) for r in rows
        ]

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
