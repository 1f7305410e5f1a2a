"""Training speed work: packing and the chunked loss compute exactly what the plain path
computes, and `llmship bench train` measures what it says (non-padding tokens, MFU)."""

from __future__ import annotations

import json
import random
from dataclasses import asdict

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from llmship.bench.training import (
    H100_BF16_DENSE_FLOPS,
    _examples_of,
    format_table,
    lora_training_flops,
    mfu,
    parse_variant,
    run_variant,
    skewed_examples,
    tokens_per_second,
)
from llmship.cli import app
from llmship.config.schema import LoraConfig, TrainConfig
from llmship.train import batching
from llmship.train.batching import collate, pack_examples, packed_attention
from llmship.train.loop import LoopData, make_stepper
from llmship.train.loss import causal_loss_sum, linear_cross_entropy_sum, token_loss_sum
from llmship.train.methods import add_lora

IGNORE = -100


def _model(vocab: int = 97, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
        initializer_range=0.2,
        attn_implementation="sdpa",
    )
    model = add_lora(LlamaForCausalLM(config), LoraConfig(r=4, dropout=0.0), "causal")
    for name, param in model.named_parameters():
        if "lora_B" in name:  # peft starts B at zero; move it so LoRA gradients all flow
            torch.nn.init.normal_(param, std=0.1)
    return model


def _examples(count: int, vocab: int = 97, seed: int = 1) -> list[dict[str, list[int]]]:
    """Labels on every token, including the first: packing must not turn an example's
    first token into a target of the previous example."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        ids = [rng.randrange(vocab) for _ in range(rng.randint(3, 20))]
        out.append({"input_ids": ids, "labels": list(ids)})
    return out


# --- metrics -------------------------------------------------------------------------


def test_tokens_per_second_counts_example_tokens_not_padding():
    assert tokens_per_second([10, 20, 30], 2.0) == 30.0
    # A pack is counted as the examples it holds: padding after them is not a token.
    packs = pack_examples(_examples(5), max_length=40)
    rows = [collate([p], 0, "causal") for p in packs]
    assert sum(len(e["input_ids"]) for e in _examples_of(packs)) == sum(
        len(e["input_ids"]) for e in _examples(5)
    )
    assert [len(e["input_ids"]) for e in _examples_of(packs)] == [
        len(e["input_ids"]) for e in _examples(5)
    ]
    assert rows


def test_mfu_is_4n_per_token_plus_attention_against_989_tflops():
    # 4 N tokens + 12 layers hidden sum(s^2): N=1e9, 2 layers, hidden 4, examples of 3 and 5.
    flops = lora_training_flops(10**9, 2, 4, [3, 5])
    assert flops == 4e9 * 8 + 12 * 2 * 4 * (9 + 25)
    assert H100_BF16_DENSE_FLOPS == 989e12
    assert mfu(989e12 * 0.5, 1.0) == pytest.approx(0.5)
    # The baseline: 32,600 tok/s of 1,024-token rows on Llama-3.2-1B's 1.236e9.
    per_token = lora_training_flops(1_235_814_400, 16, 2048, [1024] * 32) / (32 * 1024)
    per_second = per_token * 32_600
    assert mfu(per_second, 1.0) == pytest.approx(0.1763, abs=1e-3)


def test_variants_parse_and_keep_tokens_per_step():
    variant = parse_variant("llmship@2048+compile-chunked_loss", 1024, 8)
    assert (variant.path, variant.seq_len, variant.rows) == ("llmship", 2048, 4)
    assert variant.options == {"packing": True, "compile": True, "chunked_loss": False}
    assert parse_variant("plain", 1024, 8).options == {}
    with pytest.raises(ValueError, match="plain loop takes no"):
        parse_variant("plain@2048", 1024, 8)
    with pytest.raises(ValueError, match="use plain, llmship or qlora"):
        parse_variant("fast", 1024, 8)


def test_skewed_data_is_mostly_short_with_a_few_long():
    examples = skewed_examples(400, 1024, 500, seed=0)
    lengths = [len(e["input_ids"]) for e in examples]
    long = [n for n in lengths if n >= 512]
    assert 0.08 < len(long) / len(lengths) < 0.25
    assert max(lengths) <= 1024 and sorted(lengths)[len(lengths) // 2] <= 128
    assert all(e["labels"][0] == IGNORE for e in examples)  # a prompt without labels


# --- packing ------------------------------------------------------------------------


def test_packing_masks_the_first_label_of_each_example():
    a, b = _examples(2)
    [pack] = pack_examples([a, b], max_length=100)
    assert pack["labels"][0] == IGNORE
    assert pack["labels"][len(a["input_ids"])] == IGNORE
    assert pack["position_ids"][len(a["input_ids"])] == 0


@pytest.mark.parametrize("native", [True, False], ids=["position-ids", "explicit-mask"])
def test_packed_loss_and_gradients_equal_unpacked(monkeypatch, native):
    """Through the loop's own step: one packed step gives the gradients of the same examples
    stepped unpacked (and with activation checkpointing, the same again)."""
    monkeypatch.setattr(batching, "_transformers_finds_packed_examples", lambda: native)
    examples = _examples(6)
    grads = []
    for packing, checkpointing in ((False, False), (True, False), (True, native)):
        model = _model()
        cfg = TrainConfig(batch_size=6, packing=packing, max_grad_norm=0.0, learning_rate=1.0)
        object.__setattr__(cfg, "gradient_checkpointing", checkpointing)
        data = LoopData(train=examples, kind="causal", pad_id=0, max_length=64)
        stepper = make_stepper(model, data, cfg, torch.device("cpu"), 1)
        stepper.optimizer = _Capture(model, grads)
        stepper.scheduler = _Capture(model, [])
        chunk = [pack_examples(examples, 64)] if packing else [examples]
        loss_sum, targets, _ = stepper(chunk)
        grads[-1]["loss"] = torch.tensor(loss_sum / targets)
    assert len(pack_examples(examples, 64)) < len(examples)  # examples share rows
    unpacked = grads[0]
    for other in grads[1:]:
        assert other.keys() == unpacked.keys()
        for name, value in unpacked.items():
            torch.testing.assert_close(other[name], value, rtol=1e-4, atol=1e-6)

    # Changing the first example of a pack leaves the second one's logits untouched.
    model = _model().eval()
    first, second = examples[0], examples[1]
    altered = {**first, "input_ids": [(t + 1) % 97 for t in first["input_ids"]]}
    logits = []
    for head in (first, altered):
        batch = collate(pack_examples([head, second], 64), 0, "causal")
        inputs = packed_attention(batch["position_ids"], torch.float32)
        with torch.no_grad():
            logits.append(model(input_ids=batch["input_ids"], **inputs, use_cache=False).logits)
    tail = len(second["input_ids"])
    torch.testing.assert_close(logits[0][0, -tail:], logits[1][0, -tail:])
    assert not torch.allclose(logits[0][0, :-tail], logits[1][0, :-tail])


class _Capture:
    """Stands in for the optimizer (and the schedule): keeps the gradients of each step."""

    def __init__(self, model, into: list):
        self.model, self.into = model, into

    def step(self):
        found = {n: p.grad.clone() for n, p in self.model.named_parameters() if p.grad is not None}
        assert found and all("lora_" in n for n in found)
        self.into.append(found)

    def zero_grad(self, set_to_none=True):
        self.model.zero_grad(set_to_none=set_to_none)


# --- chunked cross-entropy ----------------------------------------------------------


@pytest.mark.parametrize("chunk", [1, 7, 1000])
@pytest.mark.parametrize("with_bias", [False, True])
def test_chunked_cross_entropy_equals_the_plain_one_in_loss_and_gradients(chunk, with_bias):
    torch.manual_seed(0)
    hidden = torch.randn(37, 16, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(50, 16, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(50, dtype=torch.float64, requires_grad=True) if with_bias else None
    target = torch.randint(0, 50, (37,))
    inputs = [hidden, weight] + ([bias] if with_bias else [])
    expected = F.cross_entropy(F.linear(hidden, weight, bias), target, reduction="sum")
    actual = linear_cross_entropy_sum(hidden, weight, bias, target, chunk)
    torch.testing.assert_close(actual.double(), expected, rtol=1e-6, atol=1e-4)
    want = torch.autograd.grad(expected * 2.5, inputs)
    got = torch.autograd.grad(actual * 2.5, inputs)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(
            linear_cross_entropy_sum(hidden, weight, bias, target, chunk), actual.detach()
        )


def test_causal_chunked_loss_matches_the_logits_path_on_a_lora_model():
    model = _model()
    batch = collate(_examples(4), 0, "causal")
    batch["labels"][:, :3] = IGNORE  # prompts without labels are skipped, not computed
    trainable = [p for p in model.parameters() if p.requires_grad]
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    plain = token_loss_sum(model(**inputs).logits, batch["labels"], "causal")
    want = torch.autograd.grad(plain, trainable)
    hidden = model.get_decoder()(**inputs)[0]
    chunked = causal_loss_sum(hidden, model.get_output_embeddings(), batch["labels"], 5)
    got = torch.autograd.grad(chunked, trainable)
    torch.testing.assert_close(chunked, plain, rtol=1e-5, atol=1e-4)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)


# --- the command --------------------------------------------------------------------


def test_plain_loop_pays_for_padding_and_llmship_packs_it_away():
    job = {"shape": "cpu-tiny", "seq_len": 64, "batch": 4, "steps": 2, "warmup": 1, "seed": 0}
    job["lora_r"] = 4
    results = {}
    for spec in ("plain", "llmship"):
        variant = parse_variant(spec, 64, 4)
        results[spec] = run_variant({**job, "variant": asdict(variant)})
    plain, ours = results["plain"], results["llmship"]
    assert plain.tokens < plain.padded_tokens  # padding is real, and not counted
    assert ours.padding_share < plain.padding_share
    for r in (plain, ours):
        # seconds are kept to the microsecond, tokens/s from the unrounded time
        assert r.tokens_per_s == pytest.approx(r.tokens / r.seconds, abs=0.5, rel=2e-3)
        assert r.mfu is None  # CPU
        assert r.base_params == sum(  # 2 layers of attention + MLP + norms, tied embeddings
            [512 * 64, 2 * (4 * 64 * 64 - 2 * 64 * 32 + 3 * 64 * 128 + 2 * 64), 64]
        )
    assert "llmship vs plain:" in format_table([plain, ours])


def test_bench_train_command_writes_json(tmp_path):
    out = tmp_path / "train.json"
    args = "bench train --shape cpu-tiny --seq-len 64 --batch 4 --steps 2 --warmup 1"
    result = CliRunner().invoke(app, [*args.split(), "--variants", "llmship", "--out", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    assert record["benchmark"] == "train" and record["date"]
    assert record["settings"]["shape"] == "cpu-tiny" and record["settings"]["batch"] == 4
    [ours] = record["results"]
    assert ours["variant"] == "llmship" and ours["options"] == {"packing": True}
    assert ours["peak_memory_gib"] > ours["setup_memory_gib"] > 0  # its own process's RSS
    bad = CliRunner().invoke(app, [*args.split(), "--variants", "plain@128"])
    assert bad.exit_code != 0 and "plain loop takes no" in bad.output
