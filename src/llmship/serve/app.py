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

Admission (llmship.serve.admission, sized by the `serve:` config section): at most
max_in_flight requests at once, bodies within the payload limit and body_timeout_s, a
bounded queue for the model; past any bound the answer is 503 with Retry-After (or
413 / 408), never unbounded memory. A request runs for at most request_timeout_s, then
it is cancelled in the engine; a client that disconnects frees its slot at once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from llmship.config.serving import ServeConfig
from llmship.protocol.eventstream import model_stream_error, payload_part
from llmship.serve.admission import (
    CLIENT_GONE,
    BodyRefused,
    ClientGone,
    Gate,
    InFlightLimit,
    read_body,
    unless_disconnected,
)
from llmship.serve.backends import ModelState, Overloaded, load_backend
from llmship.serve.handler import HandlerError, status_of
from llmship.serve.limits import EndpointLimits
from llmship.serve.openai_api import add_openai_routes
from llmship.serve.responses import aws_error, container_error, refusal

log = logging.getLogger("llmship.serve")
EVENT_STREAM = "application/vnd.amazon.eventstream"
VARIANT = "AllTraffic"


def create_app(
    model_dir: Path,
    endpoint_name: str,
    limits: EndpointLimits,
    settings: ServeConfig | None = None,
    max_batch: int | None = None,
    max_waiting: int | None = None,
) -> FastAPI:
    """The app for one artifact directory; the model loads in the background.
    `settings` bound what the server holds (max_batch / max_waiting, when given,
    override its fields); past the bounds new requests get 503 with Retry-After."""
    settings = (settings or ServeConfig()).with_options(
        max_batch=max_batch, max_waiting=max_waiting
    )
    timeout_s = settings.request_timeout_s or limits.timeout_s
    state = ModelState()
    gate = Gate(settings.in_flight(), settings.retry_after_s)

    def load() -> None:
        try:
            backend = load_backend(model_dir, settings, timeout_s)
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
    app.add_middleware(InFlightLimit, gate=gate)
    app.state.model, app.state.gate, app.state.settings = state, gate, settings

    async def read(request: Request) -> bytes:
        return await read_body(request, limits.max_payload_bytes, settings.body_timeout_s)

    add_openai_routes(app, state, endpoint_name, read)

    @app.get("/ping")
    async def ping() -> Response:
        if state.status == "ready":
            return JSONResponse({"status": "healthy"})
        body = {"status": state.status}
        if state.reason:
            body["reason"] = state.reason
        return JSONResponse(body, status_code=503)

    async def run(request: Request, body: bytes, content_type: str, accept: str):
        """The backend's answer within the time limit, cancelled if the client leaves."""
        work = asyncio.wait_for(state.backend.invoke(body, content_type, accept), timeout_s)
        return await unless_disconnected(request, work)

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        content_type = request.headers.get("content-type", "")
        accept = request.headers.get("accept", "*/*")
        try:
            body = await read(request)
        except BodyRefused as exc:
            if exc.status == 413:
                return container_error(413, f"{exc} ({limits.kind} endpoints accept at most that)")
            return refusal(request.url.path, exc.status, str(exc))
        if state.backend is None:
            return container_error(503, state.not_ready())
        try:
            data, response_type = await run(request, body, content_type, accept)
        except ClientGone:
            return Response(status_code=CLIENT_GONE)
        except TimeoutError:
            return container_error(
                408, f"the invocation took over {timeout_s:g} s and was cancelled"
            )
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
        try:
            data, response_type = await run(request, request.state.body, content_type, accept)
        except ClientGone:
            return Response(status_code=CLIENT_GONE)
        except TimeoutError:
            return _model_error(
                0,
                "Your invocation timed out while waiting for a response "
                f"from container primary (over {timeout_s:g} s).",
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
            return aws_error(
                400,
                "ValidationError",
                f"Endpoint {name} does not support "
                "response streaming: its handler has no stream_fn",
            )
        chunks = backend.stream(request.state.body, content_type)
        try:  # the first chunk decides between an error response and a stream
            first = await unless_disconnected(
                request, asyncio.wait_for(anext(chunks, None), timeout=timeout_s)
            )
        except ClientGone:
            await chunks.aclose()
            return Response(status_code=CLIENT_GONE)
        except TimeoutError:
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
            return aws_error(400, "ValidationError", f"Endpoint {name} of account local not found.")
        try:
            request.state.body = await read(request)
        except BodyRefused as exc:
            if exc.status != 413:
                return refusal(request.url.path, exc.status, str(exc))
            return aws_error(
                400,
                "ValidationError",
                "1 validation error detected: Value at "
                f"'body' failed to satisfy constraint: Member must have length "
                f"less than or equal to {limits.max_payload_bytes}",
            )
        if state.backend is None:
            return aws_error(
                429,
                "ModelNotReadyException",
                f"Model for endpoint {name} is not ready: {state.status} {state.reason}".strip(),
            )
        return None

    return app


def _runtime_failure(exc: BaseException) -> JSONResponse:
    """A failure on the Runtime paths: AWS's 503 when at capacity, else a ModelError."""
    if isinstance(exc, Overloaded):
        return aws_error(503, "ServiceUnavailable", str(exc), exc.retry_after_s)
    response = _handler_failure(exc)
    return _model_error(response.status_code, response.body.decode())


def _handler_failure(exc: BaseException) -> JSONResponse:
    if isinstance(exc, Overloaded):
        return container_error(503, str(exc), exc.retry_after_s)
    status = status_of(exc)
    if not isinstance(exc, HandlerError) and status == 500:
        log.exception("handler raised", exc_info=exc)
    return container_error(status, f"{type(exc).__name__}: {exc}" if status == 500 else str(exc))


def _model_error(original_status: int, original_message: str) -> JSONResponse:
    """What SageMaker answers when the container answered with an error."""
    kind = "client" if 400 <= original_status < 500 else "server"
    return aws_error(
        424,
        "ModelError",
        f"Received {kind} error ({original_status}) from primary with message "
        f'"{original_message}". See the server log for details.',
        OriginalStatusCode=original_status,
        OriginalMessage=original_message,
        LogStreamArn="local",
    )
