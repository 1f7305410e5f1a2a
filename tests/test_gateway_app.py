"""The gateway app over real HTTP: keys, each auth failure, limits, weighted routing,
OpenAI shapes (the official openai client), streaming, request logs and stats.

The targets here are small OpenAI-compatible servers that answer with their own name,
so which target served a request shows in the answer; the SageMaker and model-backed
paths are in test_gateway_targets.py.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import openai
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from llmship.config.gateway import GatewayConfig
from llmship.gateway.app import create_gateway_app
from llmship.gateway.keys import digest_of, key_from_headers, new_key
from llmship.gateway.routing import Chooser
from llmship.gateway.sqlite_store import SqliteStore
from llmship.gateway.stats import usage_by_key
from llmship.serve.background import running


def fake_openai(name: str) -> FastAPI:
    """An OpenAI server whose answer is its name, streamed a word at a time."""
    app = FastAPI()

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": f"model-{name}", "object": "model"}]}

    @app.post("/v1/{kind:path}")
    async def complete(kind: str, request: Request):
        body = await request.json()
        if body["model"] != f"model-{name}":
            return JSONResponse({"error": {"message": "wrong model"}}, status_code=404)
        if body.get("temperature") == 7:
            return JSONResponse({"error": {"message": "temperature too high"}}, 400)
        chat = kind == "chat/completions"
        words = [f"I am {name}", " and", " done"]
        usage = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
        if not body.get("stream"):
            text = "".join(words)
            choice = {"message": {"role": "assistant", "content": text}} if chat else {"text": text}
            return {"choices": [{"index": 0, "finish_reason": "stop", **choice}], "usage": usage}

        async def events():
            for word in words:
                piece = {"delta": {"content": word}} if chat else {"text": word}
                yield f"data: {json.dumps({'choices': [{'index': 0, **piece}]})}\n\n"
                await asyncio.sleep(0.01)
            last = {"index": 0, "finish_reason": "stop", "delta": {}}
            yield f"data: {json.dumps({'choices': [last]})}\n\n"
            yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


class Clock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def targets():
    with (
        running(fake_openai("alpha"), wait_ready=False) as alpha,
        running(fake_openai("beta"), wait_ready=False) as beta,
    ):
        yield {"alpha": alpha, "beta": beta}


@pytest.fixture()
def env(targets, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMSHIP_HOME", str(tmp_path))
    config = GatewayConfig.model_validate(
        {
            "seed": 7,
            "routes": {
                "ab": {
                    "targets": [
                        {"local": targets["alpha"], "weight": 3},
                        {"local": targets["beta"], "weight": 1},
                    ]
                },
                "solo": {"targets": [{"local": targets["beta"], "model": "model-beta"}]},
                "down": {"targets": [{"local": "http://127.0.0.1:9", "model": "x"}]},
            },
        }
    )
    store, clock = SqliteStore(tmp_path / "gateway.db"), Clock()
    app = create_gateway_app(config, store, clock=clock)
    with running(app) as url:
        yield url, store, clock, config


def make_key(store, routes=("*",), rpm=1000, tpd=1_000_000):
    key, record = new_key("test", list(routes), requests_per_minute=rpm, tokens_per_day=tpd)
    store.put_key(record)
    return key, record


def client(url: str, key: str | None) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key or "none", max_retries=0)


def chat(url, key, route="solo", **extra):
    return httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": route, "messages": [{"role": "user", "content": "hi"}], **extra},
        headers={"Authorization": f"Bearer {key}"} if key else {},
        timeout=30,
    )


# ---- keys and auth -------------------------------------------------------------------------


def test_keys_are_stored_hashed_and_read_from_either_header(env):
    url, store, _, _ = env
    key, record = make_key(store)
    assert record.digest == digest_of(key) and key not in json.dumps(record.__dict__)
    assert key_from_headers({"authorization": f"Bearer {key}"}) == key
    assert key_from_headers({"x-api-key": key}) == key
    assert key_from_headers({"authorization": "Basic abc"}) is None
    by_header = httpx.get(f"{url}/v1/models", headers={"x-api-key": key})
    assert by_header.status_code == 200
    assert {m["id"] for m in by_header.json()["data"]} == {"ab", "solo", "down"}


def test_each_auth_failure_has_its_own_status_and_message(env):
    url, store, _, _ = env
    missing = chat(url, None)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "missing_api_key"

    good, record = make_key(store, routes=["solo"])
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    wrong = chat(url, forged)
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    assert chat(url, "not-even-a-key").status_code == 401

    other_route = chat(url, good, route="ab")
    assert other_route.status_code == 403
    assert other_route.json()["error"]["code"] == "route_not_allowed"
    models = httpx.get(f"{url}/v1/models", headers={"authorization": f"Bearer {good}"})
    assert [m["id"] for m in models.json()["data"]] == ["solo"]

    assert chat(url, good).status_code == 200
    store.put_key(record.revoke(time.time()))
    revoked = chat(url, good)
    assert revoked.status_code == 401 and revoked.json()["error"]["code"] == "revoked_api_key"

    everything, _ = make_key(store)
    unknown = chat(url, everything, route="nope")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"


def test_the_openai_client_raises_its_own_exceptions(env):
    url, store, _, _ = env
    with pytest.raises(openai.AuthenticationError):
        client(url, None).models.list()
    key, _ = make_key(store, routes=["solo"])
    with pytest.raises(openai.PermissionDeniedError):
        client(url, key).chat.completions.create(
            model="ab", messages=[{"role": "user", "content": "x"}]
        )


# ---- limits --------------------------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after_until_the_next_minute(env):
    url, store, clock, _ = env
    clock.now = 1_800_000_030.0  # 30 s into a minute
    key, _ = make_key(store, rpm=2)
    assert [chat(url, key).status_code for _ in range(2)] == [200, 200]
    limited = chat(url, key)
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert limited.headers["retry-after"] == "30"
    with pytest.raises(openai.RateLimitError):
        client(url, key).completions.create(model="solo", prompt="x")
    clock.now += 30
    assert chat(url, key).status_code == 200


def test_token_quota_counts_usage_and_refuses_until_utc_midnight(env):
    url, store, clock, _ = env
    clock.now = 1_800_000_000.0 - 1_800_000_000.0 % 86400 + 86400 - 100  # 100 s to midnight
    key, _ = make_key(store, tpd=10)
    first = chat(url, key)
    assert first.json()["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    assert chat(url, key).status_code == 200  # 8 < 10 before it: served, now 16
    over = chat(url, key)
    assert over.status_code == 429 and over.json()["error"]["code"] == "quota_exceeded"
    assert over.headers["retry-after"] == "100"
    clock.now += 100
    assert chat(url, key).status_code == 200


# ---- routing -------------------------------------------------------------------------------


def test_weights_split_traffic_as_the_seeded_chooser_says(env):
    url, store, _, config = env
    key, _ = make_key(store)
    served = [
        client(url, key)
        .chat.completions.create(
            model="ab", messages=[{"role": "user", "content": "who?"}], max_tokens=8
        )
        .choices[0]
        .message.content
        for _ in range(24)
    ]
    expected_chooser = Chooser(7)
    expected = [expected_chooser.pick(config.routes["ab"].targets).local for _ in range(24)]
    names = {
        env[3].routes["ab"].targets[0].local: "alpha",
        env[3].routes["ab"].targets[1].local: "beta",
    }
    assert served == [f"I am {names[u]} and done" for u in expected]
    alpha = sum(s.startswith("I am alpha") for s in served)
    assert 12 <= alpha <= 23  # 3:1 weights, both in use
    logged = [e.target for e in store.logs(0) if e.route == "ab"]
    assert logged == [f"local:{u}" for u in expected]


def test_weight_zero_takes_a_target_out_and_all_zero_is_refused(targets):
    from pydantic import ValidationError

    config = GatewayConfig.model_validate(
        {
            "routes": {
                "r": {
                    "targets": [
                        {"local": targets["alpha"]},
                        {"local": targets["beta"], "weight": 0},
                    ]
                }
            }
        }
    )
    chooser = Chooser(1)
    assert {chooser.pick(config.routes["r"].targets).local for _ in range(50)} == {targets["alpha"]}
    with pytest.raises(ValidationError, match="weight 0"):
        GatewayConfig.model_validate(
            {"routes": {"r": {"targets": [{"local": targets["alpha"], "weight": 0}]}}}
        )
    with pytest.raises(ValidationError, match="exactly one of local, sagemaker, bedrock"):
        GatewayConfig.model_validate(
            {"routes": {"r": {"targets": [{"sagemaker": "e", "bedrock": "m"}]}}}
        )


# ---- OpenAI shapes and streaming -----------------------------------------------------------


def test_openai_client_completions_and_streams(env):
    url, store, _, _ = env
    key, _ = make_key(store)
    c = client(url, key)
    done = c.completions.create(model="solo", prompt="hello", max_tokens=5)
    assert done.choices[0].text == "I am beta and done" and done.usage.total_tokens == 8
    stream = c.chat.completions.create(
        model="solo",
        messages=[{"role": "user", "content": "hello"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    pieces = [
        ch.choices[0].delta.content for ch in chunks if ch.choices and ch.choices[0].delta.content
    ]
    assert pieces == ["I am beta", " and", " done"]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "stop"
    assert chunks[-1].usage.prompt_tokens == 5 and chunks[-1].usage.completion_tokens == 3
    text_stream = list(c.completions.create(model="solo", prompt="x", stream=True))
    assert "".join(ch.choices[0].text for ch in text_stream if ch.choices) == "I am beta and done"


def test_bad_bodies_and_target_failures_are_openai_errors(env):
    url, store, _, _ = env
    key, _ = make_key(store)
    headers = {"Authorization": f"Bearer {key}"}
    not_json = httpx.post(f"{url}/v1/completions", content=b"{", headers=headers)
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["error"]["message"]
    assert chat(url, key, max_tokens=100_000).json()["error"]["param"] == "max_tokens"
    assert chat(url, key, n=2).status_code == 400
    refused = chat(url, key, temperature=7)  # the target itself says 400
    assert (
        refused.status_code == 400 and "temperature too high" in refused.json()["error"]["message"]
    )
    down = chat(url, key, route="down")
    assert down.status_code == 502 and "cannot be reached" in down.json()["error"]["message"]
    streamed_down = chat(url, key, route="down", stream=True)
    assert streamed_down.status_code == 502


# ---- logs and stats ------------------------------------------------------------------------


def test_request_log_has_usage_and_never_the_prompt_or_key(env, tmp_path):
    url, store, _, _ = env
    key, record = make_key(store)
    secret_prompt = "my-secret-prompt-text"
    httpx.post(
        f"{url}/v1/completions",
        json={"model": "solo", "prompt": secret_prompt},
        headers={"x-api-key": key},
    )
    chat(url, None)
    entries = store.logs(0)
    ok = [e for e in entries if e.key_id == record.key_id]
    assert len(ok) == 1 and ok[0].status == 200 and ok[0].route == "solo"
    assert (ok[0].prompt_tokens, ok[0].completion_tokens) == (5, 3) and ok[0].latency_ms > 0
    assert ok[0].prompt is None
    assert any(e.key_id == "-" and e.status == 401 for e in entries)
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("gateway.db*"))
    assert secret_prompt.encode() not in raw and key.encode() not in raw
    rows = {r.key_id: r for r in usage_by_key(entries)}
    assert rows[record.key_id].prompt_tokens == 5 and rows["-"].errors == 1


def test_prompts_are_logged_only_when_turned_on(targets, tmp_path):
    config = GatewayConfig.model_validate(
        {"log_prompts": True, "routes": {"solo": {"targets": [{"local": targets["beta"]}]}}}
    )
    store = SqliteStore(tmp_path / "g.db")
    key, _ = make_key(store)
    with running(create_gateway_app(config, store)) as url:
        client(url, key).completions.create(model="solo", prompt="remember me")
    assert store.logs(0)[0].prompt == "remember me"
