"""Prefix caching: a prompt that starts like an earlier one reuses that start's keys and
values, and greedy answers stay exactly what they are with the cache off."""

from __future__ import annotations

import random
import time

import pytest
import torch

from llmship.engine.engine import Engine
from llmship.engine.kv import KVShape, SlotCache
from llmship.engine.prefix_cache import BLOCK, PrefixCache
from llmship.engine.sampling import SamplingParams

GREEDY = SamplingParams(max_new_tokens=12, ignore_eos=True)


@pytest.fixture(scope="module")
def model(tiny_llama):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_llama), AutoTokenizer.from_pretrained(
        tiny_llama
    )


@pytest.fixture(scope="module")
def words(model):
    """Random token ids without special tokens: a random-init model answers each prompt
    differently, so equal answers mean equal computations."""
    tokenizer = model[1]
    allowed = [t for t in range(len(tokenizer)) if t not in set(tokenizer.all_special_ids)]
    rng = random.Random(7)
    return lambda count: [rng.choice(allowed) for _ in range(count)]


def make(model, **options) -> Engine:
    return Engine(*model, max_batch=4, max_len=256, **options)


def alone(model, prompts: list[list[int]], params: SamplingParams = GREEDY) -> list[str]:
    """Each prompt by itself, with no prefix cache: the answers to match."""
    engine = make(model, prefix_cache=False)
    try:
        assert engine.prefix_stats() == {}
        return [engine.submit(p, params).result().text for p in prompts]
    finally:
        engine.close()


class Widths:
    """Records the tokens per row of every prefill forward (one token rows are decodes)."""

    def __init__(self, engine: Engine):
        self.seen: list[int] = []
        forward = engine._forward

        def recording(slots, ids, positions):
            if len(ids[0]) > 1:
                self.seen.append(len(ids[0]))
            return forward(slots, ids, positions)

        engine._forward = recording


def submitted_together(engine: Engine, prompts, params: SamplingParams) -> list:
    """Queued while the engine cannot take any (it holds this lock to admit), so the
    engine admits them all in one step, one prefill."""
    with engine._wake:
        return [engine.submit(p, params) for p in prompts]


def one_by_one(engine: Engine, prompts: list[list[int]]) -> list[str]:
    return [engine.submit(p, GREEDY).result().text for p in prompts]


def test_identical_prompts_reuse_all_but_the_last_token(model, words):
    prompt = words(40)  # 2 full blocks and 8 tokens
    want = alone(model, [prompt])[0]
    engine = make(model)
    widths = Widths(engine)
    try:
        assert one_by_one(engine, [prompt, prompt, prompt]) == [want] * 3
        # The first computes all 40; the others only what follows the 2 cached blocks.
        assert widths.seen == [40, 40 - 2 * BLOCK, 40 - 2 * BLOCK]
        assert engine.prefix_stats()["hit_tokens"] == 2 * 2 * BLOCK
        together = [engine.submit(prompt, GREEDY) for _ in range(3)]
        assert [h.result().text for h in together] == [want] * 3
    finally:
        engine.close()


def test_a_shared_system_prompt_with_different_user_turns(model, words):
    system = words(70)
    prompts = [system + words(count) for count in (3, 17, 30, 9)]
    want = alone(model, prompts)
    assert len(set(want)) == len(prompts)  # the answers depend on the user turn
    engine = make(model)
    try:
        assert one_by_one(engine, prompts) == want
        stats = engine.prefix_stats()
        assert stats["hit_tokens"] == 3 * (70 // BLOCK) * BLOCK  # all but the first
        assert stats["prompt_tokens"] == sum(len(p) for p in prompts)
    finally:
        engine.close()


def test_a_strict_prefix_of_a_cached_prompt_and_one_that_extends_it(model, words):
    long = words(100)
    prompts = [
        long,
        long[:50],  # inside the cached prompt: 3 blocks reused
        long[:64],  # ends on a block boundary: the last token is still computed
        long + words(20),  # extends it: all 6 of its full blocks reused
        long[:100],  # the whole prompt again
    ]
    want = alone(model, prompts)
    engine = make(model)
    widths = Widths(engine)
    try:
        assert one_by_one(engine, prompts) == want
        assert widths.seen == [100, 50 - 48, 64 - 48, 120 - 96, 100 - 96]
    finally:
        engine.close()


@pytest.mark.parametrize("static_decode", [False, True])
def test_arrivals_that_mix_hits_and_misses_in_one_batch(model, words, static_decode):
    """Rows that start at different cached lengths share one left-padded prefill, and
    requests that arrive while others decode join them."""
    system = words(90)
    prompts = [system + words(5), words(60), system + words(25), words(12), system + words(1)]
    want = alone(model, prompts)
    engine = make(model, static_decode=static_decode, cuda_graphs=False)
    widths = Widths(engine)
    try:
        assert engine.submit(system, GREEDY).result().text == alone(model, [system])[0]
        together = submitted_together(engine, prompts[:4], GREEDY)  # one padded prefill
        assert [h.result().text for h in together] == want[:4]
        assert widths.seen[1] == 60  # not 95: the first row started after its cached blocks
        staggered = []
        for prompt in prompts:  # each arrives while earlier ones are decoding
            staggered.append(engine.submit(prompt, GREEDY))
            time.sleep(0.01)
        assert [h.result().text for h in staggered] == want
        # 2 rows found the system prompt's 5 blocks together, 3 rows at least that again.
        assert engine.prefix_stats()["hit_tokens"] >= (2 + 3) * 5 * BLOCK
    finally:
        engine.close()


def test_a_mostly_cached_prompt_beside_a_long_new_one_near_the_slot_end(model, words):
    """A mostly cached row needs more pads than its slot has positions left, beside a long
    new row in the same prefill: they share the slot's last position."""
    long = words(110)
    prompts = [long + words(2), words(100)]
    params = SamplingParams(max_new_tokens=8, ignore_eos=True)
    engine = Engine(*model, max_batch=2, max_len=120, prefix_cache=True)
    try:
        engine.submit(long, params).result()
        together = submitted_together(engine, prompts, params)
        assert [h.result().text for h in together] == alone(model, prompts, params)
        assert engine.prefix_stats()["hit_tokens"] == 96
    finally:
        engine.close()


def test_answers_stay_equal_after_eviction_and_memory_stays_bounded(model, words):
    system = words(40)  # 2 full blocks
    others = [words(50) for _ in range(6)]
    prompts = [system + words(4), system + words(6), *others, system + words(7), system + words(3)]
    want = alone(model, prompts)
    engine = make(model, prefix_cache_tokens=4 * BLOCK)
    try:
        answers, held, hits = [], [], []
        for prompt in prompts:
            answers.append(engine.submit(prompt, GREEDY).result().text)
            stats = engine.prefix_stats()
            held.append(stats["cached_tokens"])
            hits.append(stats["hit_tokens"])
        assert answers == want
        assert max(held) == stats["capacity_tokens"] == 4 * BLOCK  # full, never over
        gained = [after - before for before, after in zip([0, *hits], hits, strict=False)]
        # Reused, evicted by the others (none of which match), cached again, reused.
        assert gained == [0, 2 * BLOCK, 0, 0, 0, 0, 0, 0, 0, 2 * BLOCK]
    finally:
        engine.close()


def pool(blocks: int) -> PrefixCache:
    slots = SlotCache(KVShape(1, 1, 2), 2, 8 * BLOCK, torch.float32, torch.device("cpu"))
    return PrefixCache(slots, blocks * BLOCK)


def test_blocks_are_named_by_everything_before_them_and_the_adapter():
    cache = pool(4)
    tokens = list(range(3 * BLOCK + 5))
    names = cache.names(tokens)
    assert len(names) == 3 and len(set(names)) == 3
    assert cache.names(tokens[: 2 * BLOCK]) == names[:2]
    changed = [99, *tokens[1:]]  # a different first token renames every block
    assert not set(cache.names(changed)) & set(names)
    assert not set(cache.names(tokens, adapter="a")) & set(names)


def test_the_pool_evicts_least_recently_used_chains_from_their_end():
    cache = pool(4)
    first, second = list(range(3 * BLOCK + 1)), list(range(1000, 1000 + 2 * BLOCK + 1))
    cache.slots.keys[:, 0] = torch.randn_like(cache.slots.keys[:, 0])
    cache.keep(0, cache.names(first))
    assert cache.reuse(1, first)[0] == 3 * BLOCK
    assert torch.equal(
        cache.slots.keys[:, 1, :, : 3 * BLOCK], cache.slots.keys[:, 0, :, : 3 * BLOCK]
    )
    cache.keep(0, cache.names(second))  # needs 2 of 4 blocks: the first chain loses its end
    assert cache.cached_tokens == 4 * BLOCK
    assert cache.reuse(1, first)[0] == 2 * BLOCK
    assert cache.reuse(1, second)[0] == 2 * BLOCK


@pytest.mark.slow
def test_bench_serve_measures_a_shared_prefix_with_the_cache_on_and_off(tiny_llama):
    from llmship.bench.runner import bench_serve

    results = bench_serve(
        model_dir=tiny_llama,
        input_len=3 * BLOCK + 4,
        output_len=4,
        num_prompts=(3,),
        concurrencies=(1,),
        shared_prefix=3 * BLOCK,
    )
    assert [(r.server, r.completed, r.failed) for r in results] == [
        ("llmship", 3, 0),
        ("llmship-no-prefix-cache", 3, 0),
    ]
