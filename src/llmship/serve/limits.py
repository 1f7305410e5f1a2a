"""SageMaker's invocation limits per endpoint kind, enforced locally too.

The numbers come from the SageMaker table (llmship.sagemaker.limits), so the local server and
the plan never disagree; only the kinds answered synchronously are served here.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmship.errors import ConfigError
from llmship.sagemaker.limits import LIMITS as KIND_LIMITS


@dataclass(frozen=True)
class EndpointLimits:
    kind: str
    max_payload_bytes: int
    timeout_s: float


LIMITS = {
    kind: EndpointLimits(
        kind, KIND_LIMITS[kind].max_payload_bytes, float(KIND_LIMITS[kind].timeout_s)
    )
    for kind in ("realtime", "serverless")
}


def limits_for(kind: str) -> EndpointLimits:
    """The limits of a real-time or serverless endpoint."""
    if kind not in LIMITS:
        raise ConfigError(f"unknown endpoint kind {kind!r}; choose one of: {', '.join(LIMITS)}")
    return LIMITS[kind]
