"""Where the gateway keeps keys, counters and the request log: one small interface.

Two homes implement it: SQLite on this machine (sqlite_store) and one DynamoDB table
on AWS (dynamo_store). Counters are fixed windows (a minute for the rate limit, a UTC
day for the token quota) incremented atomically, so several gateway processes or
Lambda instances share them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from llmship.gateway.keys import KeyRecord


@dataclass(frozen=True)
class RequestLog:
    """One answered request. Never the key, never the prompt unless log_prompts is on."""

    at: float
    key_id: str
    route: str
    target: str
    status: int
    latency_ms: float
    prompt_tokens: int
    completion_tokens: int
    stream: bool
    prompt: str | None = None


class GatewayStore(Protocol):
    def put_key(self, record: KeyRecord) -> None: ...

    def get_key(self, key_id: str) -> KeyRecord | None: ...

    def list_keys(self) -> list[KeyRecord]: ...

    def add(self, key_id: str, window: str, amount: int, expires: float) -> int:
        """Add `amount` to a counter and return its new value (atomically)."""
        ...

    def count(self, key_id: str, window: str) -> int: ...

    def log(self, entry: RequestLog) -> None: ...

    def logs(self, since: float) -> list[RequestLog]: ...
