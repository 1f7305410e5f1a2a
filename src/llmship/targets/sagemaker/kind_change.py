"""Which changes of endpoint kind UpdateEndpoint can make, checked in the plan.

A redeploy moves the live endpoint to a new endpoint config; what that config may be
depends on what the endpoint is now. AWS documents (and answers with a
ValidationException, after llmship would already have created the model and config):

- real-time (instance-based) -> serverless: not supported ("Update a serverless
  endpoint" and the Serverless Inference feature exclusions). An async endpoint runs on
  instances too, so the same holds for async -> serverless.
- serverless -> real-time: supported, but it cannot be rolled back to serverless.
- async -> anything else: "The AsyncInferenceConfig parameter cannot be removed from
  this endpoint" (UpdateEndpoint's answer, aws/sagemaker-python-sdk#3124).
- anything else -> async: an endpoint is created asynchronous or not ("Update an
  Asynchronous Endpoint" updates async endpoints only); adding AsyncInferenceConfig in
  an update is not something UpdateEndpoint offers.

What the endpoint is now is read from AWS (its live endpoint config), not from the
state store, which may be another machine's or stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class KindChange:
    """What the plan says about moving `endpoint` from `live` to `wanted`."""

    problem: str | None = None
    warning: str | None = None


def live_kind(endpoint: dict[str, Any], config: dict[str, Any] | None) -> str:
    """The kind of a live endpoint from DescribeEndpoint and (if still there) its
    DescribeEndpointConfig: async with AsyncInferenceConfig, serverless with a
    ServerlessConfig, real-time otherwise."""
    config = config or {}
    if endpoint.get("AsyncInferenceConfig") or config.get("AsyncInferenceConfig"):
        return "async"
    variants = list(endpoint.get("ProductionVariants") or []) + list(
        config.get("ProductionVariants") or []
    )
    if any(v.get("CurrentServerlessConfig") or v.get("ServerlessConfig") for v in variants):
        return "serverless"
    return "realtime"


def check_kind_change(endpoint: str, live: str, wanted: str) -> KindChange:
    """A problem for an update AWS refuses, a warning for one that cannot be undone."""
    if live == wanted:
        return KindChange()
    fresh = (
        f"destroy it first (`llmship destroy {endpoint}`) or set another deploy.name to "
        f"create a new {wanted} endpoint beside it"
    )
    if live == "async":
        return KindChange(
            problem=f"deploy.kind: endpoint {endpoint} is asynchronous and SageMaker cannot "
            f"update an asynchronous endpoint to {wanted} (its AsyncInferenceConfig cannot "
            f"be removed); {fresh}"
        )
    if wanted == "async":
        return KindChange(
            problem=f"deploy.kind: endpoint {endpoint} is {live}; SageMaker cannot make an "
            f"existing endpoint asynchronous in an update; {fresh}"
        )
    if wanted == "serverless":
        return KindChange(
            problem=f"deploy.kind: endpoint {endpoint} runs on instances ({live}); SageMaker "
            f"does not support updating it to serverless; {fresh}"
        )
    return KindChange(
        warning=f"deploy.kind: endpoint {endpoint} is serverless and becomes {wanted}; "
        "SageMaker cannot turn it back into a serverless endpoint later (only destroying "
        "it and deploying again can)"
    )
