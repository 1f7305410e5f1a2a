"""Calling a route's targets: an OpenAI server, a SageMaker endpoint, a Bedrock model.

Each backend answers an Ask whole (`complete`) or piece by piece (`stream`), and
passes a SageMaker toolkit payload through (`invoke_raw`). A failure becomes a
TargetFailed carrying the status the gateway answers: 400 when the target refused the
caller's parameters, 503 (with Retry-After) when it is busy or not ready, 504 when it
took too long, 502 for the rest. boto3 calls run in worker threads so the event loop
keeps serving other requests while one waits.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from llmship.aws.errors import error_code, error_message
from llmship.config.gateway import GatewayRoute, GatewayTarget
from llmship.gateway.translate import (
    Answer,
    Ask,
    Delta,
    from_converse,
    to_converse,
    to_toolkit,
    toolkit_to_ask,
)
from llmship.protocol.openai import BadRequest
from llmship.protocol.toolkit import generated_text, stream_text

JSON = "application/json"
BUSY = {
    "ThrottlingException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "ModelNotReadyException",
    "ModelNotReady",
    "TooManyRequestsException",
}
# (service, region, endpoint_url, timeout_s) -> a boto3 client; tests pass their own
ClientFactory = Callable[[str, str | None, str | None, float], Any]


def _once(make: Callable[[], Any]) -> Callable[[], Any]:
    """`make()` on the first call, the same object after (boto3 clients are thread-safe
    and slow to build)."""
    made: list[Any] = []
    lock = threading.Lock()

    def get() -> Any:
        with lock:
            if not made:
                made.append(make())
            return made[0]

    return get


class TargetFailed(Exception):
    def __init__(self, status: int, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.status, self.retry_after = status, retry_after


def boto_clients(service: str, region: str | None, endpoint_url: str | None, timeout_s: float):
    """A runtime client from llmship's one factory with the route's read timeout: a request
    that reached the model is sent once (a retry would run, and bill, it twice)."""
    from llmship.aws.session import make_session, runtime_client

    options = {"endpoint_url": endpoint_url} if endpoint_url else {}
    return runtime_client(make_session(region=region), service, timeout_s, **options)


def _aws_failure(exc: Exception, where: str) -> TargetFailed:
    from botocore.exceptions import ClientError, ReadTimeoutError

    if isinstance(exc, ReadTimeoutError):
        return TargetFailed(504, f"{where} did not answer in time")
    if not isinstance(exc, ClientError):
        return TargetFailed(502, f"{where} failed: {exc}")
    code, message = error_code(exc) or "Unknown", error_message(exc)
    original = exc.response.get("OriginalStatusCode")
    if code in BUSY:
        return TargetFailed(503, f"{where} is busy ({code}): {message}", retry_after=1)
    if code in ("ValidationError", "ValidationException") or (
        code == "ModelError" and isinstance(original, int) and 400 <= original < 500
    ):
        return TargetFailed(400, f"{where} refused the request ({code}): {message}")
    return TargetFailed(502, f"{where} failed ({code}): {message}")


class LocalBackend:
    """An OpenAI-compatible server (such as `llmship serve`): the body is passed on with the
    target's model name; usage comes back from it."""

    def __init__(self, target: GatewayTarget, route: GatewayRoute):
        self.url = (target.local or "").rstrip("/")
        self.model = target.model
        self.label = target.label
        self.timeout = httpx.Timeout(route.timeout_s, connect=10)

    async def _model(self, client: httpx.AsyncClient) -> str:
        if self.model is None:
            response = await client.get(f"{self.url}/v1/models")
            self._check(response)
            self.model = response.json()["data"][0]["id"]
        return self.model

    def _body(self, ask: Ask, model: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": ask.max_tokens,
            "temperature": ask.temperature,
            "top_p": ask.top_p,
        }
        body.update({"messages": ask.messages} if ask.chat else {"prompt": ask.prompt})
        if ask.stop:
            body["stop"] = ask.stop
        if ask.seed is not None:
            body["seed"] = ask.seed
        if ask.ignore_eos:
            body["ignore_eos"] = True
        body.update(ask.options)
        if ask.response_format:
            body["response_format"] = ask.response_format
        return body

    def _path(self, ask: Ask) -> str:
        return f"{self.url}/v1/{'chat/completions' if ask.chat else 'completions'}"

    def _check(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:500]
        where = f"{self.label} answered {response.status_code}"
        if response.status_code == 400:
            raise TargetFailed(400, f"{where}: {message}")
        if response.status_code in (429, 503):
            retry = response.headers.get("retry-after", "1")
            raise TargetFailed(503, f"{where}: {message}", int(retry) if retry.isdigit() else 1)
        raise TargetFailed(502, f"{where}: {message}")

    async def complete(self, ask: Ask) -> Answer:
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(
                    self._path(ask), json=self._body(ask, await self._model(client))
                )
                self._check(response)
        except httpx.TimeoutException:
            raise TargetFailed(504, f"{self.label} did not answer in time") from None
        except httpx.TransportError as exc:
            raise TargetFailed(502, f"{self.label} cannot be reached: {exc}") from None
        data = response.json()
        choice, used = data["choices"][0], data.get("usage") or {}
        text = choice["message"]["content"] if ask.chat else choice["text"]
        return Answer(
            text=text or "",
            finish_reason=choice.get("finish_reason") or "stop",
            prompt_tokens=used.get("prompt_tokens"),
            completion_tokens=used.get("completion_tokens"),
        )

    async def stream(self, ask: Ask) -> AsyncIterator[Delta]:
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                body = {
                    **self._body(ask, await self._model(client)),
                    "stream": True,
                    "stream_options": {"include_usage": True},
                }
                async with client.stream("POST", self._path(ask), json=body) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        self._check(response)
                    reason = None
                    async for line in response.aiter_lines():
                        if not line.startswith("data:"):
                            continue
                        data = line[5:].strip()
                        if data == "[DONE]":
                            break
                        event = json.loads(data)
                        if "error" in event:
                            raise TargetFailed(
                                502, f"{self.label}: {event['error'].get('message')}"
                            )
                        for choice in event.get("choices", []):
                            piece = (
                                (choice.get("delta") or {}).get("content")
                                if ask.chat
                                else choice.get("text")
                            )
                            reason = choice.get("finish_reason") or reason
                            if piece:
                                yield Delta(text=piece)
                        if event.get("usage"):
                            yield Delta(
                                finish_reason=reason or "stop",
                                prompt_tokens=event["usage"].get("prompt_tokens"),
                                completion_tokens=event["usage"].get("completion_tokens"),
                            )
                            reason = None
                    if reason:
                        yield Delta(finish_reason=reason)
        except httpx.TimeoutException:
            raise TargetFailed(504, f"{self.label} did not answer in time") from None
        except httpx.TransportError as exc:
            raise TargetFailed(502, f"{self.label} cannot be reached: {exc}") from None

    async def invoke_raw(self, body: bytes, content_type: str) -> tuple[bytes, str]:
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(
                    f"{self.url}/invocations", content=body, headers={"content-type": content_type}
                )
        except httpx.TimeoutException:
            raise TargetFailed(504, f"{self.label} did not answer in time") from None
        except httpx.TransportError as exc:
            raise TargetFailed(502, f"{self.label} cannot be reached: {exc}") from None
        if response.status_code >= 400:
            status = 400 if 400 <= response.status_code < 500 else 502
            raise TargetFailed(
                status, f"{self.label} answered {response.status_code}: {response.text[:500]}"
            )
        return response.content, response.headers.get("content-type", JSON)


class SageMakerBackend:
    """A SageMaker endpoint through sagemaker-runtime, in the Hugging Face toolkit's JSON.
    Token counts are left to the gateway's tokenizer (the toolkit reports none)."""

    def __init__(self, target: GatewayTarget, route: GatewayRoute, clients: ClientFactory):
        self.endpoint = target.sagemaker or ""
        self.label = target.label
        self._client = _once(
            lambda: clients(
                "sagemaker-runtime", target.region, target.endpoint_url, route.timeout_s
            )
        )

    def _invoke(self, body: bytes, content_type: str = JSON) -> tuple[bytes, str]:
        try:
            response = self._client().invoke_endpoint(
                EndpointName=self.endpoint, Body=body, ContentType=content_type
            )
            return response["Body"].read(), response.get("ContentType", JSON)
        except Exception as exc:
            raise _aws_failure(exc, self.label) from None

    async def complete(self, ask: Ask) -> Answer:
        data, _ = await run_in_threadpool(self._invoke, json.dumps(to_toolkit(ask)).encode())
        text = generated_text(data)
        if text is None:
            raise TargetFailed(502, f"{self.label} answered in a shape that is not the toolkit's")
        return Answer(text=text, finish_reason="stop")

    def _parts(self, body: bytes) -> Iterator[bytes]:
        from botocore.exceptions import EventStreamError

        try:
            response = self._client().invoke_endpoint_with_response_stream(
                EndpointName=self.endpoint, Body=body, ContentType=JSON
            )
            for event in response["Body"]:
                if "PayloadPart" in event:
                    yield event["PayloadPart"]["Bytes"]
        except EventStreamError as exc:
            raise TargetFailed(502, f"{self.label} failed mid-stream: {exc}") from None
        except TargetFailed:
            raise
        except Exception as exc:
            raise _aws_failure(exc, self.label) from None

    async def stream(self, ask: Ask) -> AsyncIterator[Delta]:
        parts = self._parts(json.dumps(to_toolkit(ask)).encode())
        async for piece in iterate_in_threadpool(stream_text(parts)):
            yield Delta(text=piece)
        yield Delta(finish_reason="stop")

    async def invoke_raw(self, body: bytes, content_type: str) -> tuple[bytes, str]:
        return await run_in_threadpool(self._invoke, body, content_type)


class BedrockBackend:
    """A Bedrock model (foundation model, inference profile, custom model or provisioned
    throughput ARN) through Converse / ConverseStream, which report usage."""

    def __init__(self, target: GatewayTarget, route: GatewayRoute, clients: ClientFactory):
        self.model_id = target.bedrock or ""
        self.label = target.label
        self.max_tokens_cap = route.max_tokens
        self._client = _once(
            lambda: clients("bedrock-runtime", target.region, None, route.timeout_s)
        )

    def _converse(self, ask: Ask) -> dict:
        request = to_converse(ask)  # a BadRequest stays the caller's 400
        try:
            return self._client().converse(modelId=self.model_id, **request)
        except Exception as exc:
            raise _aws_failure(exc, self.label) from None

    async def complete(self, ask: Ask) -> Answer:
        return from_converse(await run_in_threadpool(self._converse, ask))

    def _events(self, ask: Ask) -> Iterator[Delta]:
        request = to_converse(ask)  # a BadRequest stays the caller's 400
        try:
            response = self._client().converse_stream(modelId=self.model_id, **request)
            reason, used = "stop", {}
            for event in response["stream"]:
                if "contentBlockDelta" in event:
                    text = event["contentBlockDelta"].get("delta", {}).get("text")
                    if text:
                        yield Delta(text=text)
                elif "messageStop" in event:
                    stop = event["messageStop"].get("stopReason", "")
                    reason = "length" if stop == "max_tokens" else "stop"
                elif "metadata" in event:
                    used = event["metadata"].get("usage", {})
            yield Delta(
                finish_reason=reason,
                prompt_tokens=used.get("inputTokens"),
                completion_tokens=used.get("outputTokens"),
            )
        except TargetFailed:
            raise
        except Exception as exc:
            raise _aws_failure(exc, self.label) from None

    async def stream(self, ask: Ask) -> AsyncIterator[Delta]:
        async for delta in iterate_in_threadpool(self._events(ask)):
            yield delta

    async def invoke_raw(self, body: bytes, content_type: str) -> tuple[bytes, str]:
        try:
            ask = toolkit_to_ask("", json.loads(body), self.max_tokens_cap)
        except (ValueError, BadRequest) as exc:
            raise TargetFailed(400, f"{self.label}: {exc}") from None
        answer = await self.complete(ask)
        return json.dumps([{"generated_text": answer.text}]).encode(), JSON


Backend = LocalBackend | SageMakerBackend | BedrockBackend


def backend_for(target: GatewayTarget, route: GatewayRoute, clients: ClientFactory) -> Backend:
    if target.kind == "local":
        return LocalBackend(target, route)
    if target.kind == "sagemaker":
        return SageMakerBackend(target, route, clients)
    return BedrockBackend(target, route, clients)
