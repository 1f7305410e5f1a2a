"""What answers requests behind the routes: llmship's engine, or the artifact's own handler.

An artifact whose code/inference.py is llmship's own handler is served by the
continuous-batching engine, with the same payloads and answers as that handler (its
greedy output is the same), many requests at once, and the OpenAI routes. Any other
handler is called through the SageMaker handler contract, one request at a time.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from llmship.config.serving import ServeConfig
from llmship.engine.engine import Engine, OverBudget, QueueFull, RequestHandle
from llmship.engine.sampling import SamplingParams
from llmship.package.handler import inference as handler_code
from llmship.serve.handler import JSON, Handler, HandlerError

# The handler's own parameters, read the same way (logit_bias is checked on its own).
PARAMETERS = handler_code.PARAMETERS


@dataclass
class ModelState:
    """Start-up state /ping reports: loading, ready or failed (with the reason)."""

    status: str = "loading"
    reason: str = ""
    backend: ThreadedHandler | EngineBackend | None = None

    def not_ready(self) -> str:
        """Why there is no backend to answer, for error messages."""
        if self.status == "failed":
            return f"the model failed to load: {self.reason}"
        return "the model is still loading; retry shortly"


class Overloaded(HandlerError):
    """Admission refused: answer 503 with Retry-After."""

    def __init__(self, message: str, retry_after_s: int = 1):
        super().__init__(message, 503)
        self.retry_after_s = retry_after_s


def timed_out(timeout_s: float | None) -> TimeoutError:
    return TimeoutError(f"generation ran past the {timeout_s:g} s limit and was cancelled")


def is_llmship_handler(model_dir: Path) -> bool:
    """True when the artifact carries llmship's own, unmodified handler."""
    code = Path(model_dir) / "code" / "inference.py"
    ours = files("llmship.package.handler").joinpath("inference.py").read_text("utf-8")
    return code.is_file() and code.read_text("utf-8") == ours


class _Worker:
    """One thread running calls in order, as a container's single model worker.

    `backlog` counts calls queued or running until the thread is done with them, so a
    handler stuck in user code (which no one can interrupt) keeps admission closed
    instead of letting abandoned calls pile up. The thread is a daemon: a stuck handler
    cannot keep the process alive past its shutdown grace period."""

    def __init__(self):
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self.backlog = 0
        threading.Thread(target=self._run, name="llmship-model", daemon=True).start()

    def submit(self, function: Callable, *args: Any) -> Future:
        future: Future = Future()
        with self._lock:
            self.backlog += 1
        self._calls.put((future, function, args))
        return future

    def _run(self) -> None:
        while (call := self._calls.get()) is not None:
            future, function, args = call
            try:
                if future.set_running_or_notify_cancel():  # False: its caller gave up
                    try:
                        future.set_result(function(*args))
                    except BaseException as exc:
                        future.set_exception(exc)
            finally:
                with self._lock:
                    self.backlog -= 1

    def close(self) -> None:
        self._calls.put(None)


class ThreadedHandler:
    """A user's handler, one request at a time on a worker thread (as a container worker)."""

    openai = False

    def __init__(
        self,
        model_dir: Path,
        max_waiting: int = 64,
        timeout_s: float | None = None,
        retry_after_s: int = 1,
    ):
        self.handler = Handler(model_dir)
        self.max_waiting, self.timeout_s, self.retry_after_s = max_waiting, timeout_s, retry_after_s
        self.handler.load()
        self.worker = _Worker()

    def _admit(self) -> None:
        if self.worker.backlog > self.max_waiting:  # one runs, max_waiting wait: refuse the rest
            raise Overloaded(
                f"{self.worker.backlog} requests are already in line", self.retry_after_s
            )

    async def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        self._admit()
        call = self.worker.submit(self.handler.invoke, body, content_type, accept)
        return await asyncio.wrap_future(call)  # cancelled: dropped unless already running

    def can_stream(self) -> bool:
        return self.handler.can_stream()

    async def stream(self, body: bytes, content_type: str) -> AsyncIterator[bytes]:
        self._admit()
        chunks = self.handler.stream(body, content_type)
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        try:
            while True:
                left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
                try:
                    chunk = await asyncio.wait_for(
                        asyncio.wrap_future(self.worker.submit(next, chunks, None)), left
                    )
                except TimeoutError:
                    raise timed_out(self.timeout_s) from None
                if chunk is None:
                    return
                yield chunk
        finally:  # closed on the worker, after any next() still running there
            self.worker.submit(chunks.close)

    def close(self) -> None:
        self.worker.close()


class EngineBackend:
    """llmship's artifacts on the engine: Hugging Face toolkit payloads and OpenAI routes."""

    openai = True

    def __init__(
        self,
        model_dir: Path,
        max_batch: int = 16,
        max_len: int | None = None,
        max_waiting: int | None = None,
        timeout_s: float | None = None,
        retry_after_s: int = 1,
        max_inputs: int = 16,
        prefix_cache: bool = True,
    ):
        import torch

        from llmship.models.generation import load_finetuned

        cuda = torch.cuda.is_available()
        bf16 = cuda and torch.cuda.is_bf16_supported()
        self.loaded = load_finetuned(model_dir, dtype=torch.bfloat16 if bf16 else None)
        if self.loaded.kind != "causal":
            raise HandlerError("the engine serves causal models", 500)
        context = getattr(self.loaded.model.config, "max_position_embeddings", 2048)
        if max_len is not None and max_len > context:
            raise HandlerError(
                f"serve.max_len ({max_len}) is over the model's context of {context} tokens; "
                f"use at most {context}",
                500,
            )
        limit = max_len or min(context, 4096)
        self.engine = Engine(
            self.loaded.model,
            self.loaded.tokenizer,
            max_batch=max_batch,
            max_len=limit,
            max_waiting=max_waiting,
            prefix_cache=prefix_cache,
        )
        self.tokenizer = self.loaded.tokenizer
        self.format = self.loaded.prompt_format
        self.timeout_s, self.retry_after_s = timeout_s, retry_after_s
        self.max_inputs = max_inputs

    # ---- Hugging Face toolkit payloads (the SageMaker routes) --------------------------
    def _parse(self, body: bytes, content_type: str) -> tuple[list[str], dict[str, Any]]:
        """The payload as code/inference.py reads it (same checks, same error statuses)."""
        data = handler_code.input_fn(body, content_type)
        return data["inputs"], data["parameters"]

    def sampling(self, parameters: dict[str, Any], stop: Any = None) -> SamplingParams:
        """SamplingParams from request parameters over the model's generation defaults."""
        unknown = set(parameters) - set(PARAMETERS) - {"stop", "logit_bias"}
        if unknown:
            raise HandlerError(f"unknown parameters: {', '.join(sorted(unknown))}")
        merged = self.loaded.defaults.model_dump()
        for key, cast in PARAMETERS.items():
            if key in parameters:
                try:
                    merged[key] = cast(parameters[key])
                except (TypeError, ValueError):
                    raise HandlerError(f"parameter {key} must be {cast.__name__}") from None
        if merged.get("num_beams", 1) != 1:
            raise HandlerError("num_beams > 1 is not served by the engine; use 1")
        stop = parameters.get("stop", stop) or []
        try:
            bias = handler_code.logit_bias(parameters.get("logit_bias") or {})
        except handler_code.RequestError as exc:
            raise HandlerError(str(exc)) from None
        if any(token >= self.loaded.model.config.vocab_size for token in bias):
            raise HandlerError("parameter logit_bias: a token id is past the model's vocabulary")
        try:
            return SamplingParams(
                max_new_tokens=merged["max_new_tokens"],
                min_new_tokens=merged.get("min_new_tokens", 0),
                do_sample=merged["do_sample"],
                temperature=merged["temperature"],
                top_p=merged["top_p"],
                top_k=merged["top_k"],
                typical_p=merged.get("typical_p", 1.0),
                repetition_penalty=merged["repetition_penalty"],
                presence_penalty=merged.get("presence_penalty", 0.0),
                frequency_penalty=merged.get("frequency_penalty", 0.0),
                logit_bias=bias,
                no_repeat_ngram_size=merged.get("no_repeat_ngram_size", 0),
                seed=merged.get("seed"),
                stop=(stop,) if isinstance(stop, str) else tuple(stop),
            )
        except ValueError as exc:
            raise HandlerError(str(exc)) from None

    def prompt_ids(self, text: str) -> list[int]:
        return self.format.encode_prompt(self.format.fields_for(text), self.tokenizer)

    def submit(self, prompt_ids: list[int], params: SamplingParams) -> RequestHandle:
        """Admit one request (503 when the queue is full, 400 when it cannot fit); the
        engine cancels it once it has run for the request time limit."""
        try:
            return self.engine.submit(prompt_ids, params, timeout_s=self.timeout_s)
        except QueueFull as exc:
            raise Overloaded(
                f"the server is at capacity ({exc}); retry shortly", self.retry_after_s
            ) from None
        except (OverBudget, ValueError) as exc:
            raise HandlerError(str(exc)) from None

    def submit_all(self, prompts: list[list[int]], params: SamplingParams) -> list[RequestHandle]:
        """Admit every prompt or none: when one is refused, the ones already queued are
        cancelled (the engine drops them at its next step), so a refused list leaves
        nothing running behind its 503 or 400."""
        handles: list[RequestHandle] = []
        try:
            for prompt_ids in prompts:
                handles.append(self.submit(prompt_ids, params))
        except BaseException:
            for handle in handles:
                handle.cancel()
            raise
        return handles

    async def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        if accept not in ("", "*/*") and accept.split(";")[0].strip() != JSON:
            raise HandlerError(f"cannot answer in {accept!r}; ask for {JSON}", 406)
        inputs, parameters = self._parse(body, content_type)
        if len(inputs) > self.max_inputs:
            raise HandlerError(
                f'"inputs" holds {len(inputs)} prompts; this server takes at most '
                f"{self.max_inputs} per request (serve.max_inputs in the config): split the "
                "list or raise the limit",
                413,
            )
        params = self.sampling(parameters)
        handles = self.submit_all([self.prompt_ids(text) for text in inputs], params)
        try:
            outputs = [await handle.aresult() for handle in handles]
        finally:
            for handle in handles:
                handle.cancel()  # no-op for finished ones; frees the slot of abandoned ones
        for output in outputs:
            if output.finish_reason == "timeout":
                raise timed_out(self.timeout_s)
            if output.error:
                raise RuntimeError(output.error)
        full = bool(parameters.get("return_full_text"))
        answers = [
            handler_code.generated_text(text, o.text, o.text.strip(), full)
            for text, o in zip(inputs, outputs, strict=True)
        ]
        return json.dumps(answers).encode(), JSON

    def can_stream(self) -> bool:
        return True

    async def stream(self, body: bytes, content_type: str) -> AsyncIterator[bytes]:
        inputs, parameters = self._parse(body, content_type)
        if len(inputs) != 1:
            raise HandlerError("streaming takes one input at a time")
        handle = self.submit(self.prompt_ids(inputs[0]), self.sampling(parameters))
        text = ""
        try:
            async for output in handle.stream():
                if output.error:
                    raise RuntimeError(output.error)
                if output.finish_reason == "timeout":
                    raise timed_out(self.timeout_s)
                piece = output.text.lstrip() if not text else output.text
                text += output.text
                if piece:
                    yield (json.dumps({"token": {"text": piece}}) + "\n").encode()
            full = bool(parameters.get("return_full_text"))
            answer = handler_code.generated_text(inputs[0], text, text.strip(), full)
            yield (json.dumps(answer) + "\n").encode()
        finally:
            handle.cancel()

    def close(self) -> None:
        self.engine.close()


def load_backend(
    model_dir: Path, settings: ServeConfig, timeout_s: float | None = None
) -> ThreadedHandler | EngineBackend:
    """The engine for llmship's own causal artifacts, the artifact's handler otherwise;
    at most settings.max_waiting requests queue for either, each runs for at most
    `timeout_s`."""
    if is_llmship_handler(model_dir):
        info = json.loads((Path(model_dir) / "llmship.json").read_text(encoding="utf-8"))
        if info.get("prompt_format", {}).get("kind") == "causal":
            return EngineBackend(
                model_dir,
                max_batch=settings.max_batch,
                max_len=settings.max_len,
                max_waiting=settings.waiting(),
                timeout_s=timeout_s,
                retry_after_s=settings.retry_after_s,
                max_inputs=settings.inputs(),
                prefix_cache=settings.prefix_cache,
            )
    return ThreadedHandler(model_dir, settings.waiting(), timeout_s, settings.retry_after_s)
