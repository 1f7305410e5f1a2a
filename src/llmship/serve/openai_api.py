"""OpenAI-compatible routes on the engine: /v1/models, /v1/completions, /v1/chat/completions.

Request and response bodies follow OpenAI's API, streaming included (server-sent
events ending in `data: [DONE]`), with usage token counts and OpenAI-style error
bodies, so the official `openai` client works unchanged with base_url. At capacity: 503
`server_overloaded` with Retry-After; past the time limit: 408 `timeout` (or an error
event inside a stream); a client that leaves frees its slot.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from llmship.engine.engine import RequestHandle
from llmship.engine.sampling import SamplingParams
from llmship.serve.admission import CLIENT_GONE, BodyRefused, ClientGone, unless_disconnected
from llmship.serve.backends import EngineBackend, ModelState, Overloaded
from llmship.serve.handler import HandlerError
from llmship.serve.responses import openai_error

COMMON = {
    "model",
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
    "seed",
    "stream",
    "stream_options",
    "n",
    "user",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "ignore_eos",  # vLLM's extension, which serving benchmarks send
}
CHAT = COMMON | {"messages", "max_completion_tokens", "top_logprobs"}
COMPLETION = COMMON | {"prompt", "echo", "suffix"}


class OpenAIError(Exception):
    def __init__(
        self,
        message: str,
        status: int = 400,
        param: str | None = None,
        kind: str = "invalid_request_error",
        code: str | None = None,
        retry_after: int | None = None,
    ):
        super().__init__(message)
        self.status, self.param, self.kind, self.code = status, param, kind, code
        self.retry_after = retry_after

    def response(self) -> JSONResponse:
        return openai_error(
            self.status, str(self), self.kind, self.param, self.code, self.retry_after
        )


def add_openai_routes(
    app: FastAPI,
    state: ModelState,
    model_name: str,
    read: Callable[[Request], Awaitable[bytes]],
) -> None:
    """Mount the routes on the backend `state` holds once loaded; `read` reads a body
    within the server's size and time limits."""

    def engine() -> EngineBackend:
        current = state.backend
        if current is None:
            raise OpenAIError(state.not_ready(), 503, kind="service_unavailable")
        if not getattr(current, "openai", False):
            raise OpenAIError(
                "this artifact's own code/inference.py does not serve the OpenAI "
                "API; package the model with llmship to get it",
                404,
                code="not_found",
            )
        return current

    @app.get("/v1/models")
    async def models() -> Response:
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {"id": model_name, "object": "model", "created": 0, "owned_by": "llmship"}
                ],
            }
        )

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        try:
            body = _body(await _read(request), CHAT, "messages")
            served = engine()
            prompt_ids = _chat_prompt(served, body["messages"])
            limit = body.get("max_completion_tokens", body.get("max_tokens"))
            return await _complete(request, served, body, prompt_ids, limit, chat=True)
        except OpenAIError as exc:
            return exc.response()
        except ClientGone:
            return Response(status_code=CLIENT_GONE)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        try:
            body = _body(await _read(request), COMPLETION, "prompt")
            served = engine()
            prompt = body["prompt"]
            if isinstance(prompt, list) and len(prompt) == 1 and not isinstance(prompt[0], int):
                prompt = prompt[0]
            if body.get("echo") or body.get("suffix"):
                raise OpenAIError("echo and suffix are not supported", param="echo")
            if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
                prompt_ids = prompt  # token ids, as OpenAI's API allows
            elif isinstance(prompt, str) and prompt:
                prompt_ids = served.tokenizer(prompt)["input_ids"]
            else:
                raise OpenAIError(
                    "prompt must be a non-empty string or list of token ids", param="prompt"
                )
            limit = body.get("max_tokens", 16)
            return await _complete(request, served, body, prompt_ids, limit, chat=False)
        except OpenAIError as exc:
            return exc.response()
        except ClientGone:
            return Response(status_code=CLIENT_GONE)

    async def _read(request: Request) -> bytes:
        try:
            return await read(request)
        except BodyRefused as exc:
            if exc.status == CLIENT_GONE:
                raise ClientGone from None
            kind = "timeout" if exc.status == 408 else "invalid_request_error"
            raise OpenAIError(str(exc), exc.status, kind=kind) from None

    async def _complete(
        request: Request,
        served: EngineBackend,
        body: dict,
        prompt_ids: list[int],
        limit: int | None,
        chat: bool,
    ) -> Response:
        if body.get("model") != model_name:
            raise OpenAIError(
                f"the model {body.get('model')!r} does not exist; this server "
                f"serves {model_name!r}",
                404,
                param="model",
                code="model_not_found",
            )
        params = _sampling(served, body, limit)
        try:
            handle = served.submit(prompt_ids, params)
        except Overloaded as exc:
            raise OpenAIError(
                str(exc), 503, kind="server_overloaded", retry_after=exc.retry_after_s
            ) from None
        except HandlerError as exc:
            raise OpenAIError(str(exc), param="max_tokens") from None
        meta = {
            "id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}",
            "created": int(time.time()),
            "model": model_name,
        }
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(
                _events(handle, meta, chat, include_usage, _timed_out(served)),
                media_type="text/event-stream",
            )
        try:
            output = await unless_disconnected(request, handle.aresult())
        finally:
            handle.cancel()
        if output.error:
            raise OpenAIError(output.error, 500, kind="server_error")
        if output.finish_reason == "timeout":
            raise OpenAIError(_timed_out(served), 408, kind="timeout")
        text = output.text.strip() if chat else output.text
        choice: dict[str, Any] = {
            "index": 0,
            "logprobs": None,
            "finish_reason": _reason(output.finish_reason),
        }
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        return JSONResponse(
            {
                **meta,
                "object": "chat.completion" if chat else "text_completion",
                "choices": [choice],
                "usage": _usage(output),
            }
        )


def _timed_out(served: EngineBackend) -> str:
    return f"generation ran past the {served.timeout_s:g} s limit and was cancelled"


def _body(raw: bytes, allowed: set[str], required: str) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise OpenAIError(f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise OpenAIError("the body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise OpenAIError(f"unrecognized request argument: {unknown[0]}", param=unknown[0])
    if required not in body:
        raise OpenAIError(f"missing required parameter: {required}", param=required)
    if body.get("n", 1) != 1:
        raise OpenAIError("only n=1 is supported", param="n")
    for name in ("presence_penalty", "frequency_penalty"):
        if body.get(name):
            raise OpenAIError(f"{name} is not supported; leave it at 0", param=name)
    if body.get("logprobs"):
        raise OpenAIError("logprobs are not supported", param="logprobs")
    return body


def _chat_prompt(served: EngineBackend, messages: Any) -> list[int]:
    if not isinstance(messages, list) or not messages:
        raise OpenAIError("messages must be a non-empty list", param="messages")
    normalized = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message:
            raise OpenAIError(f"messages[{index}] needs a role", param="messages")
        content = message.get("content") or ""
        if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        normalized.append({"role": message["role"], "content": content})
    if not getattr(served.tokenizer, "chat_template", None):
        raise OpenAIError(
            "this model's tokenizer has no chat template; use /v1/completions", param="messages"
        )
    text = served.tokenizer.apply_chat_template(
        normalized, tokenize=False, add_generation_prompt=True
    )
    return served.tokenizer(text, add_special_tokens=False)["input_ids"]


def _sampling(served: EngineBackend, body: dict, limit: int | None) -> SamplingParams:
    temperature = body.get("temperature", 1.0)
    stop = body.get("stop") or ()
    try:
        return SamplingParams(
            max_new_tokens=int(limit or served.loaded.defaults.max_new_tokens),
            do_sample=float(temperature) > 0,
            temperature=float(temperature),
            top_p=float(body.get("top_p", 1.0)),
            seed=body.get("seed"),
            stop=(stop,) if isinstance(stop, str) else tuple(stop),
            ignore_eos=bool(body.get("ignore_eos", False)),
        )
    except (TypeError, ValueError) as exc:
        raise OpenAIError(str(exc), param="temperature") from None


def _reason(reason: str | None) -> str:
    return "length" if reason == "length" else "stop"


def _usage(output) -> dict[str, int]:
    return {
        "prompt_tokens": output.prompt_tokens,
        "completion_tokens": output.completion_tokens,
        "total_tokens": output.prompt_tokens + output.completion_tokens,
    }


async def _events(
    handle: RequestHandle, meta: dict, chat: bool, include_usage: bool, timeout_message: str
) -> AsyncIterator[str]:
    kind = "chat.completion.chunk" if chat else "text_completion"

    def chunk(delta: str | None, reason: str | None, first: bool = False) -> str:
        choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": reason}
        if chat:
            choice["delta"] = (
                {"role": "assistant", "content": ""}
                if first
                else ({"content": delta} if delta else {})
            )
        else:
            choice["text"] = delta or ""
        return f"data: {json.dumps({**meta, 'object': kind, 'choices': [choice]})}\n\n"

    try:
        if chat:
            yield chunk(None, None, first=True)
        started = False
        async for output in handle.stream():
            if output.error or output.finish_reason == "timeout":
                kind = "server_error" if output.error else "timeout"
                error = {"error": {"message": output.error or timeout_message, "type": kind}}
                yield f"data: {json.dumps(error)}\n\n"
                return
            text = output.text.lstrip() if chat and not started else output.text
            if text:
                started = True
                yield chunk(text, None)
            if output.finish_reason:
                yield chunk(None, _reason(output.finish_reason))
                if include_usage:
                    usage = {**meta, "object": kind, "choices": [], "usage": _usage(output)}
                    yield f"data: {json.dumps(usage)}\n\n"
        yield "data: [DONE]\n\n"
    finally:  # the client went away: free the slot at the next step
        handle.cancel()
