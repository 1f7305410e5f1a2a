"""`llmship bench train`: training tokens/s, peak memory and MFU, llmship's loop against the
plain transformers + peft + AdamW loop, on one random-init model shape and the same data.

Method
- Model: a Llama of the chosen shape, random init, built on the spot (nothing
  downloaded); LoRA on every linear layer (r=16, alpha 32, no dropout by default).
  bf16 weights on CUDA, float32 on CPU.
- Data: a length-skewed synthetic set (most examples short, a few long; a quarter of
  each example is a prompt without labels), so that padding waste is real.
- Variants (`--variants`), each in a fresh process so that memory peaks are its own:
  `plain` is the loop users write (padded batches, model(labels=...).loss, backward,
  torch AdamW); `llmship` is `llmship.train.loop.make_stepper`, the object `llmship train`
  steps, with packing on. `@N` sets the row length (rows per step shrink so tokens per
  step stay batch x seq_len); `+flag` / `-flag` turn a train option on or off, e.g.
  `llmship@2048+compile` or `llmship-chunked_loss`. `qlora` is llmship's path on a 4-bit
  base (needs CUDA and bitsandbytes; skipped with a note otherwise).
- Timing: warm-up steps, then timed steps between two device synchronisations.
  tokens/s counts non-padding tokens only.
- Peak memory: on CUDA torch.cuda.max_memory_allocated over the steps (weights,
  optimizer state, activations). On CPU the peak resident set size of the variant's own
  process (getrusage): tracemalloc does not see torch's allocations, and torch's CPU
  allocator keeps no peak counter. Beside it, the memory after setup (model and data
  built, before the first step), so that peak - setup is what training itself added.
- MFU: LoRA counted as 4N FLOPs per token (forward 2N, backward through the frozen
  weights 2N, no weight gradients; N = base parameter count, tied embeddings once) plus
  attention, 12 x layers x hidden x s per token of an example of s tokens (QK^T and PV,
  forward and twice in backward, PaLM's convention, causal masking not discounted),
  against an H100 SXM's 989 TFLOPS dense bf16. Not reported on CPU.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

H100_BF16_DENSE_FLOPS = 989e12
IGNORE = -100


@dataclass(frozen=True)
class ModelShape:
    """A Llama's sizes."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    layers: int
    heads: int
    kv_heads: int


SHAPES = {
    # Llama-3.2-1B: 16 layers, hidden 2048, 32 heads / 8 KV heads, vocab 128256, tied.
    "llama-3.2-1b": ModelShape(128256, 2048, 8192, 16, 32, 8),
    # CPU: a small body, for packing's tokens/s.
    "cpu-small": ModelShape(4096, 256, 768, 4, 4, 2),
    # CPU: a tiny body under Llama 3's 128k vocabulary, for the loss's memory.
    "cpu-vocab": ModelShape(128256, 128, 256, 2, 4, 2),
    # Tests.
    "cpu-tiny": ModelShape(512, 64, 128, 2, 4, 2),
}


@dataclass(frozen=True)
class Variant:
    """One training setup to time: `path` plain or llmship (qlora: llmship on a 4-bit base)."""

    spec: str
    path: str
    seq_len: int
    rows: int
    options: dict[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainJob:
    """One variant's run, as its worker process gets it: JSON on its command line."""

    shape: str
    seq_len: int
    batch: int
    variant: Variant
    steps: int
    warmup: int
    seed: int
    lora_r: int

    @property
    def total_steps(self) -> int:
        """Warm-up and timed steps together."""
        return self.warmup + self.steps

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_dict(cls, job: dict[str, Any]) -> TrainJob:
        """The job from its decoded JSON."""
        return cls(**{**job, "variant": Variant(**job["variant"])})


@dataclass
class TrainBenchResult:
    """What one variant measured."""

    variant: str
    path: str
    seq_len: int
    rows: int
    options: dict[str, bool]
    steps: int
    tokens: int
    padded_tokens: int
    seconds: float
    tokens_per_s: float
    padding_share: float
    peak_memory_gib: float
    setup_memory_gib: float
    memory_measure: str
    mfu: float | None
    base_params: int
    loss_first: float
    loss_last: float
    device: str
    skipped: str | None = None


# --- metrics (pure) -------------------------------------------------------------------


def tokens_per_second(lengths: list[int], seconds: float) -> float:
    """Non-padding tokens per second: each example counts its own tokens, padding none."""
    return sum(lengths) / seconds if seconds > 0 else 0.0


def lora_training_flops(base_params: int, layers: int, hidden: int, lengths: list[int]) -> float:
    """FLOPs of one LoRA training pass over examples of these lengths (see the module doc)."""
    dense = 4 * base_params * sum(lengths)
    attention = 12 * layers * hidden * sum(s * s for s in lengths)
    return float(dense + attention)


def mfu(flops: float, seconds: float, peak_flops: float = H100_BF16_DENSE_FLOPS) -> float:
    """Model FLOPs utilisation: achieved FLOPs per second over the hardware's peak."""
    return flops / seconds / peak_flops if seconds > 0 else 0.0


def parse_variant(spec: str, seq_len: int, batch: int) -> Variant:
    """`plain`, `llmship`, `qlora`, with `@N` (row length) and `+flag` / `-flag` options."""
    import re

    match = re.fullmatch(r"(plain|llmship|qlora)(?:@(\d+))?((?:[+-][a-z_]+)*)", spec)
    if match is None:
        raise ValueError(
            f"variant {spec!r}: use plain, llmship or qlora, optionally @ROW_LENGTH and "
            "+option / -option, e.g. llmship@2048+compile"
        )
    path, length, flags = match.group(1), int(match.group(2) or seq_len), match.group(3)
    if path == "plain" and (length != seq_len or flags):
        raise ValueError(f"variant {spec!r}: the plain loop takes no @length or options")
    options = {"packing": True} if path != "plain" else {}
    from llmship.config.schema import TrainConfig

    switches = [n for n, f in TrainConfig.model_fields.items() if f.annotation is bool]
    for sign, name in re.findall(r"([+-])([a-z_]+)", flags):
        if name not in switches:
            raise ValueError(f"variant {spec!r}: {name} is not one of {', '.join(switches)}")
        options[name] = sign == "+"
    rows = max(1, batch * seq_len // length)
    return Variant(spec, path, length, rows, options)


# --- data ---------------------------------------------------------------------------


def skewed_examples(
    count: int, max_len: int, vocab: int, seed: int, long_share: float = 0.15
) -> list[dict[str, list[int]]]:
    """Most examples max_len/64..max_len/8 tokens (16..128 of 1,024), `long_share` of them
    max_len/2..max_len; the first quarter of each is a prompt (labels -100)."""
    rng = random.Random(seed)
    examples = []
    short = (max(2, max_len // 64), max(4, max_len // 8))
    for _ in range(count):
        if rng.random() < long_share:
            size = rng.randint(max_len // 2, max_len)
        else:
            size = rng.randint(*short)
        ids = [rng.randrange(vocab) for _ in range(size)]
        prompt = size // 4
        examples.append({"input_ids": ids, "labels": [IGNORE] * prompt + ids[prompt:]})
    return examples


# --- the run ------------------------------------------------------------------------


def bench_train(
    shape: str,
    seq_len: int,
    batch: int,
    variants: list[str],
    steps: int = 10,
    warmup: int = 3,
    seed: int = 0,
    lora_r: int = 16,
    timeout: float = 900.0,
) -> list[TrainBenchResult]:
    """Every variant on the same shape and data, each in a fresh process."""
    parsed = [parse_variant(spec, seq_len, batch) for spec in variants]
    jobs = [
        TrainJob(shape, seq_len, batch, variant, steps, warmup, seed, lora_r) for variant in parsed
    ]
    return [_in_subprocess(job, timeout) for job in jobs]


def _in_subprocess(job: TrainJob, timeout: float) -> TrainBenchResult:
    """One variant in a fresh process; one that fails or times out is reported, not fatal."""
    with tempfile.TemporaryDirectory(prefix="llmship-bench-train-") as work:
        out = Path(work) / "result.json"
        command = [sys.executable, "-m", "llmship.bench.training", job.to_json(), str(out)]
        try:
            subprocess.run(command, check=True, timeout=timeout)
        except subprocess.CalledProcessError as exc:
            return _skipped(job.variant, "", f"failed (exit {exc.returncode})")
        except subprocess.TimeoutExpired:
            return _skipped(job.variant, "", f"timed out after {timeout:.0f} s")
        return TrainBenchResult(**json.loads(out.read_text()))


def run_variant(job: dict[str, Any]) -> TrainBenchResult:
    """Build the model, the data and the variant's step; time it (in this process).
    `job` is a TrainJob as its JSON decodes."""
    return _run(TrainJob.from_dict(job))


def _run(job: TrainJob) -> TrainBenchResult:
    import torch

    variant = job.variant
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    if variant.path == "qlora" and (device.type != "cuda" or find_spec("bitsandbytes") is None):
        return _skipped(variant, name, "QLoRA needs CUDA and bitsandbytes, not found here")
    shape = SHAPES[job.shape]
    torch.manual_seed(job.seed)
    model, base_params = _build_model(shape, variant, device, job.seq_len)
    tokens_per_step = job.batch * job.seq_len
    examples = skewed_examples(
        max(4 * job.total_steps * tokens_per_step // max(job.seq_len // 6, 1), 64),
        job.seq_len,
        shape.vocab_size,
        job.seed,
    )
    step, batches = _stepper(model, job, examples, device)
    total = job.total_steps
    if len(batches) < total:
        raise RuntimeError(f"{len(batches)} batches for {total} steps: make more examples")
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        setup = torch.cuda.memory_allocated()
    else:
        setup = _rss_bytes()
    losses = [step(batches[i]) for i in range(job.warmup)]
    _sync(device)
    started = time.perf_counter()
    losses += [step(batches[i]) for i in range(job.warmup, total)]
    _sync(device)
    seconds = time.perf_counter() - started
    timed = batches[job.warmup : total]
    lengths = [len(e["input_ids"]) for b in timed for e in _examples_of(b)]
    padded = sum(len(b) * max(len(e["input_ids"]) for e in b) for b in timed)
    if device.type == "cuda":
        peak, measure = torch.cuda.max_memory_allocated(), "torch.cuda.max_memory_allocated"
    else:
        peak, measure = _peak_rss_bytes(), "peak RSS of the variant's process"
    flops = lora_training_flops(base_params, shape.layers, shape.hidden_size, lengths)
    return TrainBenchResult(
        variant=variant.spec,
        path=variant.path,
        seq_len=variant.seq_len,
        rows=variant.rows,
        options=variant.options,
        steps=job.steps,
        tokens=sum(lengths),
        padded_tokens=padded,
        seconds=round(seconds, 6),  # to the microsecond: a tiny run lasts milliseconds
        tokens_per_s=round(tokens_per_second(lengths, seconds), 1),
        padding_share=round(1 - sum(lengths) / padded, 4),
        peak_memory_gib=round(peak / 2**30, 3),
        setup_memory_gib=round(setup / 2**30, 3),
        memory_measure=measure,
        mfu=round(mfu(flops, seconds), 4) if device.type == "cuda" else None,
        base_params=base_params,
        loss_first=round(losses[0], 4),
        loss_last=round(losses[-1], 4),
        device=name,
    )


def _build_model(shape: ModelShape, variant: Variant, device, max_len: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=shape.vocab_size,
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        max_position_embeddings=max(max_len, 2048),
        tie_word_embeddings=True,
        initializer_range=0.02,
        attn_implementation="sdpa",
    )
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    with torch.device(device):
        model = LlamaForCausalLM(config).to(dtype)
    base_params = sum(p.numel() for p in model.parameters())
    if variant.path == "qlora":
        model = _quantized(model)
    return model, base_params


def _quantized(model):
    """The random-init model reloaded with llmship's QLoRA settings (4-bit NF4)."""
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    from llmship.train.methods import qlora_quantization

    compute, quantization = qlora_quantization()
    with tempfile.TemporaryDirectory(prefix="llmship-bench-qlora-") as work:
        model.save_pretrained(work)
        del model
        model = AutoModelForCausalLM.from_pretrained(
            work, dtype=compute, quantization_config=quantization, device_map={"": 0}
        )
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)


def _stepper(model, job: TrainJob, examples, device):
    """The step function of the job's variant and the batches it takes, in order."""
    from llmship.train.batching import epoch_batches

    variant = job.variant
    if variant.path == "plain":
        return _plain_stepper(model, job.lora_r, device), epoch_batches(
            examples, variant.rows, job.seed, 0
        )
    from llmship.config.schema import LoraConfig, TrainConfig
    from llmship.train.loop import LoopData, make_stepper
    from llmship.train.methods import add_lora

    lora = LoraConfig(r=job.lora_r, alpha=2 * job.lora_r, dropout=0.0)
    model = add_lora(model, lora, "causal")
    cfg = TrainConfig(
        batch_size=variant.rows,
        learning_rate=1e-4,
        lr_scheduler="constant",
        warmup_ratio=0.0,
        max_grad_norm=0.0,
        **variant.options,
    )
    data = LoopData(train=examples, kind="causal", pad_id=0, max_length=variant.seq_len)
    stepper = make_stepper(model, data, cfg, device, job.total_steps)
    batches = epoch_batches(examples, variant.rows, job.seed, 0, cfg.packing, variant.seq_len)

    def step(batch) -> float:
        loss_sum, targets, _ = stepper([batch])
        return loss_sum / max(targets, 1)

    return step, batches


def _plain_stepper(model, lora_r: int, device):
    """The loop users write: peft LoRA, padded batches, model(labels=...).loss, AdamW."""
    import torch
    from peft import LoraConfig, get_peft_model

    from llmship.train.batching import collate

    model = get_peft_model(
        model,
        LoraConfig(
            r=lora_r,
            lora_alpha=2 * lora_r,
            lora_dropout=0.0,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        ),
    )
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)

    def step(batch) -> float:
        tensors = {k: v.to(device) for k, v in collate(batch, 0, "causal").items()}
        loss = model(**tensors, use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    return step


def _examples_of(batch):
    """Examples inside a batch (a pack stands for the examples it holds)."""
    for row in batch:
        if "position_ids" not in row:
            yield row
            continue
        starts = [i for i, p in enumerate(row["position_ids"]) if p == 0] + [len(row["input_ids"])]
        for begin, end in itertools.pairwise(starts):
            yield {"input_ids": row["input_ids"][begin:end]}


def _skipped(variant: Variant, device: str, why: str) -> TrainBenchResult:
    return TrainBenchResult(
        variant=variant.spec,
        path=variant.path,
        seq_len=variant.seq_len,
        rows=variant.rows,
        options=variant.options,
        steps=0,
        tokens=0,
        padded_tokens=0,
        seconds=0.0,
        tokens_per_s=0.0,
        padding_share=0.0,
        peak_memory_gib=0.0,
        setup_memory_gib=0.0,
        memory_measure="",
        mfu=None,
        base_params=0,
        loss_first=0.0,
        loss_last=0.0,
        device=device,
        skipped=why,
    )


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# --- output -------------------------------------------------------------------------


def format_table(results: list[TrainBenchResult]) -> str:
    """A plain-text table, then each variant's ratios against the plain loop."""
    header = f"{'variant':<28}{'rows x len':>11}{'tok/s':>11}{'padding':>8}{'peak GiB':>10}"
    header += f"{'+train GiB':>11}{'MFU':>7}{'loss':>16}"
    lines = [header, "-" * len(header)]
    for r in results:
        if r.skipped:
            lines.append(f"{r.variant:<28}skipped: {r.skipped}")
            continue
        share = f"{r.mfu:.1%}" if r.mfu is not None else "n/a"
        loss = f"{r.loss_first:.3f}->{r.loss_last:.3f}"
        lines.append(
            f"{r.variant:<28}{f'{r.rows}x{r.seq_len}':>11}{r.tokens_per_s:>11,.0f}"
            f"{r.padding_share:>8.0%}{r.peak_memory_gib:>10.2f}{_training_gib(r):>11.2f}"
            f"{share:>7}{loss:>16}"
        )
    plain = next((r for r in results if r.path == "plain" and not r.skipped), None)
    if plain is not None:
        for r in results:
            if r is plain or r.skipped:
                continue
            lines.append(
                f"{r.variant} vs plain: {r.tokens_per_s / plain.tokens_per_s:.2f}x tokens/s, "
                f"{r.peak_memory_gib / plain.peak_memory_gib:.2f}x peak memory, "
                f"{_training_gib(r) / max(_training_gib(plain), 1e-9):.2f}x above setup"
            )
    return "\n".join(lines)


def _training_gib(result: TrainBenchResult) -> float:
    """What the steps added to the memory the built model and data already held."""
    return result.peak_memory_gib - result.setup_memory_gib


def save(results: list[TrainBenchResult], path: Path, settings: dict[str, Any]) -> None:
    """JSON with the settings, the date and one record per variant."""
    import torch

    record = {
        "benchmark": "train",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": settings,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "results": [asdict(r) for r in results],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str]) -> None:
    """Worker entry: `python -m llmship.bench.training JOB_JSON OUT_PATH`."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    job, out = json.loads(argv[0]), Path(argv[1])
    out.write_text(json.dumps(asdict(run_variant(job))), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
