"""What answers requests behind the routes: llmship's engine, or the artifact's own handler.

An artifact whose code/inference.py is llmship's own handler is served by the
continuous-batching engine, with the same payloads and answers as that handler (its
greedy output is the same), many requests at once, and the OpenAI routes. Any other
handler is called through the SageMaker handler contract, one request at a time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from importlib.resources import files
from pathlib import Path
from typing import Any

from llmship.engine.engine import Engine, QueueFull, RequestHandle
from llmship.engine.sampling import SamplingParams
from llmship.package.handler import inference as handler_code
from llmship.serve.handler import JSON, Handler, HandlerError

# The handler's own parameters, plus a seed for sampled requests.
PARAMETERS = {**handler_code.PARAMETERS, "seed": int}


class Overloaded(HandlerError):
    """Admission refused: answer 503 with Retry-After."""

    retry_after_s = 1

    def __init__(self, message: str):
        super().__init__(message, 503)


def is_llmship_handler(model_dir: Path) -> bool:
    """True when the artifact carries llmship's own, unmodified handler."""
    code = Path(model_dir) / "code" / "inference.py"
    ours = files("llmship.package.handler").joinpath("inference.py").read_text("utf-8")
    return code.is_file() and code.read_text("utf-8") == ours


class ThreadedHandler:
    """A user's handler, one request at a time on a worker thread (as a container worker)."""

    openai = False

    def __init__(self, model_dir: Path, max_waiting: int = 64):
        self.handler = Handler(model_dir)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmship-model")
        self.max_waiting, self.pending = max_waiting, 0
        self.handler.load()

    async def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        if self.pending > self.max_waiting:  # one runs, max_waiting wait: refuse the rest
            raise Overloaded(f"{self.pending} requests are already in line")
        self.pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self.executor, self.handler.invoke, body, content_type, accept
            )
        finally:
            self.pending -= 1

    def can_stream(self) -> bool:
        return self.handler.can_stream()

    async def stream(self, body: bytes, content_type: str) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        chunks = self.handler.stream(body, content_type)
        while (chunk := await loop.run_in_executor(self.executor, next, chunks, None)) is not None:
            yield chunk

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


class EngineBackend:
    """llmship's artifacts on the engine: Hugging Face toolkit payloads and OpenAI routes."""

    openai = True

    def __init__(
        self,
        model_dir: Path,
        max_batch: int = 16,
        max_len: int | None = None,
        max_waiting: int | None = None,
    ):
        import torch

        from llmship.models.generation import load_finetuned

        cuda = torch.cuda.is_available()
        bf16 = cuda and torch.cuda.is_bf16_supported()
        self.loaded = load_finetuned(model_dir, dtype=torch.bfloat16 if bf16 else None)
        if self.loaded.kind != "causal":
            raise HandlerError("the engine serves causal models", 500)
        config = self.loaded.model.config
        limit = max_len or min(getattr(config, "max_position_embeddings", 2048), 4096)
        self.engine = Engine(
            self.loaded.model,
            self.loaded.tokenizer,
            max_batch=max_batch,
            max_len=limit,
            max_waiting=max_waiting,
        )
        self.tokenizer = self.loaded.tokenizer
        self.format = self.loaded.prompt_format

    # ---- Hugging Face toolkit payloads (the SageMaker routes) --------------------------
    def _parse(self, body: bytes, content_type: str) -> tuple[list[str], dict[str, Any]]:
        """The payload as code/inference.py reads it (same checks, same error statuses)."""
        data = handler_code.input_fn(body, content_type)
        return data["inputs"], data["parameters"]

    def sampling(self, parameters: dict[str, Any], stop: Any = None) -> SamplingParams:
        """SamplingParams from request parameters over the model's generation defaults."""
        unknown = set(parameters) - set(PARAMETERS) - {"stop"}
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
            return SamplingParams(
                max_new_tokens=merged["max_new_tokens"],
                do_sample=merged["do_sample"],
                temperature=merged["temperature"],
                top_p=merged["top_p"],
                top_k=merged["top_k"],
                repetition_penalty=merged["repetition_penalty"],
                seed=merged.get("seed"),
                stop=(stop,) if isinstance(stop, str) else tuple(stop),
            )
        except ValueError as exc:
            raise HandlerError(str(exc)) from None

    def prompt_ids(self, text: str) -> list[int]:
        return self.format.encode_prompt(self.format.fields_for(text), self.tokenizer)

    def submit(self, prompt_ids: list[int], params: SamplingParams) -> RequestHandle:
        try:
            return self.engine.submit(prompt_ids, params)
        except QueueFull as exc:
            raise Overloaded(f"the server is at capacity ({exc}); retry shortly") from None
        except ValueError as exc:
            raise HandlerError(str(exc)) from None

    async def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        if accept not in ("", "*/*") and accept.split(";")[0].strip() != JSON:
            raise HandlerError(f"cannot answer in {accept!r}; ask for {JSON}", 406)
        inputs, parameters = self._parse(body, content_type)
        params = self.sampling(parameters)
        handles = [self.submit(self.prompt_ids(text), params) for text in inputs]
        try:
            outputs = [await handle.aresult() for handle in handles]
        finally:
            for handle in handles:
                handle.cancel()  # no-op for finished ones; frees the slot of abandoned ones
        return json.dumps([{"generated_text": o.text.strip()} for o in outputs]).encode(), JSON

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
                piece = output.text.lstrip() if not text else output.text
                text += output.text
                if piece:
                    yield (json.dumps({"token": {"text": piece}}) + "\n").encode()
            yield (json.dumps({"generated_text": text.strip()}) + "\n").encode()
        finally:
            handle.cancel()

    def close(self) -> None:
        self.engine.close()


def load_backend(model_dir: Path, max_batch: int = 16, max_waiting: int | None = None):
    """The engine for llmship's own causal artifacts, the artifact's handler otherwise;
    at most `max_waiting` requests queue for either (default: four per batch slot)."""
    if is_llmship_handler(model_dir):
        info = json.loads((Path(model_dir) / "llmship.json").read_text(encoding="utf-8"))
        if info.get("prompt_format", {}).get("kind") == "causal":
            return EngineBackend(model_dir, max_batch=max_batch, max_waiting=max_waiting)
    return ThreadedHandler(model_dir, max_waiting if max_waiting is not None else 4 * max_batch)
