"""The gateway app: authenticated OpenAI routes and the SageMaker payload route in front
of configured routes, plus the playground. The same ASGI app runs under uvicorn here
(`llmship gateway`) and on AWS Lambda (lambda_handler.py).

    GET  /v1/models                      the routes the caller's key may use
    POST /v1/chat/completions            OpenAI, streaming included (SSE, usage)
    POST /v1/completions
    POST /endpoints/{route}/invocations  a Hugging Face toolkit payload, passed to the
                                         route's target (AWS-shaped errors)
    GET  /playground                     a page to try a route
    GET  /ping                           200, no key needed (health checks)

Every answered or refused request is logged (key id, route, target, status, latency,
tokens; the prompt only with gateway.log_prompts) to the store and, one JSON line each,
to the `llmship.gateway` logger.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from llmship.config.gateway import GatewayConfig, GatewayRoute
from llmship.gateway.auth import Guard, Refused
from llmship.gateway.keys import KeyRecord, key_from_headers
from llmship.gateway.routing import Chooser
from llmship.gateway.store import GatewayStore, RequestLog
from llmship.gateway.targets import (
    Backend,
    ClientFactory,
    TargetFailed,
    backend_for,
    boto_clients,
)
from llmship.gateway.tokens import TokenCounter
from llmship.gateway.translate import Answer, Ask, Delta, parse_openai, toolkit_to_ask
from llmship.protocol.openai import (
    DONE,
    BadRequest,
    Reply,
    error_body,
    error_event,
    load_json,
    model_list,
    usage,
)
from llmship.protocol.toolkit import generated_text

log = logging.getLogger("llmship.gateway")
PLAYGROUND = Path(__file__).with_name("playground.html")
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    429: "rate_limit_error",
}
AWS_ERRORS = {
    400: "ValidationError",
    401: "UnrecognizedClientException",
    403: "AccessDeniedException",
    404: "ValidationError",
    429: "ThrottlingException",
    503: "ServiceUnavailable",
    504: "ModelError",
}


class Failure(Exception):
    """A request that ends in an error answer (status, message, OpenAI param/code)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: int | None = None,
    ):
        super().__init__(message)
        self.status, self.param, self.code, self.retry_after = status, param, code, retry_after

    @classmethod
    def of(cls, exc: Exception) -> Failure:
        if isinstance(exc, Failure):
            return exc
        if isinstance(exc, Refused):
            return cls(exc.status, str(exc), code=exc.code, retry_after=exc.retry_after)
        if isinstance(exc, BadRequest):
            return cls(400, str(exc), param=exc.param)
        if isinstance(exc, TargetFailed):
            return cls(exc.status, str(exc), retry_after=exc.retry_after)
        if isinstance(exc, asyncio.TimeoutError):
            return cls(504, "the target did not answer in time")
        raise exc

    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(self.retry_after)} if self.retry_after else None

    def openai(self) -> JSONResponse:
        kind = ERROR_TYPES.get(self.status, "server_error")
        body = error_body(str(self), kind, self.param, self.code)
        return JSONResponse(body, status_code=self.status, headers=self.headers())

    def aws(self) -> JSONResponse:
        headers = {"x-amzn-ErrorType": AWS_ERRORS.get(self.status, "ModelError")}
        return JSONResponse(
            {"message": str(self)},
            status_code=self.status,
            headers={**headers, **(self.headers() or {})},
        )


@dataclass
class Call:
    """What the log records of one request, filled in as it goes."""

    started: float
    key_id: str = "-"
    route: str = "-"
    target: str = "-"
    status: int = 200
    prompt_tokens: int = 0
    completion_tokens: int = 0
    stream: bool = False
    prompt: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Gateway:
    """Routes, their backends and token counters, the guard and the log."""

    def __init__(
        self,
        config: GatewayConfig,
        store: GatewayStore,
        *,
        base_dir: Path | None = None,
        clients: ClientFactory = boto_clients,
        clock: Callable[[], float] = time.time,
    ):
        self.config, self.store, self.clock = config, store, clock
        self.guard = Guard(store, clock)
        self.chooser = Chooser(config.seed)
        self.backends: dict[tuple[str, int], Backend] = {}
        self.counters: dict[str, TokenCounter] = {}
        for name, route in config.routes.items():
            for index, target in enumerate(route.targets):
                self.backends[(name, index)] = backend_for(target, route, clients)
            tokenizer = route.tokenizer
            if tokenizer and base_dir is not None and not Path(tokenizer).is_absolute():
                tokenizer = str(base_dir / tokenizer)
            self.counters[name] = TokenCounter(tokenizer)

    async def admit(self, request: Request, call: Call, route_name: str) -> GatewayRoute:
        """The route, once the key is valid and allowed on it and under its limits."""
        record: KeyRecord = await run_in_threadpool(
            self.guard.authenticate, key_from_headers(request.headers)
        )
        call.key_id, call.route = record.key_id, route_name
        request.state.record = record
        if not record.allows(route_name):
            await run_in_threadpool(self.guard.authorize, record, route_name)  # raises 403
        route = self.config.routes.get(route_name)
        if route is None:
            raise Failure(
                404,
                f"the route {route_name!r} does not exist; GET /v1/models lists yours",
                param="model",
                code="model_not_found",
            )
        await run_in_threadpool(self.guard.authorize, record, route_name)
        return route

    def pick(self, route_name: str, route: GatewayRoute, call: Call) -> Backend:
        target = self.chooser.pick(route.targets)
        call.target = target.label
        return self.backends[(route_name, route.targets.index(target))]

    def tokens(self, ask: Ask, answer: Answer | Delta, text: str) -> tuple[int, int]:
        counter = self.counters[ask.route]
        prompt = answer.prompt_tokens
        completion = answer.completion_tokens
        return (
            prompt if prompt is not None else counter.count(ask.text),
            completion if completion is not None else counter.count(text),
        )

    async def finish(self, request: Request, call: Call) -> None:
        """Charge the tokens and write the log entry (never the key; the prompt only when
        log_prompts is on)."""
        record = getattr(request.state, "record", None)
        total = call.prompt_tokens + call.completion_tokens
        latency_ms = round((time.perf_counter() - call.started) * 1000, 1)
        entry = RequestLog(
            at=self.clock(),
            key_id=call.key_id,
            route=call.route,
            target=call.target,
            status=call.status,
            latency_ms=latency_ms,
            prompt_tokens=call.prompt_tokens,
            completion_tokens=call.completion_tokens,
            stream=call.stream,
            prompt=call.prompt if self.config.log_prompts else None,
        )

        def write() -> None:
            if record is not None and call.status < 400:
                self.guard.charge(record, total)
            self.store.log(entry)

        try:
            await run_in_threadpool(write)
        except Exception as exc:  # the answer went out; a log failure must not hide it
            log.error("could not write the request log: %s", exc)
        line = {k: v for k, v in entry.__dict__.items() if k != "prompt"}
        log.info(json.dumps(line))


def create_gateway_app(
    config: GatewayConfig,
    store: GatewayStore,
    *,
    base_dir: Path | None = None,
    clients: ClientFactory = boto_clients,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """The gateway for `config`'s routes, keeping keys, counters and logs in `store`."""
    gateway = Gateway(config, store, base_dir=base_dir, clients=clients, clock=clock)
    app = FastAPI(title="llmship gateway", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.gateway = gateway

    @app.get("/ping")
    async def ping() -> Response:
        return JSONResponse({"status": "healthy"})

    @app.get("/playground")
    async def playground() -> Response:
        return HTMLResponse(PLAYGROUND.read_text(encoding="utf-8"))

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        try:
            record = await run_in_threadpool(
                gateway.guard.authenticate, key_from_headers(request.headers)
            )
        except Refused as exc:
            return Failure.of(exc).openai()
        return JSONResponse(model_list(name for name in config.routes if record.allows(name)))

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        return await openai_call(request, chat=True)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await openai_call(request, chat=False)

    async def openai_call(request: Request, chat: bool) -> Response:
        call = Call(time.perf_counter())
        try:
            body = load_json(await request.body())
            name = body.get("model") if isinstance(body, dict) else None
            route = await gateway.admit(request, call, name if isinstance(name, str) else "")
            ask = parse_openai(body, chat, route.max_tokens)
            call.prompt, call.stream = ask.text, ask.stream
            backend = gateway.pick(ask.route, route, call)
            if ask.stream:
                return await _stream(request, call, ask, route, backend)
            answer = await asyncio.wait_for(backend.complete(ask), route.timeout_s)
        except Exception as exc:
            failure = Failure.of(exc)
            call.status = failure.status
            await gateway.finish(request, call)
            return failure.openai()
        call.prompt_tokens, call.completion_tokens = gateway.tokens(ask, answer, answer.text)
        if answer.completion_tokens is None and call.completion_tokens >= ask.max_tokens:
            answer.finish_reason = "length"
        await gateway.finish(request, call)
        used = usage(call.prompt_tokens, call.completion_tokens)
        return JSONResponse(
            Reply(ask.chat, ask.route).body(answer.text, answer.finish_reason, used)
        )

    async def _stream(
        request: Request, call: Call, ask: Ask, route: GatewayRoute, backend: Backend
    ) -> Response:
        deltas = backend.stream(ask)
        # the first piece decides between an error answer and a stream
        first = await asyncio.wait_for(anext(deltas, None), route.timeout_s)
        reply = Reply(ask.chat, ask.route)

        async def events() -> AsyncIterator[str]:
            text, last = "", Delta(finish_reason="stop")
            try:
                if ask.chat:
                    yield reply.chunk(None, None, first=True)
                pending = first
                while pending is not None:
                    if pending.text:
                        text += pending.text
                        yield reply.chunk(pending.text, None)
                    if pending.finish_reason:
                        last = pending
                    pending = await anext(deltas, None)
                tokens = gateway.tokens(ask, last, text)
                call.prompt_tokens, call.completion_tokens = tokens
                reason = last.finish_reason or "stop"
                if last.completion_tokens is None and tokens[1] >= ask.max_tokens:
                    reason = "length"
                yield reply.chunk(None, reason)
                if ask.include_usage:
                    yield reply.usage_chunk(usage(*tokens))
                yield DONE
            except Exception as exc:
                failure = Failure.of(exc) if isinstance(exc, TargetFailed) else None
                call.status = failure.status if failure else 502
                call.completion_tokens = gateway.counters[ask.route].count(text)
                yield error_event(str(exc))
            finally:
                await deltas.aclose()
                await gateway.finish(request, call)

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post("/endpoints/{route_name}/invocations")
    async def invocations(route_name: str, request: Request) -> Response:
        call = Call(time.perf_counter())
        try:
            route = await gateway.admit(request, call, route_name)
            body = await request.body()
            ask = toolkit_to_ask(route_name, load_json(body), route.max_tokens)
            call.prompt = ask.text
            backend = gateway.pick(route_name, route, call)
            content_type = request.headers.get("content-type", "application/json")
            data, media = await asyncio.wait_for(
                backend.invoke_raw(body, content_type), route.timeout_s
            )
        except Exception as exc:
            failure = Failure.of(exc)
            call.status = failure.status
            await gateway.finish(request, call)
            return failure.aws()
        counter = gateway.counters[route_name]
        call.prompt_tokens = counter.count(ask.text)
        call.completion_tokens = counter.count(generated_text(data) or "")
        await gateway.finish(request, call)
        return Response(data, media_type=media)

    return app
