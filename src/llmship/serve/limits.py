"""SageMaker's invocation limits per endpoint kind, enforced locally too."""

from __future__ import annotations

from dataclasses import dataclass

from llmship.errors import ConfigError

MB = 1024 * 1024


@dataclass(frozen=True)
class EndpointLimits:
    kind: str
    max_payload_bytes: int
    timeout_s: float


LIMITS = {
    "realtime": EndpointLimits("realtime", 6 * MB, 60.0),
    "serverless": EndpointLimits("serverless", 4 * MB, 60.0),
}


def limits_for(kind: str) -> EndpointLimits:
    """The limits of a real-time or serverless endpoint."""
    if kind not in LIMITS:
        raise ConfigError(f"unknown endpoint kind {kind!r}; choose one of: {', '.join(LIMITS)}")
    return LIMITS[kind]
