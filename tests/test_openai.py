"""The OpenAI-compatible routes with the official openai client, streaming included."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from helpers import train_on_memo
from llmship.data.samples import samsum_rows
from llmship.package.build import build_artifact
from llmship.serve.app import create_app
from llmship.serve.background import running
from llmship.serve.limits import limits_for

DIALOGUE = samsum_rows()[0]["dialogue"]
MESSAGES = [{"role": "user", "content": f"Summarize this dialogue:\n{DIALOGUE}"}]


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_llama):
    root = tmp_path_factory.mktemp("openai")
    run = train_on_memo(root, tiny_llama, train={"max_steps": 30, "learning_rate": 1e-2})
    artifact = build_artifact(run.root, root / "artifact", "uncompressed", "5.5.3").path
    app = create_app(artifact, "tiny", limits_for("realtime"))
    with running(app) as url:
        yield url, app, run


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def test_models_and_chat_round_trip(served):
    from llmship.config.schema import GenerationConfig
    from llmship.models.generation import generate, load_finetuned

    url, _, run = served
    api = client(url)
    assert [m.id for m in api.models.list()] == ["tiny"]
    reply = api.chat.completions.create(
        model="tiny", messages=MESSAGES, temperature=0, max_tokens=30
    )
    text = reply.choices[0].message.content
    assert reply.object == "chat.completion" and reply.choices[0].message.role == "assistant"
    # The chat template was applied as in training: the same text llmship generates.
    expected = generate(
        load_finetuned(run.model), [{"dialogue": DIALOGUE}], GenerationConfig(max_new_tokens=30)
    )[0]
    assert text == expected and " will " in text
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.completion_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    # The SageMaker route on the same engine gives the same answer.
    sagemaker = httpx.post(
        f"{url}/invocations", json={"inputs": DIALOGUE, "parameters": {"max_new_tokens": 30}}
    )
    assert sagemaker.json() == [{"generated_text": text}]


def test_chat_streaming_matches_and_reports_usage(served):
    url, _, _ = served
    api = client(url)
    whole = api.chat.completions.create(
        model="tiny", messages=MESSAGES, temperature=0, max_tokens=30
    )
    chunks = list(
        api.chat.completions.create(
            model="tiny",
            messages=MESSAGES,
            temperature=0,
            max_tokens=30,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) >= 3
    assert "".join(pieces).strip() == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_completions_respect_max_tokens_and_stop(served):
    url, _, _ = served
    api = client(url)
    reply = api.completions.create(model="tiny", prompt="Anna will", max_tokens=5, temperature=0)
    assert reply.object == "text_completion"
    assert reply.usage.completion_tokens == 5 and reply.choices[0].finish_reason == "length"
    streamed = "".join(
        c.choices[0].text
        for c in api.completions.create(
            model="tiny", prompt="Anna will", max_tokens=5, temperature=0, stream=True
        )
    )
    assert streamed == reply.choices[0].text


def test_openai_style_errors(served):
    url, _, _ = served
    api = client(url)
    with pytest.raises(openai.NotFoundError) as info:
        api.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert info.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as info:
        api.chat.completions.create(model="tiny", messages=MESSAGES, n=129)  # OpenAI's 128
    assert info.value.body["param"] == "n"
    bad = httpx.post(
        f"{url}/v1/chat/completions", json={"model": "tiny", "messages": MESSAGES, "frobnicate": 1}
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["type"] == "invalid_request_error"
    assert "frobnicate" in bad.json()["error"]["message"]
    too_long = httpx.post(
        f"{url}/v1/completions", json={"model": "tiny", "prompt": "x", "max_tokens": 100_000}
    )
    assert too_long.status_code == 400 and "exceeds" in too_long.json()["error"]["message"]


def test_a_client_that_disconnects_frees_its_slot(served):
    url, app, _ = served
    engine = app.state.model.backend.engine
    body = {
        "model": "tiny",
        "prompt": "Anna will",
        "max_tokens": 500,
        "temperature": 0,
        "stream": True,
    }
    with httpx.stream("POST", f"{url}/v1/completions", json=body) as response:
        next(response.iter_lines())
        assert engine.stats()["running"] == 1
    deadline = time.monotonic() + 20
    while engine.stats()["running"]:
        assert time.monotonic() < deadline, "the abandoned stream kept its slot"
        time.sleep(0.05)


def test_past_the_queue_bound_the_api_answers_503_with_retry_after(served, tmp_path):
    import asyncio

    _, _, run = served
    artifact = build_artifact(run.root, tmp_path / "artifact", "uncompressed", "5.5.3").path
    app = create_app(artifact, "tiny", limits_for("realtime"), max_batch=1, max_waiting=1)
    body = {
        "model": "tiny",
        "prompt": "Anna will",
        "max_tokens": 1000,
        "temperature": 0,
        "ignore_eos": True,
    }
    with running(app) as url:

        async def burst():
            async with httpx.AsyncClient(timeout=120) as http:
                return await asyncio.gather(
                    *[http.post(f"{url}/v1/completions", json=body) for _ in range(4)]
                )

        replies = asyncio.run(burst())
    assert sorted(r.status_code for r in replies) == [200, 200, 503, 503]
    refused = next(r for r in replies if r.status_code == 503)
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["type"] == "server_overloaded"
