"""OpenAI-compatible routes on the engine: /v1/models, /v1/completions, /v1/chat/completions.

Request and response bodies follow OpenAI's API, streaming included (server-sent
events ending in `data: [DONE]`), with usage token counts and OpenAI-style error
bodies, so the official `openai` client works unchanged with base_url. At capacity: 503
`server_overloaded` with Retry-After; past the time limit: 408 `timeout` (or an error
event inside a stream); a client that leaves frees its slot. Requests are parsed and
answers built by llmship.protocol.openai, as the gateway's are; what is the server's own
here is the engine: the chat template, sampling and streaming its tokens.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from llmship.engine.engine import RequestHandle
from llmship.engine.sampling import SamplingParams
from llmship.protocol.openai import (
    DONE,
    BadRequest,
    ChatRequest,
    CompletionRequest,
    Reply,
    chat_messages,
    completion_prompt,
    error_event,
    include_usage,
    load_json,
    model_list,
    parse_request,
    sampling,
    token_limit,
    usage,
)
from llmship.serve.admission import CLIENT_GONE, BodyRefused, ClientGone, unless_disconnected
from llmship.serve.backends import EngineBackend, ModelState, Overloaded
from llmship.serve.handler import HandlerError
from llmship.serve.responses import openai_error

# The two routes' request models (the gateway parses with the same ones).
CHAT, COMPLETION = ChatRequest, CompletionRequest


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
        return JSONResponse(model_list([model_name]))

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        try:
            body = _body(await _read(request), CHAT, "messages")
            served = engine()
            prompt_ids = _chat_prompt(served, body["messages"])
            limit = token_limit(body, chat=True)
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
            with _refused():
                prompt = completion_prompt(body)
            # token ids, as OpenAI's API allows, or text
            prompt_ids = (
                prompt if isinstance(prompt, list) else served.tokenizer(prompt)["input_ids"]
            )
            limit = token_limit(body, chat=False)
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
        body: ChatRequest | CompletionRequest,
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
        reply = Reply(chat, model_name)
        if body.get("stream"):
            return StreamingResponse(
                _events(handle, reply, include_usage(body), _timed_out(served)),
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
        return JSONResponse(reply.body(text, _reason(output.finish_reason), _usage(output)))


def _timed_out(served: EngineBackend) -> str:
    return f"generation ran past the {served.timeout_s:g} s limit and was cancelled"


@contextmanager
def _refused() -> Iterator[None]:
    """The protocol's BadRequest as this server's 400."""
    try:
        yield
    except BadRequest as exc:
        raise OpenAIError(str(exc), param=exc.param) from None


def _body(
    raw: bytes, kind: type[ChatRequest] | type[CompletionRequest], required: str
) -> ChatRequest | CompletionRequest:
    """The request, parsed and checked as the gateway checks it; the model is not required
    here: a missing or other one is a 404, model_not_found."""
    with _refused():
        return parse_request(load_json(raw), kind, required)


def _chat_prompt(served: EngineBackend, messages: list) -> list[int]:
    """The prompt's token ids through the model's chat template (the one it was trained
    with)."""
    with _refused():
        normalized = chat_messages(messages)
    if not getattr(served.tokenizer, "chat_template", None):
        raise OpenAIError(
            "this model's tokenizer has no chat template; use /v1/completions", param="messages"
        )
    text = served.tokenizer.apply_chat_template(
        normalized, tokenize=False, add_generation_prompt=True
    )
    return served.tokenizer(text, add_special_tokens=False)["input_ids"]


def _sampling(
    served: EngineBackend, body: ChatRequest | CompletionRequest, limit: int | None
) -> SamplingParams:
    chosen = sampling(body)
    try:
        return SamplingParams(
            max_new_tokens=limit or served.loaded.defaults.max_new_tokens,
            do_sample=chosen.temperature > 0,
            temperature=chosen.temperature,
            top_p=chosen.top_p,
            seed=chosen.seed,
            stop=chosen.stop,
            ignore_eos=chosen.ignore_eos,
        )
    except ValueError as exc:
        raise OpenAIError(str(exc), param="temperature") from None


def _reason(reason: str | None) -> str:
    return "length" if reason == "length" else "stop"


def _usage(output) -> dict[str, int]:
    return usage(output.prompt_tokens, output.completion_tokens)


async def _events(
    handle: RequestHandle, reply: Reply, with_usage: bool, timeout_message: str
) -> AsyncIterator[str]:
    try:
        if reply.chat:
            yield reply.chunk(None, None, first=True)
        started = False
        async for output in handle.stream():
            if output.error or output.finish_reason == "timeout":
                kind = "server_error" if output.error else "timeout"
                yield error_event(output.error or timeout_message, kind)
                return
            text = output.text.lstrip() if reply.chat and not started else output.text
            if text:
                started = True
                yield reply.chunk(text, None)
            if output.finish_reason:
                yield reply.chunk(None, _reason(output.finish_reason))
                if with_usage:
                    yield reply.usage_chunk(_usage(output))
        yield DONE
    finally:  # the client went away: free the slot at the next step
        handle.cancel()
