"""Training: loss falls, packing and accumulation are exact, resume is exact, models reload."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from helpers import memo_config
from llmship.data.formatting import PromptFormat
from llmship.data.loading import Row
from llmship.data.samples import samsum_rows
from llmship.errors import TrainError
from llmship.models.generation import generate, load_finetuned
from llmship.progress import RecordingReporter
from llmship.train.batching import collate, pack_examples
from llmship.train.checkpoint import list_checkpoints
from llmship.train.entrypoint import parse_args
from llmship.train.loss import count_targets, token_loss_sum
from llmship.train.metrics import read_metrics
from llmship.train.run import train

# A small set the tiny model can memorize in a few dozen steps.
MEMO = samsum_rows()[:16]


def losses(run) -> list[float]:
    return [r["loss"] for r in read_metrics(run.metrics) if "loss" in r]


def test_lora_loss_falls_on_a_memorizable_set(tmp_path, tiny_llama):
    loaded = memo_config(tmp_path, tiny_llama, train={"epochs": 30, "learning_rate": 1e-2})
    run, result = train(loaded)
    curve = losses(run)
    assert result.state.step == 60  # 16 rows / batch 8 = 2 steps per epoch
    assert curve[-1] < 0.25 * curve[0], curve
    assert run.loss_plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((run.output / "tensorboard").glob("events.out.tfevents.*"))
    # Only the adapter trained: the frozen base weights are where they started.
    adapter = load_file(run.output / "adapter" / "adapter_model.safetensors")
    assert adapter and all("lora_" in name for name in adapter)


def test_seq2seq_lora_and_full_finetuning_train(tmp_path, tiny_t5, tiny_llama):
    loaded = memo_config(tmp_path / "t5", tiny_t5, train={"epochs": 15, "learning_rate": 1e-2})
    run, _ = train(loaded)
    curve = losses(run)
    assert curve[-1] < 0.5 * curve[0], curve
    full = memo_config(
        tmp_path / "full", tiny_llama, train={"method": "full", "epochs": 10, "learning_rate": 3e-3}
    )
    run, _ = train(full)
    curve = losses(run)
    assert curve[-1] < 0.5 * curve[0], curve
    assert not (run.output / "adapter").exists()
    assert json.loads((run.model / "llmship.json").read_text())["merged"] is True


def test_qlora_without_cuda_is_a_clear_error(tmp_path, tiny_llama):
    loaded = memo_config(tmp_path, tiny_llama, train={"method": "qlora"})
    with pytest.raises(TrainError, match=r"qlora needs a CUDA GPU.*use train\.method lora"):
        train(loaded)


def _encoded(tokenizer, rows):
    fmt = PromptFormat(
        "causal",
        "Summarize this dialogue:\n{dialogue}",
        "dialogue",
        "summary",
        use_chat_template=True,
    )
    return [fmt.encode_example(Row(str(i), r), tokenizer) for i, r in enumerate(rows)]


def test_packing_gives_the_same_loss_without_cross_attention(tiny_llama):
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    examples = _encoded(tokenizer, MEMO[:6])
    pad = tokenizer.pad_token_id
    with torch.no_grad():
        separate = sum(
            token_loss_sum(
                model(**_inputs(b := collate([e], pad, "causal"))).logits, b["labels"], "causal"
            )
            for e in examples
        )
        packs = pack_examples(examples, max_length=400)
        assert len(packs) < len(examples)  # several examples share a sequence
        batch = collate(packs, pad, "causal")
        packed = token_loss_sum(model(**_inputs(batch)).logits, batch["labels"], "causal")
        assert count_targets(batch["labels"], "causal") == sum(
            count_targets(collate([e], pad, "causal")["labels"], "causal") for e in examples
        )
        torch.testing.assert_close(packed, separate, rtol=1e-4, atol=1e-3)
        # Changing the first example of a pack leaves the second one's logits untouched.
        first, second = examples[0], examples[1]
        altered = {
            **first,
            "input_ids": [first["input_ids"][0]] + [7] * (len(first["input_ids"]) - 1),
        }
        logits = [
            model(**_inputs(collate(pack_examples([a, second], 400), pad, "causal"))).logits
            for a in (first, altered)
        ]
        tail = len(second["input_ids"])
        torch.testing.assert_close(logits[0][0, -tail:], logits[1][0, -tail:])
        assert not torch.allclose(logits[0][0, :-tail], logits[1][0, :-tail])


def _inputs(batch):
    # No KV cache: with one, transformers does not look for packed position ids.
    return {**{k: v for k, v in batch.items() if k != "labels"}, "use_cache": False}


def test_packed_training_runs(tmp_path, tiny_llama):
    loaded = memo_config(
        tmp_path, tiny_llama, train={"packing": True, "epochs": 20, "learning_rate": 1e-2}
    )
    run, result = train(loaded)
    assert result.state.step == 20  # 16 examples fit in one pack per epoch
    curve = losses(run)
    assert curve[-1] < 0.5 * curve[0]


def test_gradient_accumulation_weights_every_token_equally(tiny_llama):
    from contextlib import nullcontext

    from llmship.config.schema import TrainConfig
    from llmship.train.loop import LoopData, _Stepper

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    examples = _encoded(tokenizer, MEMO[:4])
    assert len({len(e["input_ids"]) for e in examples}) > 1  # uneven, so weighting matters

    class Capture:
        def __init__(self):
            self.grads = None

        def step(self):
            self.grads = {n: p.grad.clone() for n, p in model.named_parameters()}

        def zero_grad(self, set_to_none=True):
            model.zero_grad(set_to_none=set_to_none)

    class NoSchedule:
        def step(self):
            pass

    data = LoopData(train=examples, kind="causal", pad_id=tokenizer.pad_token_id, max_length=512)
    grads = []
    for size in (4, 2, 1):
        chunk = [examples[i : i + size] for i in range(0, 4, size)]
        optimizer = Capture()
        stepper = _Stepper(
            model,
            data,
            optimizer,
            NoSchedule(),
            TrainConfig(max_grad_norm=0.0),
            torch.device("cpu"),
            nullcontext(),
        )
        stepper(chunk)
        grads.append(optimizer.grads)
    for other in grads[1:]:
        for name, value in grads[0].items():
            # atol: float32 summation order leaves ~2e-7 on gradients near zero (measured
            # under transformers 5.25); a weighting error moves every gradient by percents.
            torch.testing.assert_close(other[name], value, rtol=1e-4, atol=1e-6)


class Interrupt(Exception):
    pass


def test_resume_continues_at_the_saved_step_and_matches_an_uninterrupted_run(tmp_path, tiny_llama):
    settings = {
        "epochs": 4,
        "batch_size": 4,
        "save_steps": 5,
        "save_total_limit": 2,
        "lora": {"dropout": 0.1},
    }
    straight, _ = train(memo_config(tmp_path / "a", tiny_llama, train=settings))

    loaded = memo_config(tmp_path / "b", tiny_llama, train=settings)

    def stop_after_seven(state):
        if state.step == 7:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(loaded, callbacks=[stop_after_seven])
    [run_dir] = (tmp_path / "b" / "runs").iterdir()
    assert [p.name for p in list_checkpoints(run_dir / "checkpoints")] == ["step-0000005"]
    reporter = RecordingReporter()
    resumed, result = train(loaded, resume="latest", reporter=reporter)
    assert resumed.root == run_dir
    assert ("start", ("train", 16, 5)) in reporter.events  # continues at step 5 of 16
    assert result.state.step == 16
    steps = [r["step"] for r in read_metrics(resumed.metrics) if "loss" in r]
    assert steps == list(range(1, 17))  # steps 6 and 7 of the lost attempt are not doubled
    expected = load_file(straight.output / "adapter" / "adapter_model.safetensors")
    actual = load_file(resumed.output / "adapter" / "adapter_model.safetensors")
    for name, value in expected.items():
        torch.testing.assert_close(actual[name], value, rtol=0, atol=1e-6)


def test_merged_model_reloads_and_generates_like_the_adapter(tmp_path, tiny_llama):
    loaded = memo_config(tmp_path / "m", tiny_llama, train={"epochs": 20, "learning_rate": 1e-2})
    merged_run, _ = train(loaded)
    adapter_run, _ = train(
        memo_config(
            tmp_path / "a", tiny_llama, train={"epochs": 20, "learning_rate": 1e-2, "merge": False}
        )
    )
    assert (merged_run.model / "model.safetensors").is_file()
    assert not (merged_run.model / "adapter_config.json").exists()
    assert (adapter_run.model / "adapter_config.json").is_file()
    merged = load_finetuned(merged_run.model)
    adapter = load_finetuned(adapter_run.model)
    rows = [{"dialogue": r["dialogue"]} for r in MEMO[:3]]
    out_merged, out_adapter = generate(merged, rows), generate(adapter, rows)
    assert out_merged == out_adapter
    assert all(out_merged)
    # Memorized: the generated summaries are the training targets.
    assert sum(o == r["summary"] for o, r in zip(out_merged, MEMO[:3], strict=True)) >= 2
    info = json.loads((merged_run.model / "llmship.json").read_text())
    assert info["prompt_format"]["use_chat_template"] is True
    assert info["generation"]["max_new_tokens"] == 16
    generation = json.loads((merged_run.model / "generation_config.json").read_text())
    assert generation["max_new_tokens"] == 16


def test_entry_point_honours_the_sagemaker_contract(tmp_path, tiny_llama):
    loaded = memo_config(tmp_path, tiny_llama)
    config = tmp_path / "config.yaml"
    config.write_text(loaded.snapshot_yaml())
    channel = tmp_path / "ml" / "input" / "data" / "train"
    channel.mkdir(parents=True)
    (channel / "part.jsonl").write_text("".join(json.dumps(r) + "\n" for r in MEMO[:8]))
    env = {
        **os.environ,
        "SM_MODEL_DIR": str(tmp_path / "ml" / "model"),
        "SM_OUTPUT_DATA_DIR": str(tmp_path / "ml" / "output" / "data"),
        "SM_CHANNEL_TRAIN": str(channel),
        "SM_CHANNEL_MODEL": str(tiny_llama),
        "SM_NUM_GPUS": "0",
        "SM_HOSTS": '["algo-1"]',
        "SM_CURRENT_HOST": "algo-1",
    }
    checkpoints = tmp_path / "ml" / "checkpoints"
    command = [
        sys.executable,
        "-m",
        "llmship.train.entrypoint",
        "--config",
        str(config),
        "--checkpoint-dir",
        str(checkpoints),
        "--train.epochs",
        "3",
        "--train.batch_size=2",
        "--model.name_or_path",
        "not/used-when-a-model-channel",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "trained 12 steps" in done.stdout  # 8 channel rows / batch 2 x 3 epochs
    assert (tmp_path / "ml" / "model" / "model.safetensors").is_file()
    assert (tmp_path / "ml" / "model" / "llmship.json").is_file()
    assert len(read_metrics(tmp_path / "ml" / "output" / "data" / "metrics.jsonl")) >= 12
    assert [p.name for p in list_checkpoints(checkpoints)] == ["step-0000012"]
    # A failing job says why on stderr and exits non-zero.
    env["SM_CHANNEL_TRAIN"] = str(tmp_path / "missing")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "channel 'train' not found" in done.stderr


def test_hyperparameters_become_overrides():
    args, overrides = parse_args(
        ["--config", "c.yaml", "--train.epochs", "2", "--train.learning_rate=0.001"]
    )
    assert args.config == "c.yaml"
    assert overrides == ["train.epochs=2", "train.learning_rate=0.001"]


def test_no_secret_reaches_the_run_directory(tmp_path, tiny_llama):
    canary = "hf_CANARY_do_not_write_0123456789"
    (tmp_path / ".env").write_text(f"HF_TOKEN={canary}\n")
    loaded = memo_config(
        tmp_path, tiny_llama, model={"hf_token": "${HF_TOKEN}"}, train={"max_steps": 2}
    )
    assert loaded.config.model.hf_token.get_secret_value() == canary
    run, _ = train(loaded)
    assert "${HF_TOKEN}" in run.config.read_text()
    for path in run.root.rglob("*"):
        if path.is_file():
            assert canary.encode() not in path.read_bytes(), path
