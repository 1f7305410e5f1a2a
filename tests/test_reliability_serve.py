"""The server under load and faults: admission (queue bound, in-flight bound, token
budget, slow bodies), and every fault it must survive (handler exception, model load
failure, client disconnect, time limit, SIGTERM), each asserted through what the client
sees and through the engine's own slot counts."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import textwrap
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from botocore.exceptions import ClientError, EventStreamError

from helpers import LLMSHIP_CLI, engine_server, runtime
from llmship.config.serving import ServeConfig
from llmship.errors import ConfigError
from llmship.serve.app import create_app
from llmship.serve.background import free_port, running, wait_until_healthy
from llmship.serve.limits import limits_for

COMPLETION = {"model": "m", "prompt": "Anna will", "temperature": 0, "ignore_eos": True}


@contextmanager
def slowed(engine, seconds: float):
    """Every forward pass of the engine's model takes at least `seconds` longer."""
    forward = engine.model.forward

    def slow(*args, **kwargs):
        time.sleep(seconds)
        return forward(*args, **kwargs)

    engine.model.forward = slow
    try:
        yield
    finally:
        del engine.model.forward


def post(url: str, **kwargs) -> httpx.Response:
    """httpx.post with room for a busy machine (the default gives up after 5 s)."""
    return httpx.post(url, timeout=60, **kwargs)


def wait_for(condition, timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def all_free(engine) -> bool:
    stats = engine.stats()
    return stats["running"] == stats["waiting"] == 0 and stats["free_slots"] == engine.max_batch


def user_artifact(tmp_path: Path, code: str) -> Path:
    root = tmp_path / "artifact"
    (root / "code").mkdir(parents=True)
    (root / "code" / "inference.py").write_text(textwrap.dedent(code))
    return root


SLEEPER = """
    import time
    def model_fn(model_dir):
        return None
    def predict_fn(data, model):
        if data.get("fail"):
            raise RuntimeError("the handler broke")
        time.sleep(data.get("sleep", 0))
        return {"slept": data.get("sleep", 0)}
"""


# ---- admission ----------------------------------------------------------------------
def test_past_the_queue_every_route_answers_503_with_retry_after_in_its_shape(engine_artifact):
    with engine_server(engine_artifact, max_batch=1, max_waiting=1, retry_after_s=7) as (
        url,
        engine,
    ):
        with slowed(engine, 0.02):
            long = {**COMPLETION, "max_tokens": 900, "stream": True}
            with httpx.stream("POST", f"{url}/v1/completions", json=long) as first:
                lines = first.iter_lines()  # kept: a dropped iterator closes the connection
                next(lines)  # running in the one slot
                with httpx.stream("POST", f"{url}/v1/completions", json=long):
                    wait_for(lambda: engine.stats()["waiting"] == 1, what="a queued request")
                    openai = post(f"{url}/v1/completions", json={**COMPLETION})
                    container = post(f"{url}/invocations", json={"inputs": "hi", "parameters": {}})
                    with pytest.raises(ClientError) as aws:
                        runtime(url).invoke_endpoint(
                            EndpointName="m",
                            Body=b'{"inputs": "hi"}',
                            ContentType="application/json",
                        )
                    assert engine.stats()["waiting"] == 1  # the queue never grew past its bound
        assert openai.status_code == 503 and openai.headers["retry-after"] == "7"
        assert openai.json()["error"]["type"] == "server_overloaded"
        assert container.status_code == 503 and container.headers["retry-after"] == "7"
        assert "at capacity" in container.json()["message"]
        assert aws.value.response["Error"]["Code"] == "ServiceUnavailable"
        assert aws.value.response["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "7"
        assert engine.counts()["refused"] >= 3  # (boto3 may retry a 503 once)
        # Both streams were abandoned: their slot and queue place come back.
        wait_for(lambda: all_free(engine), what="the slot to be freed")
        done = post(f"{url}/v1/completions", json={**COMPLETION, "max_tokens": 4})
        assert done.status_code == 200 and done.json()["usage"]["completion_tokens"] == 4


def test_the_token_budget_is_checked_at_admission(engine_artifact):
    with engine_server(engine_artifact, max_len=64) as (url, engine):
        too_long = post(f"{url}/v1/completions", json={**COMPLETION, "max_tokens": 200})
        assert too_long.status_code == 400
        message = too_long.json()["error"]["message"]
        assert "exceeds the engine's 64" in message
        assert "at most" in message  # says what to ask for instead
        container = post(
            f"{url}/invocations", json={"inputs": "hi", "parameters": {"max_new_tokens": 200}}
        )
        assert container.status_code == 400 and "engine's 64" in container.json()["message"]
        with pytest.raises(ClientError) as aws:
            runtime(url).invoke_endpoint(
                EndpointName="m",
                Body=json.dumps({"inputs": "hi", "parameters": {"max_new_tokens": 200}}),
                ContentType="application/json",
            )
        assert aws.value.response["OriginalStatusCode"] == 400
        stats = engine.stats()
        assert stats["running"] == stats["waiting"] == 0 and stats["free_slots"] == 16
        fits = post(f"{url}/v1/completions", json={**COMPLETION, "max_tokens": 40})
        assert fits.status_code == 200 and fits.json()["usage"]["completion_tokens"] == 40


def raw_post(url: str, path: str, declared: int, sent: bytes) -> socket.socket:
    """A POST that declares `declared` body bytes and sends only `sent` of them."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    )
    sock.sendall(head.encode() + sent)
    return sock


def status_of_raw(sock: socket.socket) -> tuple[int, str]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head = data.split(b"\r\n\r\n")[0].decode()
    return int(head.split()[1]), head.lower()


def test_slow_bodies_get_408_and_the_door_holds_a_bounded_number(tmp_path):
    settings = ServeConfig(body_timeout_s=3, max_in_flight=2, retry_after_s=3)
    app = create_app(user_artifact(tmp_path, SLEEPER), "m", limits_for("realtime"), settings)
    with running(app) as url:
        slow = [raw_post(url, path, 100, b'{"sl') for path in ("/invocations", "/v1/completions")]
        wait_for(lambda: app.state.gate.active == 2, what="two requests at the door")
        # Past the in-flight bound: refused at once, before any body is read.
        refused = post(f"{url}/invocations", json={})
        assert refused.status_code == 503 and refused.headers["retry-after"] == "3"
        refused = post(f"{url}/v1/completions", json={})
        assert refused.status_code == 503 and refused.json()["error"]["type"] == "server_overloaded"
        assert httpx.get(f"{url}/ping").status_code == 200  # health checks are never refused
        statuses = [status_of_raw(sock)[0] for sock in slow]
        assert statuses == [408, 408]
        for sock in slow:
            sock.close()
        wait_for(lambda: app.state.gate.active == 0, what="the door to empty")
        assert post(f"{url}/invocations", json={}).json() == {"slept": 0}


# ---- faults -------------------------------------------------------------------------
def test_an_engine_failure_is_a_clean_500_and_serving_goes_on(engine_artifact):
    with engine_server(engine_artifact) as (url, engine):
        forward = engine.model.forward
        calls = {"n": 0}

        def breaks_twice(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] <= 2:
                raise RuntimeError("CUDA error: an illegal memory access (injected)")
            return forward(*args, **kwargs)

        engine.model.forward = breaks_twice
        try:
            container = post(f"{url}/invocations", json={"inputs": "hi"})
            openai = post(f"{url}/v1/completions", json={**COMPLETION, "max_tokens": 4})
        finally:
            del engine.model.forward
        assert container.status_code == 500
        assert container.json()["type"] == "InternalServerException"
        assert "illegal memory access (injected)" in container.json()["message"]
        assert openai.status_code == 500 and openai.json()["error"]["type"] == "server_error"
        assert engine.stats()["free_slots"] == 16
        ok = post(f"{url}/v1/completions", json={**COMPLETION, "max_tokens": 4})
        assert ok.status_code == 200


def test_a_handler_exception_is_a_model_error_on_the_runtime_api(tmp_path):
    app = create_app(user_artifact(tmp_path, SLEEPER), "m", limits_for("realtime"))
    with running(app) as url:
        client = runtime(url)
        with pytest.raises(ClientError) as info:
            client.invoke_endpoint(
                EndpointName="m", Body=b'{"fail": true}', ContentType="application/json"
            )
        assert info.value.response["Error"]["Code"] == "ModelError"
        assert info.value.response["OriginalStatusCode"] == 500
        assert "the handler broke" in info.value.response["Error"]["Message"]
        answer = client.invoke_endpoint(
            EndpointName="m", Body=b"{}", ContentType="application/json"
        )
        assert json.loads(answer["Body"].read()) == {"slept": 0}


def test_a_model_that_failed_to_load_is_explained_on_every_route(tmp_path):
    code = """
        def model_fn(model_dir):
            raise FileNotFoundError("weights.safetensors is missing")
        def predict_fn(data, model):
            return data
    """
    app = create_app(user_artifact(tmp_path, code), "m", limits_for("realtime"))
    with running(app, wait_ready=False) as url:
        wait_for(lambda: httpx.get(f"{url}/ping").json()["status"] == "failed", what="failure")
        ping = httpx.get(f"{url}/ping")
        assert ping.status_code == 503 and "weights.safetensors is missing" in ping.json()["reason"]
        container = post(f"{url}/invocations", json={})
        assert container.status_code == 503
        assert "failed to load" in container.json()["message"]
        assert "weights.safetensors is missing" in container.json()["message"]
        openai = post(f"{url}/v1/completions", json=COMPLETION)
        assert openai.status_code == 503 and "missing" in openai.json()["error"]["message"]


def test_a_client_that_disconnects_frees_its_slot_on_every_route(engine_artifact):
    with engine_server(engine_artifact, max_batch=1) as (url, engine):
        with slowed(engine, 0.02):
            # A SageMaker response stream, read once, then dropped.
            with httpx.stream(
                "POST",
                f"{url}/endpoints/m/invocations-response-stream",
                json={"inputs": "hi", "parameters": {"max_new_tokens": 900}},
            ) as stream:
                chunks = stream.iter_bytes()
                next(chunks)
                assert engine.stats()["running"] == 1
            wait_for(lambda: all_free(engine), what="the stream's slot")
            # An OpenAI stream.
            body = {**COMPLETION, "max_tokens": 900, "stream": True}
            with httpx.stream("POST", f"{url}/v1/completions", json=body) as stream:
                next(stream.iter_lines())
            wait_for(lambda: all_free(engine), what="the OpenAI stream's slot")
            # A plain request whose client gives up before the answer.
            for path, payload in (
                ("/invocations", {"inputs": "hi", "parameters": {"max_new_tokens": 900}}),
                ("/v1/completions", {**COMPLETION, "max_tokens": 900}),
            ):
                with pytest.raises(httpx.ReadTimeout):
                    httpx.post(f"{url}{path}", json=payload, timeout=0.5)
                wait_for(lambda: all_free(engine), timeout=5, what=f"{path}'s slot")
        assert engine.counts()["cancelled"] == 4


def test_generation_past_the_time_limit_is_cancelled_in_the_engine(engine_artifact):
    with engine_server(engine_artifact, max_batch=1, request_timeout_s=1.0) as (url, engine):
        with slowed(engine, 0.02):
            started = time.monotonic()
            container = post(
                f"{url}/invocations", json={"inputs": "hi", "parameters": {"max_new_tokens": 900}}
            )
            assert container.status_code == 408 and "over 1 s" in container.json()["message"]
            assert time.monotonic() - started < 5
            wait_for(lambda: all_free(engine), what="the timed-out slot")
            openai = post(f"{url}/v1/completions", json={**COMPLETION, "max_tokens": 900})
            assert openai.status_code == 408 and openai.json()["error"]["type"] == "timeout"
            # Streams are cut too: an error event, then the end.
            body = {**COMPLETION, "max_tokens": 900, "stream": True}
            with httpx.stream("POST", f"{url}/v1/completions", json=body) as stream:
                events = [line for line in stream.iter_lines() if line]
            assert "the 1 s limit" in events[-1] and '"timeout"' in events[-1]
            response = runtime(url).invoke_endpoint_with_response_stream(
                EndpointName="m",
                Body=json.dumps({"inputs": "hi", "parameters": {"max_new_tokens": 900}}),
                ContentType="application/json",
            )
            with pytest.raises(EventStreamError, match="1 s limit"):
                for _ in response["Body"]:
                    pass
            wait_for(lambda: all_free(engine), what="every slot")
        assert engine.counts()["timed_out"] >= 3  # cancelled by the engine's own deadline


def serve_process(source: Path, *options: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [*LLMSHIP_CLI, "serve", str(source), "--port", str(port), "--name", "m", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process, 120)
    except Exception:
        process.kill()
        raise
    return process, url


def test_sigterm_drains_in_flight_work_within_the_grace_period_then_exits_0(tmp_path):
    """As SageMaker stops a container: the request in flight completes, one still running
    when the grace period ends gets a clean 503, new connections are refused, exit 0."""
    grace = 4
    process, url = serve_process(user_artifact(tmp_path, SLEEPER), "--grace", str(grace))
    answers = {}

    def ask(name: str, sleep: float) -> None:
        answers[name] = httpx.post(f"{url}/invocations", json={"sleep": sleep}, timeout=60)

    try:
        clients = [
            threading.Thread(target=ask, args=("in flight", 1.5)),
            threading.Thread(target=ask, args=("too long", 120)),  # queued behind it
        ]
        for client in clients:
            client.start()
            time.sleep(0.3)
        stopped = time.monotonic()
        process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(httpx.ConnectError):  # no longer accepting
            httpx.post(f"{url}/invocations", json={}, timeout=5)
        assert process.wait(timeout=grace + 60) == 0
        elapsed = time.monotonic() - stopped
        for client in clients:
            client.join(timeout=10)
    finally:
        process.kill()
    assert answers["in flight"].status_code == 200
    assert answers["in flight"].json() == {"slept": 1.5}
    cut = answers["too long"]
    assert cut.status_code == 503 and "shutting down" in cut.json()["message"]
    assert cut.headers["retry-after"] == "1"
    assert grace <= elapsed < grace + 30  # the grace period, not the 120 s handler


def test_a_stuck_user_handler_keeps_admission_closed_instead_of_piling_up(tmp_path):
    settings = ServeConfig(max_batch=1, max_waiting=1, request_timeout_s=0.5)
    app = create_app(user_artifact(tmp_path, SLEEPER), "m", limits_for("realtime"), settings)
    with running(app) as url:
        # Both time out for their clients, but the handler thread cannot be interrupted:
        # they still count against the queue until the worker is done with them.
        assert post(f"{url}/invocations", json={"sleep": 3}).status_code == 408
        assert post(f"{url}/invocations", json={"sleep": 3}).status_code == 408
        refused = post(f"{url}/invocations", json={})
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert app.state.model.backend.worker.backlog == 2
        wait_for(lambda: app.state.model.backend.worker.backlog == 0, timeout=15, what="drain")
        assert post(f"{url}/invocations", json={}).json() == {"slept": 0}


# ---- settings -----------------------------------------------------------------------
def test_serve_settings_come_from_the_config_and_options_override_them(
    tmp_path, monkeypatch, samsum_file, tiny_llama
):
    from typer.testing import CliRunner

    from llmship.cli import app
    from llmship.serve import server

    seen = {}
    monkeypatch.setattr(server, "serve", lambda source, **kwargs: seen.update(kwargs))
    config = tmp_path / "llmship.yaml"
    config.write_text(
        f"model: {{name_or_path: {tiny_llama}}}\n"
        f"data: {{source: {samsum_file}}}\n"
        "serve: {max_waiting: 3, shutdown_grace_s: 5, request_timeout_s: 2}\n"
    )
    result = CliRunner().invoke(app, ["serve", "x", "-c", str(config), "--max-batch", "2"])
    assert result.exit_code == 0, result.output
    settings = seen["settings"]
    assert (settings.max_batch, settings.max_waiting, settings.shutdown_grace_s) == (2, 3, 5)
    assert settings.in_flight() == 2 + 3 + 64
    result = CliRunner().invoke(app, ["serve", "x", "-c", str(config), "--max-batch", "0"])
    assert isinstance(result.exception, ConfigError)
    assert "serve.max_batch" in str(result.exception)
