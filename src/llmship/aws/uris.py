"""s3:// URIs taken apart in one place (no imports: the permission map uses it too)."""

from __future__ import annotations


def s3_parts(uri: str) -> tuple[str, str]:
    """(bucket, key or prefix) of `s3://bucket/key`; the key is "" for a bare bucket.
    Takes apart without judging: callers that need an object key check it."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key
