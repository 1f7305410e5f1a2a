"""Per-key usage from the request log: what `llmship gateway stats` prints."""

from __future__ import annotations

from dataclasses import dataclass

from llmship.gateway.store import RequestLog


@dataclass(frozen=True)
class KeyUsage:
    key_id: str
    requests: int
    errors: int  # answered with status >= 400 (refusals included)
    prompt_tokens: int
    completion_tokens: int
    p50_latency_ms: float
    max_latency_ms: float
    routes: tuple[str, ...]


def usage_by_key(entries: list[RequestLog]) -> list[KeyUsage]:
    """One row per key id ("-": requests with no valid key), busiest first."""
    groups: dict[str, list[RequestLog]] = {}
    for entry in entries:
        groups.setdefault(entry.key_id, []).append(entry)
    rows = []
    for key_id, group in groups.items():
        latencies = sorted(e.latency_ms for e in group)
        rows.append(
            KeyUsage(
                key_id=key_id,
                requests=len(group),
                errors=sum(e.status >= 400 for e in group),
                prompt_tokens=sum(e.prompt_tokens for e in group),
                completion_tokens=sum(e.completion_tokens for e in group),
                p50_latency_ms=latencies[(len(latencies) - 1) // 2],
                max_latency_ms=latencies[-1],
                routes=tuple(sorted({e.route for e in group})),
            )
        )
    return sorted(rows, key=lambda r: (-r.requests, r.key_id))
