"""OpenAI-compatible routes on the engine: /v1/models, /v1/completions, /v1/chat/completions.

Request and response bodies follow OpenAI's API, streaming included (server-sent
events ending in `data: [DONE]`), with usage token counts and OpenAI-style error
bodies, so the official `openai` client works unchanged with base_url. At capacity: 503
`server_overloaded` with Retry-After; past the time limit: 408 `timeout` (or an error
event inside a stream); a client that leaves frees its slot. Requests are parsed and
answers built by llmship.protocol.openai, as the gateway's are; what is the server's own
here is the engine: the chat template, sampling and streaming its tokens. Tools go into
the chat template and the model's calls come back through llmship.protocol.tools; a call
that tool_choice forces ("required" or a named function) is held to the function's
parameters by a grammar.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from llmship.engine.constraints import GrammarError, json_object, json_schema
from llmship.engine.engine import Output, RequestHandle
from llmship.engine.sampling import SamplingParams, TokenConstraint, TokenLogprob
from llmship.protocol.openai import (
    DONE,
    BadRequest,
    ChatRequest,
    CompletionRequest,
    Reply,
    chat_logprobs,
    chat_messages,
    completion_logprobs,
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
from llmship.protocol.tools import ToolUse, template_messages, tool_use
from llmship.serve.admission import CLIENT_GONE, BodyRefused, ClientGone, unless_disconnected
from llmship.serve.backends import EngineBackend, ModelState, Overloaded
from llmship.serve.handler import HandlerError
from llmship.serve.responses import openai_error

# The two routes' request models (the gateway parses with the same ones).
CHAT, COMPLETION = ChatRequest, CompletionRequest
# Fields the gateway refuses past their default that this server honours.
SERVED = ("tools", "tool_choice", "parallel_tool_calls", "n", "logprobs", "top_logprobs")


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
            with _refused():
                tools = tool_use(body, getattr(served.tokenizer, "chat_template", None))
            prompt_ids = _chat_prompt(served, body["messages"], tools)
            limit = token_limit(body, chat=True)
            return await _complete(request, served, body, prompt_ids, limit, True, tools)
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
        tools: ToolUse | None = None,
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
        if tools and tools.forced:
            params = replace(params, constraint=_forced_call(served, tools))
        handles = _submit_n(served, prompt_ids, params, body.get("n") or 1)
        reply = Reply(chat, model_name)
        if body.get("stream"):
            counted = [_Counted(handle) for handle in handles]
            single = len(handles) == 1 and include_usage(body)
            streams = [
                _tool_events(handle, choice, single, _timed_out(served), tools)
                if tools
                else _events(
                    handle, choice, single, _timed_out(served), _logprobs(served, params, chat)
                )
                for index, handle in enumerate(counted)
                for choice in [replace(reply, index=index)]
            ]
            events = _merged(streams, counted, reply, include_usage(body) and not single)
            return StreamingResponse(events, media_type="text/event-stream")
        try:
            outputs = await unless_disconnected(
                request, asyncio.gather(*(handle.aresult() for handle in handles))
            )
        finally:
            for handle in handles:
                handle.cancel()
        answers = [
            _answer(served, replace(reply, index=index), output, tools, params)
            for index, output in enumerate(outputs)
        ]
        return JSONResponse(_joined(answers))


def _timed_out(served: EngineBackend) -> str:
    return f"generation ran past the {served.timeout_s:g} s limit and was cancelled"


def _answer(
    served: EngineBackend,
    reply: Reply,
    output: Output,
    tools: ToolUse | None,
    params: SamplingParams,
) -> dict[str, Any]:
    """One choice's answer as a whole body."""
    if output.error:
        raise OpenAIError(output.error, 500, kind="server_error")
    if output.finish_reason == "timeout":
        raise OpenAIError(_timed_out(served), 408, kind="timeout")
    parsed = tools.parse(output.text) if tools else None
    if parsed and parsed.calls:
        calls = [call.openai() for call in parsed.calls]
        return reply.body(parsed.content, "tool_calls", _usage(output), calls)
    text = output.text.strip() if reply.chat else output.text
    answer = reply.body(text, _reason(output.finish_reason), _usage(output))
    chosen = _logprobs(served, params, reply.chat)
    if chosen is not None:
        answer["choices"][0]["logprobs"] = chosen.piece(list(output.logprobs))
    return answer


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
        return parse_request(load_json(raw), kind, required, served=SERVED)


def _chat_prompt(served: EngineBackend, messages: list, tools: ToolUse | None) -> list[int]:
    """The prompt's token ids through the model's chat template (the one it was trained
    with), tools and tool calls included; a forced call's opening already written."""
    with _refused():
        normalized = template_messages(chat_messages(messages), messages)
    if not getattr(served.tokenizer, "chat_template", None):
        raise OpenAIError(
            "this model's tokenizer has no chat template; use /v1/completions", param="messages"
        )
    text = served.tokenizer.apply_chat_template(
        normalized, tools=tools.tools if tools else None, tokenize=False, add_generation_prompt=True
    )
    text += tools.prefill if tools else ""
    return served.tokenizer(text, add_special_tokens=False)["input_ids"]


def _sampling(
    served: EngineBackend, body: ChatRequest | CompletionRequest, limit: int | None
) -> SamplingParams:
    with _refused():
        chosen = sampling(body)
    vocabulary = served.loaded.model.config.vocab_size if chosen.logit_bias else 0
    outside = [token for token in chosen.logit_bias if token >= vocabulary]
    if outside:
        raise OpenAIError(
            f"logit_bias: token {outside[0]} is not in the model's vocabulary of {vocabulary}",
            param="logit_bias",
        )
    try:
        return SamplingParams(
            max_new_tokens=limit or served.loaded.defaults.max_new_tokens,
            do_sample=chosen.temperature > 0,
            temperature=chosen.temperature,
            top_p=chosen.top_p,
            seed=chosen.seed,
            stop=chosen.stop,
            ignore_eos=chosen.ignore_eos,
            presence_penalty=chosen.presence_penalty,
            frequency_penalty=chosen.frequency_penalty,
            logit_bias=chosen.logit_bias,
            min_new_tokens=chosen.min_tokens,
            logprobs=chosen.logprobs,
            constraint=_json_answer(served, body),
        )
    except ValueError as exc:
        raise OpenAIError(str(exc), param="temperature") from None


def _json_answer(
    served: EngineBackend, body: ChatRequest | CompletionRequest
) -> Callable[[], TokenConstraint] | None:
    """The grammar response_format asks for (the protocol checked OpenAI's rules), or None
    for text: the answer is always held to it, strict or not."""
    chosen = body.get("response_format") or {"type": "text"}
    try:
        if chosen["type"] == "json_object":
            return json_object(served.tokenizer)
        if chosen["type"] == "json_schema":
            return json_schema(served.tokenizer, chosen["json_schema"]["schema"])
    except GrammarError as exc:
        raise OpenAIError(f"response_format: {exc}", param="response_format") from None
    return None


def _submit_n(
    served: EngineBackend, prompt_ids: list[int], params: SamplingParams, n: int
) -> list[RequestHandle]:
    """n requests into the engine, one per choice (a seed gives each its own: seed + index);
    all or none: a refusal cancels those already in."""
    handles: list[RequestHandle] = []
    try:
        for index in range(n):
            seed = None if params.seed is None else params.seed + index
            handles.append(served.submit(prompt_ids, replace(params, seed=seed)))
    except Overloaded as exc:
        for handle in handles:
            handle.cancel()
        raise OpenAIError(
            str(exc), 503, kind="server_overloaded", retry_after=exc.retry_after_s
        ) from None
    except HandlerError as exc:
        raise OpenAIError(str(exc), param="max_tokens") from None
    return handles


class _Logprobs:
    """One choice's tokens' log-probabilities in OpenAI's shape, piece by piece (a
    completion's text_offset counts on across pieces)."""

    def __init__(self, tokenizer, chat: bool):
        self.tokenizer, self.chat, self.offset = tokenizer, chat, 0

    def piece(self, entries: list[TokenLogprob]) -> dict[str, Any]:
        """`entries` in OpenAI's shape; the list is emptied (they are sent)."""
        text = self._text
        rows = [(text(e.token), e.logprob, [(text(t), lp) for t, lp in e.top]) for e in entries]
        entries.clear()
        if self.chat:
            return chat_logprobs(rows)
        shaped = completion_logprobs(rows, self.offset)
        self.offset += sum(len(token) for token, _, _ in rows)
        return shaped

    def _text(self, token: int) -> str:
        return self.tokenizer.decode([token])


def _logprobs(served: EngineBackend, params: SamplingParams, chat: bool) -> _Logprobs | None:
    return None if params.logprobs is None else _Logprobs(served.tokenizer, chat)


def _joined(answers: list[dict[str, Any]]) -> dict[str, Any]:
    """n choices' bodies as one: their choices in order, the prompt counted once."""
    first = answers[0]
    completion = sum(answer["usage"]["completion_tokens"] for answer in answers)
    choices = [answer["choices"][0] for answer in answers]
    used = usage(first["usage"]["prompt_tokens"], completion)
    return {**first, "choices": choices, "usage": used}


class _Counted:
    """A handle whose last output is kept, so n streamed choices can sum their usage."""

    def __init__(self, handle: RequestHandle):
        self.handle, self.last = handle, Output("")

    async def stream(self) -> AsyncIterator[Output]:
        async for output in self.handle.stream():
            self.last = output
            yield output

    def cancel(self) -> None:
        self.handle.cancel()


async def _merged(
    streams: list[AsyncIterator[str]], counted: list[_Counted], reply: Reply, with_usage: bool
) -> AsyncIterator[str]:
    """The choices' streams as one, chunks in the order they come (each carries its
    index), one usage chunk (when asked for n > 1) and one DONE at the end."""
    if len(streams) == 1:
        async for chunk in streams[0]:
            yield chunk
        return
    chunks: asyncio.Queue = asyncio.Queue()

    async def pump(stream: AsyncIterator[str]) -> None:
        try:
            async for chunk in stream:
                if chunk != DONE:
                    await chunks.put(chunk)
        finally:
            await chunks.put(None)

    tasks = [asyncio.ensure_future(pump(stream)) for stream in streams]
    try:
        ended = 0
        while ended < len(tasks):
            chunk = await chunks.get()
            if chunk is None:
                ended += 1
            else:
                yield chunk
        if with_usage:
            prompt = counted[0].last.prompt_tokens
            generated = sum(handle.last.completion_tokens for handle in counted)
            yield reply.usage_chunk(usage(prompt, generated))
        yield DONE
    finally:  # the client went away: every choice frees its slot
        for task in tasks:
            task.cancel()
        for handle in counted:
            handle.cancel()


def _forced_call(served: EngineBackend, tools: ToolUse) -> Callable[[], TokenConstraint]:
    """A grammar that holds the answer to one call of a forced function, in the JSON its
    family writes after the opening the prompt ends with."""
    try:
        return json_schema(served.tokenizer, tools.schema())
    except GrammarError as exc:
        raise OpenAIError(f"tools: {exc}", param="tools") from None


def _reason(reason: str | None) -> str:
    return "length" if reason == "length" else "stop"


def _usage(output) -> dict[str, int]:
    return usage(output.prompt_tokens, output.completion_tokens)


async def _events(
    handle: RequestHandle | _Counted,
    reply: Reply,
    with_usage: bool,
    timeout_message: str,
    logprobs: _Logprobs | None = None,
) -> AsyncIterator[str]:
    try:
        if reply.chat:
            yield reply.chunk(None, None, first=True)
        started = False
        pending: list[TokenLogprob] = []  # those of text not sent yet
        async for output in handle.stream():
            if output.error or output.finish_reason == "timeout":
                kind = "server_error" if output.error else "timeout"
                yield error_event(output.error or timeout_message, kind)
                return
            pending += output.logprobs
            text = output.text.lstrip() if reply.chat and not started else output.text
            if text:
                started = True
                yield reply.chunk(text, None, logprobs=logprobs and logprobs.piece(pending))
            if output.finish_reason:
                last = logprobs.piece(pending) if logprobs and pending else None
                yield reply.chunk(None, _reason(output.finish_reason), logprobs=last)
                if with_usage:
                    yield reply.usage_chunk(_usage(output))
        yield DONE
    finally:  # the client went away: free the slot at the next step
        handle.cancel()


async def _tool_events(
    handle: RequestHandle | _Counted,
    reply: Reply,
    with_usage: bool,
    timeout_message: str,
    tools: ToolUse,
) -> AsyncIterator[str]:
    """A chat stream that may call tools: content streams until a call may be opening; the
    rest is held, parsed when the answer ends and sent as tool-call deltas (or, if it is
    no call, as content)."""
    try:
        yield reply.chunk(None, None, first=True)
        text, sent = "", 0
        async for output in handle.stream():
            if output.error or output.finish_reason == "timeout":
                kind = "server_error" if output.error else "timeout"
                yield error_event(output.error or timeout_message, kind)
                return
            text = (text + output.text).lstrip()
            end = max(sent, tools.content_end(text))
            if end > sent:
                yield reply.chunk(text[sent:end], None)
                sent = end
            if output.finish_reason:
                parsed = tools.parse(text)
                for index, call in enumerate(parsed.calls):
                    for chunk in reply.tool_call_chunks(index, call.openai()):
                        yield chunk
                if not parsed.calls and text[sent:]:
                    yield reply.chunk(text[sent:], None)
                reason = "tool_calls" if parsed.calls else _reason(output.finish_reason)
                yield reply.chunk(None, reason)
                if with_usage:
                    yield reply.usage_chunk(_usage(output))
        yield DONE
    finally:  # the client went away: free the slot at the next step
        handle.cancel()
