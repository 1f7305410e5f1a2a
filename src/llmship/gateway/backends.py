"""Which store backs the gateway: SQLite beside the state store here, DynamoDB on AWS."""

from __future__ import annotations

import os
from pathlib import Path

from llmship.gateway.store import GatewayStore


def gateway_db_path() -> Path:
    """$LLMSHIP_HOME/gateway.db (default ~/.llmship/gateway.db), beside the state store."""
    home = Path(os.environ.get("LLMSHIP_HOME", Path.home() / ".llmship"))
    return home / "gateway.db"


def open_store(kind: str = "sqlite", *, table: str | None = None, session=None) -> GatewayStore:
    """The configured store: sqlite (local) or dynamodb (`table`, through `session`)."""
    if kind == "dynamodb":
        from llmship.gateway.dynamo_store import DynamoStore

        if not table:
            from llmship.errors import DeployError

            raise DeployError("gateway.table: the DynamoDB store needs a table name")
        return DynamoStore(table, session=session)
    from llmship.gateway.sqlite_store import SqliteStore

    return SqliteStore(gateway_db_path())
