"""The gateway: routes to targets, key store, limits, and how it is exposed on AWS.

A route is the name callers put in OpenAI's `model` field (or in the SageMaker payload
path); it sends each request to one of its targets, picked by weight (A/B tests and
canaries). Keys, their limits and the request log live in the store: SQLite beside the
state store locally, one DynamoDB table on AWS.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from llmship.config.section import Section

ROUTE_PATTERN = r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$"


class GatewayTarget(Section):
    """One place a route can send a request: exactly one of local, sagemaker, bedrock."""

    local: str | None = Field(
        None,
        pattern=r"^https?://",
        description="URL of an OpenAI-compatible server, e.g. a `llmship serve` at "
        "http://127.0.0.1:8080 (its /v1 routes are called).",
    )
    sagemaker: str | None = Field(
        None,
        pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$",
        max_length=63,
        description="SageMaker endpoint name; OpenAI requests become Hugging Face toolkit "
        "JSON ({inputs, parameters}), streamed through InvokeEndpointWithResponseStream.",
    )
    bedrock: str | None = Field(
        None,
        description="Bedrock model id, inference profile or provisioned throughput ARN; "
        "OpenAI requests become Converse / ConverseStream calls.",
    )
    weight: float = Field(
        1.0,
        ge=0.0,
        description="Share of the route's traffic (relative to the other targets' weights; "
        "0 takes it out of rotation).",
    )
    model: str | None = Field(
        None,
        description="local: the model name the server expects (default: the first id its "
        "/v1/models lists).",
    )
    endpoint_url: str | None = Field(
        None,
        pattern=r"^https?://",
        description="sagemaker: send Runtime API calls here instead of AWS (a `llmship serve` "
        "speaks the same paths).",
    )
    region: str | None = Field(
        None, description="sagemaker / bedrock: region (default: aws.region)."
    )

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> GatewayTarget:
        given = [k for k in ("local", "sagemaker", "bedrock") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(
                "a target needs exactly one of local, sagemaker, bedrock"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self

    @property
    def kind(self) -> str:
        return "local" if self.local else "sagemaker" if self.sagemaker else "bedrock"

    @property
    def address(self) -> str:
        return self.local or self.sagemaker or self.bedrock or ""

    @property
    def label(self) -> str:
        """How logs and stats name the target: kind:address."""
        return f"{self.kind}:{self.address}"


class GatewayRoute(Section):
    targets: list[GatewayTarget] = Field(
        min_length=1, description="Where the route sends requests, picked by weight."
    )
    tokenizer: str | None = Field(
        None,
        description="A tokenizer.json (or a model directory holding one), relative to this "
        "file: counts tokens when a target does not report usage.",
    )
    max_tokens: int = Field(
        512, ge=1, le=32768, description="Most tokens one request may ask to generate."
    )
    timeout_s: float = Field(
        60.0, gt=0, le=900, description="Seconds to wait for a target before answering 504."
    )

    @model_validator(mode="after")
    def _some_weight(self) -> GatewayRoute:
        if not any(t.weight > 0 for t in self.targets):
            raise ValueError("every target has weight 0: give at least one a positive weight")
        return self


class GatewayAwsSettings(Section):
    streaming: bool = Field(
        True,
        description="Stream answers on AWS through the Lambda Web Adapter layer and a REST "
        "API integration in STREAM mode; false: buffered (Mangum), whole answers only.",
    )
    memory_mb: int = Field(512, ge=128, le=10240, description="Lambda memory (CPU scales with it).")
    timeout_s: int = Field(
        60,
        ge=3,
        le=900,
        description="Lambda timeout. Buffered API Gateway integrations stop at 29 s; "
        "streamed ones may run up to 15 minutes.",
    )
    architecture: Literal["x86_64", "arm64"] = Field(
        "x86_64", description="Lambda architecture; the zip's native wheels must match."
    )
    runtime: Literal["python3.11", "python3.12", "python3.13"] = Field(
        "python3.11", description="Lambda Python runtime; the zip is built for its version."
    )
    stage: str = Field("api", pattern=r"^[a-zA-Z0-9_]+$", description="API Gateway stage name.")
    rate_limit: float = Field(
        50.0,
        gt=0,
        description="Usage plan steady requests per second per API key (a backstop: the "
        "gateway enforces each key's own limits).",
    )
    burst_limit: int = Field(100, ge=1, description="Usage plan burst per API key.")
    daily_request_quota: int | None = Field(
        None, ge=1, description="Usage plan requests per day per API key (none: no quota)."
    )
    web_adapter_layer: str | None = Field(
        None,
        description="ARN of the Lambda Web Adapter layer (default: AWS's public layer for "
        "the region and architecture).",
    )


class GatewayConfig(Section):
    """The gateway: routes to targets, key store, limits."""

    routes: dict[str, GatewayRoute] = Field(
        default_factory=dict,
        description="Route name (what callers send as `model`) -> its targets.",
    )
    host: str = Field("127.0.0.1", description="`llmship gateway`: address to listen on.")
    port: int = Field(8000, ge=1, le=65535, description="`llmship gateway`: port.")
    store: Literal["sqlite", "dynamodb"] = Field(
        "sqlite",
        description="Where keys, counters and the request log live: sqlite ($LLMSHIP_HOME/"
        "gateway.db) or dynamodb (the table llmship expose creates).",
    )
    table: str | None = Field(
        None,
        description="store dynamodb: the table (an exposed route's is named like its "
        "deployment, <project>-gw-<route>).",
    )
    requests_per_minute: int = Field(
        60, ge=1, description="Default rate limit of a new key (keys create --rpm)."
    )
    tokens_per_day: int = Field(
        100_000, ge=1, description="Default daily token quota of a new key (keys create --tpd)."
    )
    log_prompts: bool = Field(
        False,
        description="Write prompt text into the request log (off: only key id, route, status, "
        "latency and token counts).",
    )
    seed: int | None = Field(
        None, description="Seed for picking weighted targets (set it for reproducible tests)."
    )
    aws: GatewayAwsSettings = Field(
        default_factory=GatewayAwsSettings, description="`llmship expose --target aws`."
    )

    @model_validator(mode="after")
    def _route_names(self) -> GatewayConfig:
        import re

        for name in self.routes:
            if not re.match(ROUTE_PATTERN, name) or len(name) > 63:
                raise ValueError(
                    f"route name {name!r}: letters, digits and hyphens, at most 63 characters"
                )
        return self
