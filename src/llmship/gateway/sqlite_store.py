"""The gateway store on this machine: SQLite in WAL mode beside the state store."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from llmship.errors import StateError
from llmship.gateway.keys import KeyRecord
from llmship.gateway.store import RequestLog
from llmship.state import connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    key_id TEXT PRIMARY KEY, digest TEXT NOT NULL, name TEXT NOT NULL, routes TEXT NOT NULL,
    rpm INTEGER NOT NULL, tpd INTEGER NOT NULL, created REAL NOT NULL, revoked REAL,
    details TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS counters (
    key_id TEXT NOT NULL, window TEXT NOT NULL, value INTEGER NOT NULL, expires REAL NOT NULL,
    PRIMARY KEY (key_id, window)
);
CREATE TABLE IF NOT EXISTS requests (
    at REAL NOT NULL, key_id TEXT NOT NULL, route TEXT NOT NULL, target TEXT NOT NULL,
    status INTEGER NOT NULL, latency_ms REAL NOT NULL, prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL, stream INTEGER NOT NULL, prompt TEXT
);
CREATE INDEX IF NOT EXISTS requests_at ON requests (at);
"""


class SqliteStore:
    """Keys, counters and the request log in one SQLite file."""

    def __init__(self, path: str | Path, timeout_s: float = 30.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.timeout_s = timeout_s
        try:
            with self._connect(transaction=False) as db:
                db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise StateError(f"cannot open the gateway store {self.path}: {exc}") from exc

    def _connect(self, transaction: bool = True):
        return connect(self.path, self.timeout_s, transaction)

    def put_key(self, record: KeyRecord) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO keys VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.key_id,
                    record.digest,
                    record.name,
                    json.dumps(list(record.routes)),
                    record.requests_per_minute,
                    record.tokens_per_day,
                    record.created,
                    record.revoked,
                    json.dumps(record.details),
                ),
            )

    def get_key(self, key_id: str) -> KeyRecord | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM keys WHERE key_id=?", (key_id,)).fetchone()
        return _record(row) if row else None

    def list_keys(self) -> list[KeyRecord]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM keys ORDER BY created").fetchall()
        return [_record(row) for row in rows]

    def add(self, key_id: str, window: str, amount: int, expires: float) -> int:
        with self._connect() as db:
            db.execute("DELETE FROM counters WHERE expires < ?", (expires - 2 * 86400,))
            db.execute(
                "INSERT INTO counters VALUES (?, ?, ?, ?) ON CONFLICT (key_id, window) "
                "DO UPDATE SET value = value + excluded.value",
                (key_id, window, amount, expires),
            )
            (value,) = db.execute(
                "SELECT value FROM counters WHERE key_id=? AND window=?", (key_id, window)
            ).fetchone()
        return int(value)

    def count(self, key_id: str, window: str) -> int:
        with self._connect() as db:
            row = db.execute(
                "SELECT value FROM counters WHERE key_id=? AND window=?", (key_id, window)
            ).fetchone()
        return int(row[0]) if row else 0

    def log(self, entry: RequestLog) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO requests VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.at,
                    entry.key_id,
                    entry.route,
                    entry.target,
                    entry.status,
                    entry.latency_ms,
                    entry.prompt_tokens,
                    entry.completion_tokens,
                    int(entry.stream),
                    entry.prompt,
                ),
            )

    def logs(self, since: float) -> list[RequestLog]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT * FROM requests WHERE at >= ? ORDER BY at", (since,)
            ).fetchall()
        return [
            RequestLog(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], bool(r[8]), r[9])
            for r in rows
        ]


def _record(row) -> KeyRecord:
    return KeyRecord(
        key_id=row[0],
        digest=row[1],
        name=row[2],
        routes=tuple(json.loads(row[3])),
        requests_per_minute=row[4],
        tokens_per_day=row[5],
        created=row[6],
        revoked=row[7],
        details=json.loads(row[8]),
    )
