"""Translation to each target and back, against real services where we can run them.

SageMaker: the gateway's OpenAI routes become Hugging Face toolkit JSON sent through
boto3's sagemaker-runtime client to llmship's own runtime server (a real tiny model, a
real event stream); moto's runtime is canned. Bedrock: Converse through botocore's
Stubber on a real client (the service model validates what the gateway sends);
ConverseStream's event stream is answered at the HTTP layer (a before-send hook
returning an AWS event-stream body) so botocore's own parser reads it: the Stubber
cannot stub event streams.
"""

from __future__ import annotations

import json
import time

import boto3
import httpx
import openai
import pytest
from botocore.awsrequest import AWSResponse
from botocore.stub import Stubber

from helpers import runtime
from llmship.aws.runtime import invoke
from llmship.config.gateway import GatewayConfig, GatewayRoute, GatewayTarget
from llmship.data.samples import samsum_rows
from llmship.gateway.app import create_gateway_app
from llmship.gateway.keys import new_key
from llmship.gateway.sqlite_store import SqliteStore
from llmship.gateway.targets import LocalBackend
from llmship.gateway.translate import Ask, flatten, parse_openai, to_converse, to_toolkit
from llmship.protocol.eventstream import encode_message
from llmship.protocol.openai import BadRequest
from llmship.protocol.toolkit import generated_text, prompt_body
from llmship.serve.app import create_app
from llmship.serve.background import running
from llmship.serve.limits import limits_for

DIALOGUE = samsum_rows()[300]["dialogue"]


@pytest.fixture(scope="module")
def model_server(trained, tmp_path_factory):
    from llmship.serve.server import resolve_artifact

    model_dir = resolve_artifact(trained[1], tmp_path_factory.mktemp("unpacked"))
    with running(create_app(model_dir, "tiny", limits_for("realtime"))) as url:
        yield url, model_dir


@pytest.fixture()
def creds(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture()
def gateway(model_server, creds, tmp_path):
    url, model_dir = model_server
    config = GatewayConfig.model_validate(
        {
            "routes": {
                "sm": {
                    "targets": [{"sagemaker": "tiny", "endpoint_url": url}],
                    "tokenizer": str(model_dir),
                },
                "loc": {"targets": [{"local": url}]},
            }
        }
    )
    store = SqliteStore(tmp_path / "g.db")
    key, record = new_key("t", ["*"], requests_per_minute=100, tokens_per_day=10**6)
    store.put_key(record)
    with running(create_gateway_app(config, store)) as gw:
        yield gw, key, store, model_dir


def expected_text(server: str, max_new_tokens: int = 12) -> str:
    body = prompt_body(DIALOGUE, {"max_new_tokens": max_new_tokens, "do_sample": False})
    return generated_text(invoke(runtime(server), "tiny", body=body).body)


# ---- pure translation ----------------------------------------------------------------------


def test_openai_bodies_become_toolkit_and_converse_payloads():
    ask = parse_openai(
        {
            "model": "r",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
            ],
            "max_tokens": 20,
            "temperature": 0.5,
            "top_p": 0.9,
            "stop": "\n",
        },
        chat=True,
        max_tokens_cap=64,
    )
    assert to_toolkit(ask) == {
        "inputs": "Hi",
        "parameters": {
            "max_new_tokens": 20,
            "do_sample": True,
            "temperature": 0.5,
            "top_p": 0.9,
            "stop": ["\n"],
        },
    }
    assert to_converse(ask) == {
        "messages": [{"role": "user", "content": [{"text": "Hi"}]}],
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {
            "maxTokens": 20,
            "temperature": 0.5,
            "topP": 0.9,
            "stopSequences": ["\n"],
        },
    }
    greedy = parse_openai({"model": "r", "prompt": "x", "temperature": 0}, False, 64)
    assert to_toolkit(greedy)["parameters"] == {"max_new_tokens": 16, "do_sample": False}
    turns = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]
    assert flatten(turns) == "user: a\n\nassistant: b\n\nuser: c"
    merged = to_converse(Ask("r", True, [turns[0], turns[0]], "", 5))["messages"]
    assert merged == [{"role": "user", "content": [{"text": "a"}, {"text": "a"}]}]


def test_generation_parameters_pass_to_llmship_and_map_or_are_named_elsewhere():
    body = {"model": "r", "prompt": "x", "presence_penalty": 0.5, "logit_bias": {"7": -100}}
    ask = parse_openai({**body, "min_tokens": 3, "frequency_penalty": 1.0}, False, 64)
    target = GatewayTarget(local="http://127.0.0.1:1")
    local = LocalBackend(target, GatewayRoute(targets=[target]))._body(ask, "tiny")
    assert {k: local[k] for k in ask.options} == {
        "presence_penalty": 0.5,
        "frequency_penalty": 1.0,
        "logit_bias": {"7": -100},
        "min_tokens": 3,
    }
    held = parse_openai({"model": "r", "prompt": "x", "min_tokens": 3}, False, 64)
    assert to_toolkit(held)["parameters"]["min_new_tokens"] == 3
    for translate in (to_toolkit, to_converse):
        with pytest.raises(BadRequest) as info:
            translate(ask)
        assert info.value.param == "presence_penalty"
    with pytest.raises(BadRequest) as info:
        to_converse(held)
    assert info.value.param == "min_tokens"
    for name, value in [("n", 2), ("logprobs", 1), ("frequency_penalty", 2.5)]:
        with pytest.raises(BadRequest) as info:
            parse_openai({"model": "r", "prompt": "x", name: value}, False, 64)
        assert info.value.param == name


# ---- SageMaker, against a real model server ------------------------------------------------


def test_sagemaker_route_answers_like_the_endpoint_and_counts_tokens(gateway, model_server):
    gw, key, store, model_dir = gateway
    from tokenizers import Tokenizer

    client = openai.OpenAI(base_url=f"{gw}/v1", api_key=key, max_retries=0)
    done = client.chat.completions.create(
        model="sm",
        messages=[{"role": "user", "content": DIALOGUE}],
        max_tokens=12,
        temperature=0,
    )
    text = done.choices[0].message.content
    assert text and text == expected_text(model_server[0])
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    assert done.usage.prompt_tokens == len(tokenizer.encode(DIALOGUE, add_special_tokens=False).ids)
    assert done.usage.completion_tokens == len(tokenizer.encode(text, add_special_tokens=False).ids)
    assert done.choices[0].finish_reason in ("stop", "length")

    stream = client.chat.completions.create(
        model="sm",
        messages=[{"role": "user", "content": DIALOGUE}],
        max_tokens=12,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) >= 2 and "".join(pieces).strip() == text
    assert chunks[-1].usage.completion_tokens == done.usage.completion_tokens
    deadline = time.monotonic() + 10  # a stream's log entry is written once it has ended
    while len(store.logs(0)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [e.target for e in store.logs(0)] == ["sagemaker:tiny"] * 2


def test_toolkit_payload_route_passes_through_and_errors_are_aws_shaped(gateway, model_server):
    gw, key, _, _ = gateway
    body = {"inputs": DIALOGUE, "parameters": {"max_new_tokens": 12, "do_sample": False}}
    answer = httpx.post(f"{gw}/endpoints/sm/invocations", json=body, headers={"x-api-key": key})
    assert answer.status_code == 200
    assert generated_text(answer.content) == expected_text(model_server[0])
    refused = httpx.post(f"{gw}/endpoints/sm/invocations", json=body)
    assert refused.status_code == 401
    assert refused.headers["x-amzn-errortype"] == "UnrecognizedClientException"
    bad = {"inputs": "x", "parameters": {"bogus": 1}}
    target_refused = httpx.post(
        f"{gw}/endpoints/sm/invocations", json=bad, headers={"x-api-key": key}
    )
    assert target_refused.status_code == 400 and "bogus" in target_refused.json()["message"]


def test_local_route_passes_openai_through_with_the_servers_usage(gateway, model_server):
    gw, key, _, _ = gateway
    client = openai.OpenAI(base_url=f"{gw}/v1", api_key=key, max_retries=0)
    done = client.completions.create(model="loc", prompt="Hello there", max_tokens=6, temperature=0)
    assert done.model == "loc" and done.usage.completion_tokens <= 6
    direct = httpx.post(
        f"{model_server[0]}/v1/completions",
        json={"model": "tiny", "prompt": "Hello there", "max_tokens": 6, "temperature": 0},
    ).json()
    assert done.choices[0].text == direct["choices"][0]["text"]
    assert done.usage.prompt_tokens == direct["usage"]["prompt_tokens"]
    streamed = client.completions.create(
        model="loc", prompt="Hello there", max_tokens=6, temperature=0, stream=True
    )
    assert "".join(c.choices[0].text for c in streamed if c.choices) == done.choices[0].text


# ---- Bedrock: Converse (Stubber) and ConverseStream (real parser) ---------------------------


class _Raw:
    def __init__(self, data: bytes):
        self.data = data

    def stream(self, **_):
        yield self.data


def _event(kind: str, payload: dict) -> bytes:
    headers = {":message-type": "event", ":event-type": kind, ":content-type": "application/json"}
    return encode_message(headers, json.dumps(payload).encode())


@pytest.fixture()
def bedrock(creds, tmp_path):
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    sent: list[dict] = []

    def answer_stream(request, **_):
        sent.append(json.loads(request.body))
        body = b"".join(
            [
                _event("messageStart", {"role": "assistant"}),
                _event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hel"}}),
                _event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "lo!"}}),
                _event("messageStop", {"stopReason": "max_tokens"}),
                _event(
                    "metadata",
                    {
                        "usage": {"inputTokens": 9, "outputTokens": 2, "totalTokens": 11},
                        "metrics": {"latencyMs": 5},
                    },
                ),
            ]
        )
        headers = {"content-type": "application/vnd.amazon.eventstream"}
        return AWSResponse(request.url, 200, headers, _Raw(body))

    client.meta.events.register("before-send.bedrock-runtime.ConverseStream", answer_stream)
    model = "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc123"
    config = GatewayConfig.model_validate({"routes": {"br": {"targets": [{"bedrock": model}]}}})
    store = SqliteStore(tmp_path / "g.db")
    key, record = new_key("t", ["*"], requests_per_minute=100, tokens_per_day=10**6)
    store.put_key(record)
    with Stubber(client) as stubber:
        app = create_gateway_app(config, store, clients=lambda *_: client)
        with running(app) as gw:
            yield gw, key, stubber, sent, model


def test_bedrock_converse_translation_both_ways(bedrock):
    gw, key, stubber, _, model = bedrock
    stubber.add_response(
        "converse",
        {
            "output": {"message": {"role": "assistant", "content": [{"text": "Short answer."}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 12, "outputTokens": 3, "totalTokens": 15},
            "metrics": {"latencyMs": 10},
        },
        {
            "modelId": model,
            "messages": [{"role": "user", "content": [{"text": "Summarize: hi"}]}],
            "system": [{"text": "Be brief."}],
            "inferenceConfig": {"maxTokens": 30, "temperature": 0.2},
        },
    )
    client = openai.OpenAI(base_url=f"{gw}/v1", api_key=key, max_retries=0)
    done = client.chat.completions.create(
        model="br",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Summarize: hi"},
        ],
        max_tokens=30,
        temperature=0.2,
    )
    assert done.choices[0].message.content == "Short answer."
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (12, 3)
    stubber.assert_no_pending_responses()


def test_bedrock_stream_and_failures(bedrock):
    gw, key, stubber, sent, _ = bedrock
    client = openai.OpenAI(base_url=f"{gw}/v1", api_key=key, max_retries=0)
    stubber.deactivate()  # the stream is answered by the before-send hook
    chunks = list(
        client.chat.completions.create(
            model="br",
            messages=[{"role": "user", "content": "Hi"}],
            max_tokens=2,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello!"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (9, 2)
    assert sent[0]["inferenceConfig"] == {"maxTokens": 2, "temperature": 1.0}

    stubber.activate()
    stubber.add_client_error("converse", "ThrottlingException", "slow down", 429)
    with pytest.raises(openai.InternalServerError) as busy:
        client.chat.completions.create(model="br", messages=[{"role": "user", "content": "x"}])
    assert busy.value.status_code == 503
    assert busy.value.response.headers["retry-after"] == "1"
    stubber.add_client_error("converse", "ValidationException", "maxTokens too big", 400)
    with pytest.raises(openai.BadRequestError, match="maxTokens too big"):
        client.chat.completions.create(model="br", messages=[{"role": "user", "content": "x"}])
