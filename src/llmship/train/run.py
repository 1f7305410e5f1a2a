"""A training run: locally in a run directory, or inside a SageMaker training container.

`train_in_environment` is the one code path; `train` maps the SageMaker contract into a
local run directory and calls it, and `llmship.train.entrypoint` calls it in a job (once
per GPU under torchrun; see llmship.train.distributed).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from llmship import __version__
from llmship.config.loader import LoadedConfig, reload_saved
from llmship.data.formatting import PromptFormat, encode_rows, prompt_format_for
from llmship.data.prepare import DataReport, prepare_data, read_channel
from llmship.errors import TrainError
from llmship.models.info import MODEL_INFO
from llmship.models.loading import ModelKind, detect_kind, load_tokenizer
from llmship.progress import RecordingReporter, Reporter
from llmship.runs import RunDir, find_run, new_run
from llmship.sagemaker.training_contract import TrainingEnvironment
from llmship.train.checkpoint import TrainState
from llmship.train.distributed import (
    Rank,
    barrier,
    current_rank,
    finish,
    init_process_group,
    shard,
    unwrap,
    wrap,
)
from llmship.train.loop import LoopData, StepCallback, train_loop
from llmship.train.methods import MethodContext, prepare_model
from llmship.train.metrics import MetricsLog
from llmship.train.plots import plot_loss


@dataclass(frozen=True)
class TrainResult:
    """What a finished run produced."""

    state: TrainState
    model_dir: Path
    train_rows: int
    dropped_rows: int


def train(
    loaded: LoadedConfig,
    output: str | Path | None = None,
    resume: str | None = None,
    overrides: Iterable[str] = (),
    reporter: Reporter | None = None,
    callbacks: Iterable[StepCallback] = (),
) -> tuple[RunDir, TrainResult]:
    """Train locally in a new run directory, or continue `resume` (a run or "latest")."""
    import torch

    reporter = reporter or RecordingReporter()
    if resume:
        run = find_run(loaded, resume, output)
        loaded = reload_saved(run.config, loaded, overrides)
    else:
        run = new_run(loaded, output)
        report = prepare_run_data(loaded, run)
        reporter.message(
            f"data: {report.rows['train']} train / {report.rows['validation']} validation / "
            f"{report.rows['test']} test rows; {sum(report.dropped.values())} dropped as longer "
            f"than model.max_length={loaded.config.model.max_length}"
        )
    result = train_in_environment(
        loaded, run.environment(torch.cuda.device_count()), reporter, callbacks
    )
    plot_loss(run.metrics, run.loss_plot)
    return run, result


def prepare_run_data(loaded: LoadedConfig, run: RunDir) -> DataReport:
    """Write the run's split files (its channels), filtered by length with the tokenizer."""
    source = loaded.resolve_path(loaded.config.model.name_or_path)
    tokenizer = load_tokenizer(loaded.config.model, source)
    kind = detect_kind(loaded.config.model, source)
    return prepare_data(loaded, run.root / "data", tokenizer, kind)


def train_in_environment(
    loaded: LoadedConfig,
    env: TrainingEnvironment,
    reporter: Reporter | None = None,
    callbacks: Iterable[StepCallback] = (),
) -> TrainResult:
    """Train from the channels in `env` and write the final model to env.model_dir.

    Under torchrun (several processes) each rank trains its shard under DDP and only
    rank 0 reports, logs metrics and writes checkpoints and the model.
    """
    import torch

    rank = current_rank()
    device = init_process_group(rank, env.num_gpus > 0 and torch.cuda.is_available())
    try:
        return _train(loaded, env, device, rank, reporter, callbacks)
    finally:
        finish(rank)


def _train(loaded, env, device, rank: Rank, reporter, callbacks) -> TrainResult:
    from transformers import set_seed

    reporter = reporter if reporter is not None and rank.is_main else RecordingReporter()
    config = loaded.config
    if "train" not in env.channels:
        raise TrainError("no training data: the train channel (SM_CHANNEL_TRAIN) is not set")
    base_source = (
        str(env.channels["model"])
        if "model" in env.channels
        else loaded.resolve_path(config.model.name_or_path)
    )
    kind = detect_kind(config.model, base_source)
    tokenizer = load_tokenizer(config.model, base_source)
    prompt_format = prompt_format_for(config, kind, tokenizer)
    max_length = config.model.max_length
    train_rows = encode_rows(
        read_channel(env.channels["train"], "train"), prompt_format, tokenizer, max_length
    )
    if not train_rows.examples:
        raise TrainError(f"no training rows within model.max_length={max_length} tokens")
    validation = []
    if "validation" in env.channels and any(env.channels["validation"].glob("*.jsonl")):
        validation = encode_rows(
            read_channel(env.channels["validation"], "validation"),
            prompt_format,
            tokenizer,
            max_length,
        ).examples
    if config.train.packing and kind != "causal":
        raise TrainError("train.packing works for causal models only; turn it off for seq2seq")
    if config.train.packing and rank.distributed:
        raise TrainError(
            "train.packing with more than one process would give the ranks different numbers "
            "of steps; turn packing off for multi-GPU or multi-instance training"
        )
    shard_rows = shard(train_rows.examples, rank)
    if not shard_rows:
        raise TrainError(
            f"{len(train_rows.examples)} training rows cannot be shared among "
            f"{rank.world_size} processes; add data or use fewer GPUs or instances"
        )

    set_seed(config.train.seed)
    model = wrap(prepare_model(MethodContext(config, base_source, kind, device)), rank, device)
    data = LoopData(
        train=shard_rows,
        validation=validation,
        kind=kind,
        pad_id=tokenizer.pad_token_id,
        max_length=max_length,
    )
    with tempfile.TemporaryDirectory(prefix="llmship-rank-") as scratch:
        # Ranks other than 0 log to a scratch file that goes away with them.
        metrics_dir = env.output_data_dir if rank.is_main else Path(scratch)
        metrics = MetricsLog(
            metrics_dir / "metrics.jsonl",
            metrics_dir / "tensorboard" if rank.is_main else None,
            resume_step=_resume_step(env.checkpoint_dir),
        )
        try:
            state = train_loop(
                model, data, config.train, env.checkpoint_dir, metrics, device, reporter, callbacks
            )
        finally:
            metrics.close()
    if rank.is_main:
        save_final_model(unwrap(model), tokenizer, prompt_format, loaded, env, base_source, kind)
    barrier(rank)
    return TrainResult(state, env.model_dir, len(train_rows.examples), train_rows.dropped)


def _resume_step(checkpoint_dir: Path) -> int:
    from llmship.train.checkpoint import list_checkpoints

    found = list_checkpoints(checkpoint_dir)
    return int(json.loads((found[-1] / "state.json").read_text())["step"]) if found else 0


def save_final_model(
    model,
    tokenizer,
    prompt_format: PromptFormat,
    loaded: LoadedConfig,
    env: TrainingEnvironment,
    base_source: str,
    kind: ModelKind,
) -> Path:
    """Write the deployable model (merged weights or adapter) with everything it needs."""
    config = loaded.config
    out = env.model_dir
    out.mkdir(parents=True, exist_ok=True)
    is_adapter = config.train.method in ("lora", "qlora")
    merged = is_adapter and config.train.merge
    if is_adapter:
        adapter_dir = env.output_data_dir / "adapter"
        model.save_pretrained(adapter_dir)
        tokenizer.save_pretrained(adapter_dir)
        if merged:
            model = _merge(model, adapter_dir, loaded, base_source, kind)
    if merged or not is_adapter:
        model = _to_base_dtype(model, loaded, base_source)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    _generation_config(model, tokenizer, config).save_pretrained(out)
    info = {
        "llmship_version": __version__,
        "kind": kind,
        "base_model": config.model.name_or_path,
        "method": config.train.method,
        "merged": merged or not is_adapter,
        "max_length": config.model.max_length,
        "prompt_format": prompt_format.to_dict(),
        "generation": config.eval.generation.model_dump(),
    }
    (out / MODEL_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return out


def _merge(model, adapter_dir: Path, loaded: LoadedConfig, base_source: str, kind: ModelKind):
    """The adapter folded into the base weights."""
    import torch
    from peft import PeftModel

    from llmship.models.loading import load_model

    if loaded.config.train.method == "qlora":
        # 4-bit weights cannot take the merge: reload the base in bf16 and merge there.
        base = load_model(loaded.config.model, base_source, kind, torch.bfloat16)
        model = PeftModel.from_pretrained(base, adapter_dir)
    return model.merge_and_unload()


def _to_base_dtype(model, loaded: LoadedConfig, base_source: str):
    """Weights cast back to the half precision the base was published in, if it was."""
    import torch

    from llmship.models.loading import published_dtype

    dtype = published_dtype(loaded.config.model, base_source)
    model = model.cpu()
    return model.to(dtype) if dtype in (torch.bfloat16, torch.float16) else model


def _generation_config(model, tokenizer, config):
    """The model's generation config with the configured defaults (what endpoints read)."""
    generation = model.generation_config
    defaults = config.eval.generation
    generation.max_new_tokens = defaults.max_new_tokens
    generation.do_sample = defaults.do_sample
    generation.num_beams = defaults.num_beams
    generation.repetition_penalty = defaults.repetition_penalty
    if defaults.do_sample:
        generation.temperature = defaults.temperature
        generation.top_p = defaults.top_p
        generation.top_k = defaults.top_k
    if generation.pad_token_id is None:
        generation.pad_token_id = tokenizer.pad_token_id
    return generation
