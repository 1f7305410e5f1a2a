"""The engine: batching never changes greedy outputs; per-request limits, streaming and
cancellation behave while other requests keep running."""

from __future__ import annotations

import threading
import time

import pytest

from helpers import train_on_memo
from llmship.data.samples import samsum_rows
from llmship.engine.engine import Engine
from llmship.engine.sampling import SamplingParams
from llmship.models.generation import load_finetuned

GREEDY = SamplingParams(max_new_tokens=24)


@pytest.fixture(scope="module")
def model(tmp_path_factory, tiny_llama):
    run = train_on_memo(
        tmp_path_factory.mktemp("engine"),
        tiny_llama,
        rows=32,
        train={"max_steps": 40, "learning_rate": 1e-2},
    )
    return load_finetuned(run.model, device="cpu")


@pytest.fixture(scope="module")
def prompts(model):
    # Different lengths: the short question rows and the long dialogue rows mix.
    rows = samsum_rows()[500:510]
    encoded = [
        model.prompt_format.encode_prompt({"dialogue": r["dialogue"]}, model.tokenizer)
        for r in rows
    ]
    assert len({len(p) for p in encoded}) >= 3
    return encoded


@pytest.fixture()
def engine(model):
    engine = Engine(model.model, model.tokenizer, max_batch=4, max_len=256)
    yield engine
    engine.close()


def test_batched_outputs_equal_outputs_alone(engine, prompts):
    alone = [engine.submit(p, GREEDY).result().text for p in prompts]
    assert len(set(alone)) >= 4  # a model that repeats one token cannot pass
    handles, peak = [], 0
    for prompt in prompts:  # staggered: each arrives while earlier ones are decoding
        handles.append(engine.submit(prompt, GREEDY))
        time.sleep(0.02)
        peak = max(peak, engine.stats()["running"])
    assert [h.result().text for h in handles] == alone
    assert peak >= 2  # they really shared the batch


def test_stop_and_max_new_tokens_apply_per_request(engine, prompts):
    prompts = sorted(prompts, key=lambda p: -len(engine.submit(p, GREEDY).result().text))
    alone = [engine.submit(p, GREEDY).result() for p in prompts[:3]]
    words = alone[0].text.split()
    stop = words[2]
    limited = SamplingParams(max_new_tokens=3)
    handles = [
        engine.submit(prompts[0], SamplingParams(max_new_tokens=24, stop=(stop,))),
        engine.submit(prompts[1], limited),
        engine.submit(prompts[2], GREEDY),
    ]
    stopped, short, full = (h.result() for h in handles)
    assert stopped.text == alone[0].text[: alone[0].text.index(stop)]
    assert stop not in stopped.text and stopped.finish_reason == "stop"
    assert short.completion_tokens == 3 and short.finish_reason == "length"
    assert full.text == alone[2].text  # the others ran on to their own end


def test_streaming_yields_the_same_text(engine, prompts):
    prompt = max(prompts, key=lambda p: len(engine.submit(p, GREEDY).result().text))
    whole = engine.submit(prompt, GREEDY).result().text
    pieces = [o.text for o in engine.submit(prompt, GREEDY) if o.text]
    assert len(pieces) >= 3
    assert "".join(pieces) == whole


def test_cancelling_frees_the_slot(model, prompts):
    engine = Engine(model.model, model.tokenizer, max_batch=2, max_len=256)
    try:
        endless = SamplingParams(max_new_tokens=150, ignore_eos=True)
        first, second = engine.submit(prompts[0], endless), engine.submit(prompts[1], endless)
        waiting = engine.submit(prompts[2], GREEDY)
        next(iter(first))  # first is generating
        deadline = time.monotonic() + 10
        while engine.stats()["running"] < 2:  # second is admitted a step later, or at once
            assert time.monotonic() < deadline, engine.stats()
            time.sleep(0.01)
        assert engine.stats()["waiting"] == 1
        first.cancel()
        done = threading.Event()
        threading.Thread(target=lambda: (waiting.result(), done.set()), daemon=True).start()
        assert done.wait(60), "the waiting request never got the freed slot"
        second.cancel()
        assert [o.finish_reason for o in first if o.finish_reason] in ([], ["cancelled"])
        deadline = time.monotonic() + 10
        while engine.stats() != {"running": 0, "waiting": 0, "free_slots": 2}:
            assert time.monotonic() < deadline, engine.stats()
            time.sleep(0.05)
    finally:
        engine.close()


def test_seeded_sampling_is_reproducible(engine, prompts):
    def sample(seed):
        params = SamplingParams(max_new_tokens=16, do_sample=True, temperature=1.5, seed=seed)
        return engine.submit(prompts[0], params).result().text

    assert sample(7) == sample(7)
    assert len({sample(seed) for seed in range(5)}) > 1


def test_requests_over_the_cache_length_are_refused(engine, prompts):
    with pytest.raises(ValueError, match="exceeds the engine's 256"):
        engine.submit(prompts[0], SamplingParams(max_new_tokens=250))


def test_a_full_queue_refuses_new_requests(model, prompts):
    from llmship.engine.engine import QueueFull

    engine = Engine(model.model, model.tokenizer, max_batch=1, max_len=256, max_waiting=1)
    try:
        endless = SamplingParams(max_new_tokens=150, ignore_eos=True)
        running = engine.submit(prompts[0], endless)
        next(iter(running))  # admitted and generating
        waiting = engine.submit(prompts[1], endless)
        with pytest.raises(QueueFull):
            engine.submit(prompts[2], endless)
        running.cancel()
        waiting.cancel()
    finally:
        engine.close()


def test_prepacked_cpu_linears_compute_what_the_plain_layers_do(tiny_llama, monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM

    from llmship.engine.cpu_linear import DISABLE_VARIABLE, pack_linears

    plain = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32).eval()
    packed = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32).eval()
    linears = sum(type(m) is torch.nn.Linear for m in packed.modules())
    assert pack_linears(packed) == linears > 0
    ids = torch.randint(5, 200, (3, 17))
    with torch.inference_mode():
        want, got = plain(input_ids=ids).logits, packed(input_ids=ids).logits
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-4)
    assert torch.equal(got.argmax(-1), want.argmax(-1))
    # The packed path is really the one taken: different packed weights, different logits
    # (a linear packed alone, and a shared q/k/v product).
    alone = next(m for m in packed.modules() if hasattr(m, "_llmship_packed"))
    weight = alone._llmship_packed
    alone._llmship_packed = torch.ops.mkldnn._reorder_linear_weight(
        torch.zeros_like(alone.weight), 8
    )
    with torch.inference_mode():
        assert not torch.allclose(packed(input_ids=ids).logits, want, atol=1e-3)
    alone._llmship_packed = weight
    shared = packed.model.layers[0].self_attn.q_proj._llmship_shared
    shared.packed = torch.ops.mkldnn._reorder_linear_weight(
        torch.zeros((sum(shared.sizes), packed.config.hidden_size)), 8
    )
    with torch.inference_mode():
        assert not torch.allclose(packed(input_ids=ids).logits, want, atol=1e-3)
    monkeypatch.setenv(DISABLE_VARIABLE, "0")
    assert pack_linears(AutoModelForCausalLM.from_pretrained(tiny_llama)) == 0


def test_an_answer_cut_inside_a_character_ends_as_a_whole_decode_would(model):
    """max_new_tokens may stop inside a multi-byte character: the engine's text then
    equals tokenizer.decode of the answer (with its replacement character), as the
    artifact's handler and transformers' generate return it."""
    from llmship.engine.engine import RequestHandle, _Running

    tokenizer = model.tokenizer
    emoji = tokenizer.encode("ok 😀", add_special_tokens=False)
    assert tokenizer.decode(emoji[:-1]).endswith("\ufffd")  # really split into byte tokens
    engine = Engine(model.model, tokenizer, max_batch=1, max_len=64)
    try:
        for cut in (len(emoji) - 1, len(emoji)):
            prompt = tokenizer.encode("a", add_special_tokens=False)
            handle = RequestHandle(0, prompt, SamplingParams(max_new_tokens=cut, ignore_eos=True))
            running = _Running(handle, 0, list(prompt))
            running.prefix_offset = running.read_offset = len(prompt)
            for token in emoji[:cut]:
                engine._accept_all([running], [token])
            assert handle.result().text == tokenizer.decode(emoji[:cut])
    finally:
        engine.close()


@pytest.mark.parametrize(
    ("preset", "want"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")], ids=["default", "explicit"]
)
def test_serving_processes_let_idle_openmp_workers_sleep(preset, want):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if preset:
        env["OMP_WAIT_POLICY"] = preset
    code = (
        "import os; from llmship.serve.openmp import prefer_passive_waiting as p; "
        "first = p(); import torch; print(first, p(), os.environ['OMP_WAIT_POLICY'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["True", "False", want]  # too late once torch is loaded


def test_static_decode_and_batched_prefill_equal_one_request_at_a_time(model, prompts):
    """The GPU path (padded static decode shapes, one left-padded prefill for a group of
    prompts of different lengths) gives what each request alone gives; on CPU it runs
    eagerly, so its arithmetic is checked here."""
    alone_engine = Engine(model.model, model.tokenizer, max_batch=1, max_len=512)
    try:
        alone = [alone_engine.submit(p, GREEDY).result().text for p in prompts]
    finally:
        alone_engine.close()
    static = Engine(
        model.model,
        model.tokenizer,
        max_batch=8,
        max_len=512,
        static_decode=True,
        cuda_graphs=False,
    )
    try:
        assert static.decode_step is not None
        together = [static.submit(p, GREEDY) for p in prompts]  # all at once: batched prefill
        assert [h.result().text for h in together] == alone
        staggered = []
        for prompt in prompts:
            staggered.append(static.submit(prompt, GREEDY))
            time.sleep(0.02)
        assert [h.result().text for h in staggered] == alone
    finally:
        static.close()


def test_grouped_decode_attention_equals_repeated_heads():
    import torch

    from llmship.engine.attention import grouped_decode_attention

    class Module(torch.nn.Module):
        num_key_value_groups = 4

    torch.manual_seed(0)
    query = torch.randn(3, 8, 1, 16)
    key, value = torch.randn(3, 2, 10, 16), torch.randn(3, 2, 10, 16)
    mask = torch.arange(10)[None, None, None, :] <= torch.tensor([3, 9, 0])[:, None, None, None]
    out, _ = grouped_decode_attention(Module(), query, key, value, mask, scaling=0.25)
    expected = torch.nn.functional.scaled_dot_product_attention(
        query,
        key.repeat_interleave(4, dim=1),
        value.repeat_interleave(4, dim=1),
        attn_mask=mask,
        scale=0.25,
    ).transpose(1, 2)
    assert out.shape == (3, 1, 8, 16)
    torch.testing.assert_close(out, expected)


def test_decode_shape_buckets():
    from llmship.engine.decode import _bucket, batch_buckets, span_buckets

    assert batch_buckets(256)[:7] == [1, 2, 4, 8, 16, 32, 64]
    assert batch_buckets(256)[-1] == 256 and batch_buckets(3) == [1, 2, 3]
    assert span_buckets(768) == [256, 512, 768] and span_buckets(1000)[-1] == 1000
    assert _bucket(33, batch_buckets(256)) == 64 and _bucket(513, span_buckets(768)) == 768
