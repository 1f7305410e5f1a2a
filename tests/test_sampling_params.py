"""Every generation parameter clients send, with transformers' meaning: the engine's
processors against transformers' own on the same logits and history, logprobs against a
forward pass, n choices and the parameters through the official openai client."""

from __future__ import annotations

import asyncio
import json
import math
import os
from dataclasses import replace

import openai
import pytest
import torch
from transformers.generation import logits_process as hf

from helpers import hf_toolkit_invoke, train_on_memo
from llmship.data.samples import samsum_rows
from llmship.engine import sampling
from llmship.engine.sampling import SamplingParams
from llmship.package.build import build_artifact
from llmship.serve.app import create_app
from llmship.serve.backends import EngineBackend
from llmship.serve.background import running
from llmship.serve.handler import JSON, HandlerError
from llmship.serve.limits import limits_for

VOCAB = 64
EOS = (2, 5)


def _case(seed: int) -> tuple[torch.Tensor, list[int], int]:
    """Random logits (some negative, some positive) and a history with repeats."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(VOCAB, generator=generator) * 3
    history = torch.randint(0, 12, (20,), generator=generator).tolist()
    return logits, history, 8  # the first 8 tokens are the prompt


def _theirs(processor, logits: torch.Tensor, history: list[int]) -> torch.Tensor:
    return processor(torch.tensor([history]), logits[None].clone())[0]


def _ours(logits: torch.Tensor, history: list[int], prompt: int, **params) -> torch.Tensor:
    return sampling.process(logits.clone(), SamplingParams(**params), history, prompt, EOS)


@pytest.mark.parametrize("seed", range(5))
def test_processors_equal_transformers(seed):
    logits, history, prompt = _case(seed)
    checks = [
        ({"repetition_penalty": 1.7}, hf.RepetitionPenaltyLogitsProcessor(1.7)),
        ({"no_repeat_ngram_size": 2}, hf.NoRepeatNGramLogitsProcessor(2)),
        ({"no_repeat_ngram_size": 1}, hf.NoRepeatNGramLogitsProcessor(1)),
        ({"min_new_tokens": 13}, hf.MinNewTokensLengthLogitsProcessor(prompt, 13, list(EOS))),
        ({"min_new_tokens": 12}, hf.MinNewTokensLengthLogitsProcessor(prompt, 12, list(EOS))),
        (
            {"logit_bias": {3: 100.0, 7: -100.0, 11: 2.5}},
            hf.SequenceBiasLogitsProcessor([[[3], 100.0], [[7], -100.0], [[11], 2.5]]),
        ),
    ]
    changed = 0
    for params, processor in checks:
        ours = _ours(logits, history, prompt, **params)
        theirs = _theirs(processor, logits, history)
        torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)
        changed += not torch.equal(ours, logits)
    assert changed >= 4  # all but the min_new_tokens boundary (12 generated) change them


@pytest.mark.parametrize("mass", [0.2, 0.5, 0.9])
def test_typical_p_equals_transformers(mass):
    for seed in range(5):
        logits, history, _ = _case(seed)
        ours = sampling.warp(logits, SamplingParams(do_sample=True, typical_p=mass))
        theirs = _theirs(hf.TypicalLogitsWarper(mass), logits, history)
        torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)
        assert torch.isinf(ours).any()


def test_processors_chain_in_transformers_order():
    """All at once, as generate chains them (bias, repetition, n-grams, min length)."""
    logits, history, prompt = _case(7)
    chain = hf.LogitsProcessorList(
        [
            hf.SequenceBiasLogitsProcessor([[[3], 4.0], [[9], -1.5]]),
            hf.RepetitionPenaltyLogitsProcessor(1.3),
            hf.NoRepeatNGramLogitsProcessor(2),
            hf.MinNewTokensLengthLogitsProcessor(prompt, 20, list(EOS)),
        ]
    )
    ours = _ours(
        logits,
        history,
        prompt,
        logit_bias={3: 4.0, 9: -1.5},
        repetition_penalty=1.3,
        no_repeat_ngram_size=2,
        min_new_tokens=20,
    )
    torch.testing.assert_close(ours, _theirs(chain, logits, history), atol=1e-6, rtol=0)


def test_presence_and_frequency_penalties_are_openais():
    """OpenAI's definition: logit - count * frequency - (count > 0) * presence, counted over
    the generated tokens only (the prompt's do not count)."""
    logits, history, prompt = _case(3)
    ours = _ours(logits, history, prompt, presence_penalty=0.5, frequency_penalty=0.25)
    expected = logits.clone()
    generated = history[prompt:]
    for token in set(generated):
        expected[token] -= generated.count(token) * 0.25 + 0.5
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=0)
    prompt_only = set(history[:prompt]) - set(generated)
    assert prompt_only and all(ours[t] == logits[t] for t in prompt_only)


def test_logprobs_are_the_raw_log_softmax():
    logits, _, _ = _case(1)
    entry = sampling.token_logprob(logits, 4, 3)
    reference = torch.log_softmax(logits, -1)
    assert math.isclose(entry.logprob, float(reference[4]), abs_tol=1e-6)
    assert [t for t, _ in entry.top] == torch.topk(reference, 3).indices.tolist()


# ---- the engine, the servers and the artifact's handler on one trained tiny model ------------

DIALOGUES = [r["dialogue"] for r in samsum_rows()[300:304]]
MESSAGES = [{"role": "user", "content": f"Summarize this dialogue:\n{DIALOGUES[0]}"}]


@pytest.fixture(scope="module")
def artifact(tmp_path_factory, tiny_llama):
    root = tmp_path_factory.mktemp("params")
    run = train_on_memo(root, tiny_llama, train={"max_steps": 30, "learning_rate": 1e-2})
    return build_artifact(run.root, root / "artifact", "uncompressed").path


@pytest.fixture(scope="module")
def backend(artifact):
    backend = EngineBackend(artifact, max_batch=4, max_len=512)
    yield backend
    backend.close()


def test_logprobs_match_a_forward_pass(backend):
    """The raw log-softmax of the model's logits, before penalties, bias and temperature:
    the chosen token's and the top 5, against one forward pass over prompt + answer."""
    model, engine = backend.loaded.model, backend.engine
    prompt = backend.prompt_ids(DIALOGUES[1])
    plain = SamplingParams(max_new_tokens=12, logprobs=5, ignore_eos=True)
    bent = replace(plain, repetition_penalty=1.8, logit_bias={7: 3.0}, do_sample=True, seed=3)
    for params in (plain, bent):
        output = engine.submit(prompt, params).result()
        tokens = [entry.token for entry in output.logprobs]
        assert len(tokens) == output.completion_tokens == 12
        with torch.no_grad():
            logits = model(torch.tensor([prompt + tokens])).logits[0, len(prompt) - 1 : -1]
        reference = torch.log_softmax(logits.float(), -1)
        for step, entry in enumerate(output.logprobs):
            assert abs(entry.logprob - float(reference[step, entry.token])) < 1e-4
            top = torch.topk(reference[step], 5)
            assert [t for t, _ in entry.top] == top.indices.tolist()
            for (_, ours), theirs in zip(entry.top, top.values.tolist(), strict=True):
                assert abs(ours - theirs) < 1e-4


def test_min_new_tokens_holds_off_eos_and_stop_sequences(backend):
    """Until min_new_tokens, neither EOS nor a stop sequence ends the answer (vLLM's
    min_tokens); after it both do again."""
    engine = backend.engine
    prompt = backend.prompt_ids(DIALOGUES[1])
    free = engine.submit(prompt, SamplingParams(max_new_tokens=12, ignore_eos=True)).result()
    stop = free.text.lstrip()[:2]
    assert (
        engine.submit(prompt, SamplingParams(max_new_tokens=12, stop=(stop,))).result().text.strip()
        == ""
    )
    held = engine.submit(
        prompt, SamplingParams(max_new_tokens=12, stop=(stop,), min_new_tokens=6)
    ).result()
    assert held.completion_tokens >= 6 and len(held.text.strip()) >= 2
    unstopped = engine.submit(prompt, SamplingParams(max_new_tokens=12, min_new_tokens=6))
    assert unstopped.result().text.startswith(held.text)
    short = engine.submit(prompt, SamplingParams(max_new_tokens=12)).result()
    if short.finish_reason == "stop":  # EOS came early: min_new_tokens overrides it
        assert short.completion_tokens < 6
        longer = engine.submit(prompt, SamplingParams(max_new_tokens=12, min_new_tokens=6))
        assert longer.result().completion_tokens >= 6


def _hf4_python() -> str:
    python = os.environ.get("LLMSHIP_HF4_PYTHON")
    if not python:
        pytest.skip("needs the transformers 4.51.3 environment: run `make test`")
    return os.path.abspath(python)


PARITY = [
    {},
    {"min_new_tokens": 14},
    {"no_repeat_ngram_size": 2},
    {"repetition_penalty": 1.6},
    {"presence_penalty": 1.5, "frequency_penalty": 0.8},
    {"logit_bias": {"40": 6.0, "41": 6.0, "12": -100}},
    {"min_new_tokens": 10, "no_repeat_ngram_size": 3, "repetition_penalty": 1.2,
     "frequency_penalty": 0.5, "logit_bias": {"40": 3.0}},
]  # fmt: skip


def test_greedy_parity_with_the_artifacts_handler_under_transformers_4(backend, artifact, tmp_path):
    """The engine-backed server and code/inference.py in the container's transformers
    (4.51.3, through the real toolkit) give the same greedy answers for each parameter."""
    python = _hf4_python()
    bodies = [
        json.dumps({"inputs": DIALOGUES, "parameters": {"max_new_tokens": 16, **extra}})
        for extra in PARITY
    ]
    requests = [{"body": b, "content_type": JSON, "accept": JSON} for b in bodies]
    result = hf_toolkit_invoke(python, artifact, requests, tmp_path, timeout=600)
    assert result["transformers"] == "4.51.3"
    theirs = [json.loads(r["body"]) for r in result["results"]]
    ours = [json.loads(asyncio.run(backend.invoke(b.encode(), JSON, JSON))[0]) for b in bodies]
    assert ours == theirs
    baseline = ours[0]
    assert len({a["generated_text"] for a in baseline}) >= 3
    for extra, answers in zip(PARITY[1:], ours[1:], strict=True):
        assert answers != baseline, f"{extra} changed nothing: the test cannot see it"


def test_toolkit_parameters_on_the_sagemaker_route(backend):
    """return_full_text puts the input first; unknown parameters are named in the 400."""

    def call(**parameters):
        body = json.dumps(
            {"inputs": DIALOGUES[2], "parameters": {"max_new_tokens": 8, **parameters}}
        )
        return json.loads(asyncio.run(backend.invoke(body.encode(), JSON, JSON))[0])[0]

    plain, full = call()["generated_text"], call(return_full_text=True)["generated_text"]
    assert full.startswith(DIALOGUES[2]) and full.endswith(plain) and plain
    assert call(return_full_text=False)["generated_text"] == plain
    assert call(seed=4, do_sample=True, typical_p=0.5) == call(
        seed=4, do_sample=True, typical_p=0.5
    )
    with pytest.raises(HandlerError, match="unknown parameters: best_of, frobnicate"):
        call(frobnicate=1, best_of=2)
    with pytest.raises(HandlerError, match="logit_bias"):
        call(logit_bias={"x": 1})


@pytest.fixture(scope="module")
def api(artifact):
    app = create_app(artifact, "tiny", limits_for("realtime"))
    with running(app) as url:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def test_n_choices_whole_and_streamed(api):
    whole = api.chat.completions.create(
        model="tiny", messages=MESSAGES, n=3, max_tokens=12, seed=1, temperature=1.0
    )
    assert [c.index for c in whole.choices] == [0, 1, 2]
    assert len({c.message.content for c in whole.choices}) >= 2  # each its own request
    greedy = api.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=12, n=1)
    alone = api.completions.create(model="tiny", prompt=DIALOGUES[0], max_tokens=6, temperature=0)
    three = api.completions.create(
        model="tiny", prompt=DIALOGUES[0], max_tokens=6, temperature=0, n=3
    )
    assert [c.text for c in three.choices] == [alone.choices[0].text] * 3
    assert three.usage.completion_tokens == 3 * alone.usage.completion_tokens
    assert three.usage.prompt_tokens == alone.usage.prompt_tokens
    chunks = list(
        api.chat.completions.create(
            model="tiny",
            messages=MESSAGES,
            n=2,
            max_tokens=12,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    texts = {0: "", 1: ""}
    finished = []
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finished.append(choice.index)
    reference = api.chat.completions.create(
        model="tiny", messages=MESSAGES, max_tokens=12, temperature=0
    )
    assert texts[0].strip() == texts[1].strip() == reference.choices[0].message.content
    assert sorted(finished) == [0, 1]
    assert chunks[-1].usage.completion_tokens == 2 * reference.usage.completion_tokens
    assert greedy.choices[0].index == 0


def test_logprobs_through_the_client(api):
    reply = api.chat.completions.create(
        model="tiny", messages=MESSAGES, max_tokens=8, temperature=0, logprobs=True, top_logprobs=3
    )
    content = reply.choices[0].logprobs.content
    assert len(content) == reply.usage.completion_tokens
    assert "".join(entry.token for entry in content).strip() == reply.choices[0].message.content
    for entry in content:  # greedy: the chosen token is the most likely one
        assert len(entry.top_logprobs) == 3 and entry.top_logprobs[0].token == entry.token
        assert entry.logprob <= 0 and bytes(entry.bytes).decode() == entry.token
    streamed = api.chat.completions.create(
        model="tiny", messages=MESSAGES, max_tokens=8, temperature=0, logprobs=True, stream=True
    )
    tokens = [
        entry.token for chunk in streamed for c in chunk.choices if c.logprobs
        for entry in c.logprobs.content
    ]  # fmt: skip
    assert tokens == [entry.token for entry in content]
    text = api.completions.create(
        model="tiny", prompt="Anna will", max_tokens=5, temperature=0, logprobs=2
    ).choices[0]
    assert len(text.logprobs.tokens) == 5 and "".join(text.logprobs.tokens) == text.text
    assert text.logprobs.text_offset[0] == 0 and len(text.logprobs.top_logprobs[0]) == 2
    assert all(lp <= 0 for lp in text.logprobs.token_logprobs)


def test_penalties_bias_and_seed_through_the_client(api, backend):
    def complete(prompt="Anna will", **extra):
        return api.completions.create(
            model="tiny", prompt=prompt, max_tokens=10, **{"temperature": 0, **extra}
        )

    plain = complete().choices[0]
    ids = backend.tokenizer("Anna will")["input_ids"]
    once = SamplingParams(max_new_tokens=1, logprobs=0, ignore_eos=True)
    first = backend.engine.submit(ids, once).result().logprobs[0].token
    first_text = backend.tokenizer.decode([first])
    assert plain.text.startswith(first_text)
    assert not complete(logit_bias={str(first): -100}).choices[0].text.startswith(first_text)
    penalized = complete(frequency_penalty=2.0, presence_penalty=2.0).choices[0]
    assert penalized.text != plain.text
    sampled = [complete(temperature=1.0, seed=7, presence_penalty=0.5) for _ in range(2)]
    assert sampled[0].choices[0].text == sampled[1].choices[0].text
    # The dialogue's answer ends at once (EOS); min_tokens holds EOS off.
    assert complete(DIALOGUES[0]).usage.completion_tokens < 4
    held = complete(DIALOGUES[0], extra_body={"min_tokens": 6})  # vLLM's extension
    assert held.usage.completion_tokens >= 6
    for name, value in [
        ("presence_penalty", 3),
        ("frequency_penalty", -2.5),
        ("logit_bias", {"abc": 1}),
        ("n", 0),
        ("logprobs", 9),
    ]:
        with pytest.raises(openai.BadRequestError) as info:
            complete(**{name: value})
        assert info.value.body["param"] == name
