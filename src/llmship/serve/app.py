"""The HTTP app: the SageMaker inference container contract and the Runtime API paths.

Container contract (what SageMaker calls inside the container):
    GET  /ping           200 once the model is loaded; 503 with the reason while it
                         loads or after it failed
    POST /invocations    Content-Type / Accept as sent; errors are JSON
                         {"code", "type", "message"} with the status the handler chose
Runtime API (what boto3's sagemaker-runtime client calls, with endpoint_url):
    POST /endpoints/{name}/invocations
    POST /endpoints/{name}/invocations-response-stream   (AWS event stream)
OpenAI routes (llmship's own artifacts, on the engine): /v1/models, /v1/completions,
/v1/chat/completions.
Errors on the Runtime paths have AWS's shape (x-amzn-ErrorType and a JSON body), so
boto3 raises ModelError, ValidationError and ModelNotReadyException as against AWS;
a failure after streaming began arrives inside the stream as ModelStreamError.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from llmship.serve.backends import EngineBackend, Overloaded, ThreadedHandler, load_backend
from llmship.serve.eventstream import model_stream_error, payload_part
from llmship.serve.handler import HandlerError, status_of
from llmship.serve.limits import EndpointLimits
from llmship.serve.openai_api import add_openai_routes

log = logging.getLogger("llmship.serve")
EVENT_STREAM = "application/vnd.amazon.eventstream"
VARIANT = "AllTraffic"


@dataclass
class ModelState:
    """Start-up state /ping reports: loading, ready or failed (with the reason)."""

    status: str = "loading"
    reason: str = ""
    backend: ThreadedHandler | EngineBackend | None = None


class _TooLarge(Exception):
    pass


def create_app(
    model_dir: Path,
    endpoint_name: str,
    limits: EndpointLimits,
    max_batch: int = 16,
    max_waiting: int | None = None,
) -> FastAPI:
    """The app for one artifact directory; the model loads in the background. Past
    `max_waiting` queued requests, new ones get 503 with Retry-After."""
    state = ModelState()

    def load() -> None:
        try:
            backend = load_backend(model_dir, max_batch=max_batch, max_waiting=max_waiting)
        except Exception as exc:  # reported by /ping and the log, never silently
            state.status, state.reason = "failed", f"{type(exc).__name__}: {exc}"
            log.error("model failed to load from %s: %s", model_dir, state.reason)
            return
        state.backend, state.status = backend, "ready"
        log.info("model loaded from %s (%s)", model_dir, type(backend).__name__)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        threading.Thread(target=load, name="llmship-load", daemon=True).start()
        yield
        if state.backend is not None:
            state.backend.close()

    app = FastAPI(
        title="llmship serve", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.state.model = state
    add_openai_routes(app, lambda: state.backend, endpoint_name)

    @app.get("/ping")
    async def ping() -> Response:
        if state.status == "ready":
            return JSONResponse({"status": "healthy"})
        body = {"status": state.status}
        if state.reason:
            body["reason"] = state.reason
        return JSONResponse(body, status_code=503)

    async def run(body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        return await asyncio.wait_for(
            state.backend.invoke(body, content_type, accept), timeout=limits.timeout_s
        )

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limits.max_payload_bytes:
            raise _TooLarge
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limits.max_payload_bytes:
                raise _TooLarge
        return bytes(body)

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        content_type = request.headers.get("content-type", "")
        accept = request.headers.get("accept", "*/*")
        try:
            body = await read_body(request)
        except _TooLarge:
            return _container_error(
                413,
                f"the payload is over {limits.max_payload_bytes} bytes "
                f"({limits.kind} endpoints accept at most that)",
            )
        if state.backend is None:
            return _container_error(503, f"the model is not ready ({state.status}) {state.reason}")
        try:
            data, response_type = await run(body, content_type, accept)
        except asyncio.TimeoutError:
            return _container_error(408, f"the invocation took over {limits.timeout_s} s")
        except Exception as exc:
            return _handler_failure(exc)
        return Response(data, media_type=response_type)

    @app.post("/endpoints/{name}/invocations")
    async def runtime_invoke(name: str, request: Request) -> Response:
        content_type = request.headers.get("content-type", "")
        accept = request.headers.get("accept", "*/*")
        refused = await _runtime_checks(name, request)
        if refused is not None:
            return refused
        body = request.state.body
        try:
            data, response_type = await run(body, content_type, accept)
        except asyncio.TimeoutError:
            return _model_error(
                0,
                "Your invocation timed out while waiting for a response "
                f"from container primary (over {limits.timeout_s} s).",
            )
        except Exception as exc:
            return _runtime_failure(exc)
        return Response(
            data, media_type=response_type, headers={"x-Amzn-Invoked-Production-Variant": VARIANT}
        )

    @app.post("/endpoints/{name}/invocations-response-stream")
    async def runtime_stream(name: str, request: Request) -> Response:
        content_type = request.headers.get("content-type", "")
        refused = await _runtime_checks(name, request)
        if refused is not None:
            return refused
        backend = state.backend
        if not backend.can_stream():
            return _aws_error(
                400,
                "ValidationError",
                f"Endpoint {name} does not support "
                "response streaming: its handler has no stream_fn",
            )
        chunks = backend.stream(request.state.body, content_type)
        try:  # the first chunk decides between an error response and a stream
            first = await asyncio.wait_for(anext(chunks, None), timeout=limits.timeout_s)
        except asyncio.TimeoutError:
            await chunks.aclose()
            return _model_error(
                0, "Your invocation timed out while waiting for a response from container primary."
            )
        except Exception as exc:
            return _runtime_failure(exc)

        async def events() -> AsyncIterator[bytes]:
            try:
                if first is None:
                    return
                yield payload_part(first)
                async for chunk in chunks:
                    yield payload_part(chunk)
            except Exception as exc:
                log.error("stream failed: %s", exc)
                yield model_stream_error(f"{type(exc).__name__}: {exc}")
            finally:  # a client that went away frees its slot here
                await chunks.aclose()

        return StreamingResponse(
            events(),
            media_type=EVENT_STREAM,
            headers={
                "X-Amzn-SageMaker-Content-Type": "application/jsonlines",
                "x-Amzn-Invoked-Production-Variant": VARIANT,
            },
        )

    async def _runtime_checks(name: str, request: Request) -> Response | None:
        if name != endpoint_name:
            return _aws_error(
                400, "ValidationError", f"Endpoint {name} of account local not found."
            )
        try:
            request.state.body = await read_body(request)
        except _TooLarge:
            return _aws_error(
                400,
                "ValidationError",
                "1 validation error detected: Value at "
                f"'body' failed to satisfy constraint: Member must have length "
                f"less than or equal to {limits.max_payload_bytes}",
            )
        if state.backend is None:
            return _aws_error(
                429,
                "ModelNotReadyException",
                f"Model for endpoint {name} is not ready: {state.status} {state.reason}".strip(),
            )
        return None

    return app


def _container_error(status: int, message: str) -> JSONResponse:
    kind = "BadRequest" if status < 500 else "InternalServerException"
    return JSONResponse({"code": status, "type": kind, "message": message}, status_code=status)


def _runtime_failure(exc: BaseException) -> JSONResponse:
    """A failure on the Runtime paths: AWS's 503 when at capacity, else a ModelError."""
    if isinstance(exc, Overloaded):
        response = _aws_error(503, "ServiceUnavailable", str(exc))
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return response
    response = _handler_failure(exc)
    return _model_error(response.status_code, response.body.decode())


def _handler_failure(exc: BaseException) -> JSONResponse:
    if isinstance(exc, Overloaded):
        response = _container_error(503, str(exc))
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return response
    status = status_of(exc)
    if not isinstance(exc, HandlerError) and status == 500:
        log.exception("handler raised", exc_info=exc)
    return _container_error(status, f"{type(exc).__name__}: {exc}" if status == 500 else str(exc))


def _aws_error(status: int, code: str, message: str, **extra) -> JSONResponse:
    return JSONResponse(
        {"message": message, **extra}, status_code=status, headers={"x-amzn-ErrorType": code}
    )


def _model_error(original_status: int, original_message: str) -> JSONResponse:
    """What SageMaker answers when the container answered with an error."""
    kind = "client" if 400 <= original_status < 500 else "server"
    return _aws_error(
        424,
        "ModelError",
        f"Received {kind} error ({original_status}) from primary with message "
        f'"{original_message}". See the server log for details.',
        OriginalStatusCode=original_status,
        OriginalMessage=original_message,
        LogStreamArn="local",
    )
