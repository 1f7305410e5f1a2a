"""API keys: made once, shown once, stored only as a hash, checked in constant time.

A key reads `lsk-<id>-<secret>`: the id (12 hex digits) is public (it names the key in
lists, logs and stats), the secret is 32 random bytes. The store keeps the id and the
SHA-256 of the whole key. A fast hash is the right one here: a slow KDF (scrypt,
argon2) protects low-entropy passwords from guessing, but a 256-bit random secret
cannot be guessed at any hash speed, while a KDF would add tens of milliseconds of CPU
to every request (billed per millisecond on Lambda). The id picks the record; the
hashes are compared with hmac.compare_digest so timing tells nothing about the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass, field, replace

PREFIX = "lsk"
KEY_PATTERN = re.compile(r"^lsk-([0-9a-f]{12})-([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class KeyRecord:
    """What the store keeps of a key: never the key itself."""

    key_id: str
    digest: str  # sha256 hex of the whole key
    name: str
    routes: tuple[str, ...]  # ("*",) allows every route
    requests_per_minute: int
    tokens_per_day: int
    created: float
    revoked: float | None = None
    details: dict = field(default_factory=dict)  # e.g. the API Gateway key id it maps to

    def allows(self, route: str) -> bool:
        return "*" in self.routes or route in self.routes

    @property
    def active(self) -> bool:
        return self.revoked is None

    def revoke(self, at: float) -> KeyRecord:
        return replace(self, revoked=at)


def digest_of(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(
    name: str,
    routes: list[str] | tuple[str, ...],
    *,
    requests_per_minute: int,
    tokens_per_day: int,
    now: float | None = None,
) -> tuple[str, KeyRecord]:
    """A fresh key (to show once) and the record to store."""
    key_id = secrets.token_hex(6)
    key = f"{PREFIX}-{key_id}-{secrets.token_urlsafe(32)}"
    record = KeyRecord(
        key_id=key_id,
        digest=digest_of(key),
        name=name,
        routes=tuple(routes) or ("*",),
        requests_per_minute=requests_per_minute,
        tokens_per_day=tokens_per_day,
        created=time.time() if now is None else now,
    )
    return key, record


def key_id_of(key: str) -> str | None:
    """The id part of a well-formed key, else None."""
    match = KEY_PATTERN.match(key)
    return match.group(1) if match else None


def matches(key: str, record: KeyRecord) -> bool:
    """Whether `key` is the key `record` was made from (constant-time comparison)."""
    return hmac.compare_digest(digest_of(key).encode(), record.digest.encode())


def key_from_headers(headers) -> str | None:
    """The key a caller sent: `Authorization: Bearer <key>` (the openai client) or
    `x-api-key: <key>`; None when neither is there."""
    auth = headers.get("authorization") or ""
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    value = headers.get("x-api-key") or ""
    return value.strip() or None
