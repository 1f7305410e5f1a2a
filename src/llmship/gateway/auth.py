"""Who may call which route, how often, and how many tokens a day.

Checked in this order, each with its own answer: no key (401), a key that is not ours
or was revoked (401), a route the key may not use (403), over the requests-per-minute
window (429, Retry-After: seconds to the next minute), over the day's token quota
(429, Retry-After: seconds to UTC midnight). Tokens are added after the answer, so
the request that crosses the quota finishes and the next one is refused. The clock is
passed in so tests can move time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from llmship.gateway.keys import KeyRecord, key_id_of, matches
from llmship.gateway.store import GatewayStore


class Refused(Exception):
    """A request the gateway refuses before it reaches a target."""

    def __init__(
        self, status: int, message: str, code: str, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.retry_after = status, code, retry_after


@dataclass
class Guard:
    store: GatewayStore
    clock: Callable[[], float] = time.time

    def authenticate(self, key: str | None) -> KeyRecord:
        """The record of a valid, active key."""
        if not key:
            raise Refused(
                401,
                "no API key: send `Authorization: Bearer <key>` or `x-api-key: <key>` "
                "(`llmship keys create` makes one)",
                "missing_api_key",
            )
        key_id = key_id_of(key)
        record = self.store.get_key(key_id) if key_id else None
        if record is None or not matches(key, record):
            raise Refused(401, "the API key is not valid", "invalid_api_key")
        if not record.active:
            raise Refused(401, f"the API key {record.key_id} was revoked", "revoked_api_key")
        return record

    def authorize(self, record: KeyRecord, route: str) -> None:
        """Route allowed, under the rate limit and the token quota (counts this request)."""
        if not record.allows(route):
            raise Refused(
                403,
                f"the API key {record.key_id} may not use route {route!r} "
                f"(allowed: {', '.join(record.routes)})",
                "route_not_allowed",
            )
        now = self.clock()
        minute = int(now // 60)
        used = self.store.add(record.key_id, f"rpm:{minute}", 1, (minute + 2) * 60)
        if used > record.requests_per_minute:
            raise Refused(
                429,
                f"rate limit: {record.requests_per_minute} requests per minute for key "
                f"{record.key_id}",
                "rate_limit_exceeded",
                retry_after=max(1, math.ceil((minute + 1) * 60 - now)),
            )
        day = int(now // 86400)
        tokens = self.store.count(record.key_id, f"tpd:{day}")
        if tokens >= record.tokens_per_day:
            raise Refused(
                429,
                f"token quota: {record.tokens_per_day} tokens per day for key "
                f"{record.key_id} are used up",
                "quota_exceeded",
                retry_after=max(1, math.ceil((day + 1) * 86400 - now)),
            )

    def charge(self, record: KeyRecord, tokens: int) -> None:
        """Add an answer's tokens to today's count."""
        if tokens > 0:
            day = int(self.clock() // 86400)
            self.store.add(record.key_id, f"tpd:{day}", tokens, (day + 2) * 86400)
