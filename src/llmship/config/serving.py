"""The local server: admission control and shutdown.

Every queue and wait has a bound, so a server under more load than it can take answers
503 with Retry-After instead of growing without limit, and a slow or stuck request is
cut off instead of holding a slot forever. `llmship serve` options override these.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError, ValidationInfo, field_validator

from llmship.config.section import Section
from llmship.errors import ConfigError

WAITING_PER_SLOT = 4  # max_waiting's default


class ServeConfig(Section):
    """The local server: admission control and shutdown."""

    max_batch: int = Field(
        16,
        ge=1,
        le=1024,
        description="Requests the engine decodes together: one KV-cache slot each.",
    )
    max_waiting: int | None = Field(
        None,
        ge=0,
        le=65536,
        description="Requests that may wait for a free slot; past it new ones get 503 with "
        "Retry-After (default: four per slot).",
    )
    max_inputs: int | None = Field(
        None,
        ge=1,
        le=65536,
        description="Prompts one /invocations request may carry in its `inputs` list (llmship's "
        "own artifacts); a longer list gets 413. A list is queued whole or not at all, so it "
        "is at most max_waiting (default: max_batch, or max_waiting when that is smaller).",
    )
    max_len: int | None = Field(
        None,
        ge=16,
        le=131072,
        description="Tokens per KV-cache slot; a request whose prompt + max_new_tokens does "
        "not fit is refused with 400 at admission (default: the model's context, at most 4096).",
    )
    prefix_cache: bool = Field(
        True,
        description="Reuse the keys and values of a prompt's start that an earlier request "
        "computed (a shared system prompt, few-shot examples, chat history): a shorter "
        "prefill, the same answers. Off: every prompt is computed whole.",
    )
    max_in_flight: int | None = Field(
        None,
        ge=1,
        le=65536,
        description="HTTP requests handled at once (reading, waiting, generating, "
        "streaming); past it 503 with Retry-After at once, so slow clients cannot pile up "
        "memory (default: max_batch + max_waiting + 64).",
    )
    request_timeout_s: float | None = Field(
        None,
        gt=0,
        le=3600,
        description="A request still running after this many seconds is cancelled in the "
        "engine and its slot freed (default: the endpoint kind's limit, 60 s on SageMaker).",
    )
    body_timeout_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="A client that has not sent its whole request body after this many "
        "seconds gets 408.",
    )
    retry_after_s: int = Field(
        1, ge=1, le=3600, description="The Retry-After a 503 (server at capacity) carries."
    )
    shutdown_grace_s: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="On SIGTERM: stop accepting, let in-flight requests finish for up to "
        "this many seconds, then exit 0 (SageMaker waits 30 s before it kills a container).",
    )

    @field_validator("max_inputs")
    @classmethod
    def _list_fits_the_queue(cls, value: int | None, info: ValidationInfo) -> int | None:
        """A list longer than the queue could never be admitted whole: refused here, not
        with a 503 on every request that sends one."""
        waiting = info.data.get("max_waiting")
        if waiting is None and "max_batch" in info.data:
            waiting = WAITING_PER_SLOT * info.data["max_batch"]
        if value is not None and waiting is not None and value > waiting:
            raise ValueError(
                f"{value} is over max_waiting ({waiting}): a list is queued whole, so it "
                "must fit the queue; lower max_inputs or raise max_waiting"
            )
        return value

    def waiting(self) -> int:
        """max_waiting, or its default of four per slot."""
        return (
            self.max_waiting if self.max_waiting is not None else WAITING_PER_SLOT * self.max_batch
        )

    def inputs(self) -> int:
        """max_inputs, or its default: a batch's worth, within the queue (at least one)."""
        if self.max_inputs is not None:
            return self.max_inputs
        return max(1, min(self.max_batch, self.waiting()))

    def in_flight(self) -> int:
        """max_in_flight, or its default: every slot and queue place, plus 64 at the door."""
        if self.max_in_flight is not None:
            return self.max_in_flight
        return self.max_batch + self.waiting() + 64

    def with_options(self, **options: Any) -> ServeConfig:
        """These settings with the options given (None: not given, e.g. on the command
        line) laid over them; a bad value is a ConfigError naming serve.<key>."""
        given = {key: value for key, value in options.items() if value is not None}
        if not given:
            return self
        try:
            return ServeConfig.model_validate({**self.model_dump(), **given})
        except ValidationError as exc:
            problems = "; ".join(
                f"serve.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise ConfigError(f"invalid serve settings: {problems}") from None
