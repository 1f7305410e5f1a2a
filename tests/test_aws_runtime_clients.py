"""Runtime clients (sagemaker-runtime, bedrock-runtime) against a local HTTP server that
counts requests: a request that reached the model is sent exactly once, even when the
client stops waiting (the model may still be generating, and billing); a request AWS
refused before running it (throttled, model not ready, no connection) is tried again.

Error shapes, as the services send them (rest-json: the code in x-amzn-ErrorType, the
message in the body):
- ThrottlingException, HTTP 400, "The request was denied due to request throttling."
  (SageMaker API Reference, Common Errors);
- ModelNotReadyException, HTTP 429, "The model specified in the request is not ready to
  serve inference requests." (Bedrock Runtime API Reference, Converse errors);
- ModelError, HTTP 424, "Received client error (400) from primary with message ..."
  (SageMaker Runtime API Reference, InvokeEndpoint errors; aws/sagemaker-python-sdk#1119
  shows the shape), InternalFailure, HTTP 500 (same page): the model ran, or may have.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from llmship.aws.session import RUNTIME_ATTEMPTS, client, make_session, runtime_client
from llmship.gateway.targets import boto_clients

REGION = "us-west-2"
CONVERSE_OK = {
    "output": {"message": {"role": "assistant", "content": [{"text": "hello"}]}},
    "stopReason": "end_turn",
    "usage": {"inputTokens": 3, "outputTokens": 1, "totalTokens": 4},
    "metrics": {"latencyMs": 12},
}


class Model(BaseHTTPRequestHandler):
    """Answers each POST with the next of `answers`: (status, error code or None, body),
    or "slow" (sleeps past the client's read timeout, then answers)."""

    answers: ClassVar[list] = []
    requests: ClassVar[list[str]] = []

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).requests.append(self.path)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if answer == "slow":
            time.sleep(1.5)
            answer = (200, None, b'[{"generated_text": "late"}]')
        status, code, body = answer
        self.send_response(status)
        if code:
            self.send_header("x-amzn-ErrorType", f"{code}:http://internal.amazon.com/")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def model(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setattr(random, "uniform", lambda low, high: 0.0)  # no backoff sleeps
    Model.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Model)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield Model, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def _error(status: int, code: str, message: str) -> tuple[int, str, bytes]:
    return status, code, json.dumps({"message": message}).encode()


MAKERS = {
    "runtime_client": lambda url, timeout: runtime_client(
        make_session(region=REGION), "sagemaker-runtime", timeout, endpoint_url=url
    ),
    "client": lambda url, timeout: client(
        make_session(region=REGION), "sagemaker-runtime", endpoint_url=url
    ),
    "gateway": lambda url, timeout: boto_clients("sagemaker-runtime", REGION, url, timeout),
}


@pytest.mark.parametrize("maker", ["runtime_client", "gateway"])
def test_a_read_timeout_is_never_sent_again(model, maker):
    handler, url = model
    handler.answers = ["slow"]
    runtime = MAKERS[maker](url, 0.5)
    with pytest.raises(ReadTimeoutError):
        runtime.invoke_endpoint(EndpointName="slow", Body=b'{"inputs": "hi"}')
    time.sleep(0.2)
    assert handler.requests == ["/endpoints/slow/invocations"]


@pytest.mark.parametrize("maker", ["runtime_client", "client", "gateway"])
def test_every_runtime_client_sends_once_and_waits_the_documented_limit(model, maker):
    _, url = model
    runtime = MAKERS[maker](url, None if maker != "gateway" else 30)
    config = runtime.meta.config
    assert config.retries["total_max_attempts"] == 1
    if maker != "gateway":  # the gateway waits its route's timeout_s
        assert config.read_timeout == 70  # InvokeEndpoint: 60 s, plus a margin


def test_bedrock_runtime_waits_for_the_longest_documented_inference(model):
    _, url = model
    runtime = client(make_session(region=REGION), "bedrock-runtime", endpoint_url=url)
    assert runtime.meta.config.read_timeout >= 3600  # Bedrock: up to 60 minutes
    assert runtime.meta.config.retries["total_max_attempts"] == 1


def test_a_throttled_invocation_is_retried_then_answers(model):
    handler, url = model
    handler.answers = [
        _error(400, "ThrottlingException", "The request was denied due to request throttling."),
        (200, None, b'[{"generated_text": "hello"}]'),
    ]
    runtime = runtime_client(make_session(region=REGION), "sagemaker-runtime", endpoint_url=url)
    answer = runtime.invoke_endpoint(EndpointName="busy", Body=b'{"inputs": "hi"}')
    assert answer["Body"].read() == b'[{"generated_text": "hello"}]'
    assert len(handler.requests) == 2


def test_a_bedrock_model_not_ready_is_retried_then_answers(model):
    handler, url = model
    handler.answers = [
        _error(
            429,
            "ModelNotReadyException",
            "The model specified in the request is not ready to serve inference requests.",
        ),
        (200, None, json.dumps(CONVERSE_OK).encode()),
    ]
    runtime = runtime_client(make_session(region=REGION), "bedrock-runtime", endpoint_url=url)
    answer = runtime.converse(
        modelId="arn:aws:bedrock:us-west-2:123456789012:provisioned-model/abc",
        messages=[{"role": "user", "content": [{"text": "hi"}]}],
    )
    assert answer["output"]["message"]["content"] == [{"text": "hello"}]
    assert len(handler.requests) == 2


def test_throttling_is_retried_a_bounded_number_of_times(model):
    handler, url = model
    handler.answers = [
        _error(400, "ThrottlingException", "The request was denied due to request throttling.")
    ]
    runtime = runtime_client(make_session(region=REGION), "sagemaker-runtime", endpoint_url=url)
    with pytest.raises(ClientError, match="ThrottlingException"):
        runtime.invoke_endpoint(EndpointName="busy", Body=b"{}")
    assert len(handler.requests) == RUNTIME_ATTEMPTS


@pytest.mark.parametrize(
    "answer",
    [
        _error(
            424,
            "ModelError",
            "Received client error (400) from primary with message "
            '"{"error": "Input validation error"}".',
        ),
        _error(500, "InternalFailure", "An internal failure occurred."),
    ],
    ids=["ModelError", "InternalFailure"],
)
def test_an_answer_after_the_model_ran_is_not_retried(model, answer):
    handler, url = model
    handler.answers = [answer]
    runtime = runtime_client(make_session(region=REGION), "sagemaker-runtime", endpoint_url=url)
    with pytest.raises(ClientError, match=answer[1]):
        runtime.invoke_endpoint(EndpointName="broken", Body=b"{}")
    assert len(handler.requests) == 1


def test_a_connection_that_never_opened_is_retried(model):
    with socket.socket() as probe:  # a port nobody listens on: the body is never sent
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    runtime = runtime_client(make_session(region=REGION), "sagemaker-runtime", endpoint_url=closed)
    sent: list[str] = []
    runtime.meta.events.register("before-send", lambda request, **_: sent.append(request.url))
    with pytest.raises(EndpointConnectionError):
        runtime.invoke_endpoint(EndpointName="away", Body=b"{}")
    assert len(sent) == RUNTIME_ATTEMPTS
