"""The training loop: token-weighted gradient accumulation, checkpoints, exact resume.

Plain PyTorch on purpose: the same loop runs locally and inside SageMaker's training
containers, whatever transformers version they pin. What makes it fast (measured by
`llmship bench train`): packing without cross-example attention (batching), the output
layer and cross-entropy by chunks on labelled positions only (loss), and on CUDA bf16
autocast without extra float32 copies of LoRA inputs, the fused AdamW kernel and,
optionally, torch.compile and activation checkpointing (`prepare_for_speed`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from llmship.train.batching import Example, collate, epoch_batches, packed_attention
from llmship.train.checkpoint import TrainState, list_checkpoints, load_checkpoint, save_checkpoint
from llmship.train.loss import causal_loss_sum, count_targets, token_loss_sum

if TYPE_CHECKING:
    from llmship.config.schema import TrainConfig
    from llmship.progress import Reporter
    from llmship.train.metrics import MetricsLog

StepCallback = Callable[[TrainState], None]


@dataclass
class LoopData:
    """Encoded examples and what collation needs to know about them."""

    train: list[Example]
    kind: str
    pad_id: int
    max_length: int
    validation: list[Example] = field(default_factory=list)


def use_bf16(cfg: TrainConfig, device: torch.device) -> bool:
    """bf16 autocast: asked for, or auto on a GPU that supports it."""
    if cfg.precision == "fp32" or device.type != "cuda":
        return False
    return cfg.precision == "bf16" or torch.cuda.is_bf16_supported()


def total_steps(cfg: TrainConfig, data: LoopData) -> int:
    """Optimizer steps for the run: max_steps, else epochs over the batches of one epoch."""
    if cfg.max_steps:
        return cfg.max_steps
    batches = len(
        epoch_batches(data.train, cfg.batch_size, cfg.seed, 0, cfg.packing, data.max_length)
    )
    return cfg.epochs * math.ceil(batches / cfg.gradient_accumulation)


def train_loop(
    model: torch.nn.Module,
    data: LoopData,
    cfg: TrainConfig,
    checkpoint_dir: Path,
    metrics: MetricsLog,
    device: torch.device,
    reporter: Reporter,
    callbacks: Iterable[StepCallback] = (),
    clock: Callable[[], float] = time.perf_counter,
) -> TrainState:
    """Train until total_steps, resuming from the newest checkpoint in checkpoint_dir."""
    total = total_steps(cfg, data)
    step_fn = make_stepper(model, data, cfg, device, total)
    optimizer, scheduler = step_fn.optimizer, step_fn.scheduler
    state = TrainState(total_steps=total)
    checkpoints = list_checkpoints(checkpoint_dir)
    if checkpoints:
        state = load_checkpoint(checkpoints[-1], model, optimizer, scheduler)
        state.total_steps = total
        reporter.message(f"resuming from {checkpoints[-1].name} (step {state.step} of {total})")
    model.train()
    reporter.start("train", total, state.step)
    window = _LogWindow(clock())
    try:
        while state.step < total:
            batches = epoch_batches(
                data.train, cfg.batch_size, cfg.seed, state.epoch, cfg.packing, data.max_length
            )
            while state.micro_batch < len(batches) and state.step < total:
                chunk = batches[state.micro_batch : state.micro_batch + cfg.gradient_accumulation]
                loss_sum, targets, tokens = step_fn(chunk)
                state.step += 1
                state.micro_batch += len(chunk)
                state.tokens_seen += tokens
                window.add(loss_sum, targets, tokens)
                epoch_done = state.micro_batch >= len(batches)
                progress = state.epoch + state.micro_batch / len(batches)
                if epoch_done:
                    state.epoch, state.micro_batch = state.epoch + 1, 0
                if state.step % cfg.logging_steps == 0 or state.step == total:
                    record = window.flush(clock())
                    metrics.log(
                        {
                            "step": state.step,
                            "epoch": round(progress, 4),
                            "learning_rate": scheduler.get_last_lr()[0],
                            **record,
                        }
                    )
                wants_eval = (epoch_done and cfg.eval_steps is None) or (
                    cfg.eval_steps is not None and state.step % cfg.eval_steps == 0
                )
                if data.validation and (wants_eval or state.step == total):
                    eval_loss = step_fn.validation_loss()
                    metrics.log({"step": state.step, "eval_loss": eval_loss})
                if state.step % cfg.save_steps == 0 or state.step == total:
                    save_checkpoint(
                        checkpoint_dir, model, optimizer, scheduler, state, cfg.save_total_limit
                    )
                reporter.update(
                    state.step,
                    loss=f"{window.last_loss:.4f}",
                    lr=f"{scheduler.get_last_lr()[0]:.2e}",
                    tok_s=f"{window.last_rate:,.0f}",
                )
                for callback in callbacks:
                    callback(state)
                if epoch_done:
                    break  # the next epoch has its own shuffled batches
    finally:
        reporter.finish()
    return state


def make_stepper(
    model: torch.nn.Module, data: LoopData, cfg: TrainConfig, device: torch.device, total: int
) -> _Stepper:
    """The optimizer step train_loop runs (the benchmark times this same object): the model
    prepared for speed, its optimizer and learning-rate schedule."""
    bf16 = use_bf16(cfg, device)
    prepare_for_speed(model, cfg, device, bf16)
    optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], cfg, device)
    scheduler = _scheduler(cfg, optimizer, total)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else nullcontext()
    return _Stepper(model, data, optimizer, scheduler, cfg, device, autocast)


def make_optimizer(
    params: list[torch.nn.Parameter], cfg: TrainConfig, device: torch.device
) -> torch.optim.Optimizer:
    """AdamW; on CUDA its fused kernel (one launch for every parameter, not several each)."""
    fused = device.type == "cuda" and all(p.is_cuda and p.is_floating_point() for p in params)
    return torch.optim.AdamW(
        params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay, fused=fused or None
    )


def prepare_for_speed(
    model: torch.nn.Module, cfg: TrainConfig, device: torch.device, bf16: bool
) -> None:
    """Changes that make the same training cheaper, each one measured by `llmship bench train`.

    - Under bf16 autocast, LoRA layers stop casting their input to the adapters' float32:
      each cast kept a float32 copy of every adapted layer's input alive until backward
      (about 10 GB at 8 x 1024 tokens on a 1B model); autocast already runs the adapter
      matmuls in bf16, from the bf16 input the base layer keeps anyway.
    - train.gradient_checkpointing: recompute each layer's activations in backward.
    - train.compile (CUDA): torch.compile the transformer body; the loss stays eager.
    """
    if bf16:
        for module in model.modules():
            if hasattr(module, "cast_input_dtype_enabled"):
                module.cast_input_dtype_enabled = False
    if cfg.gradient_checkpointing:
        options = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # transformers 5.25 and later
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=options)
        else:  # the training containers' transformers 4.x
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=options)
    if cfg.compile and device.type == "cuda":
        body = _body_and_head(model, cfg)[0] or model
        body.compile()


def _scheduler(cfg: TrainConfig, optimizer, total: int):
    from transformers import get_scheduler

    name = "constant_with_warmup" if cfg.lr_scheduler == "constant" else cfg.lr_scheduler
    return get_scheduler(
        name,
        optimizer,
        num_warmup_steps=math.ceil(total * cfg.warmup_ratio),
        num_training_steps=total,
    )


class _Stepper:
    """One optimizer step over a window of micro-batches, and validation loss."""

    def __init__(self, model, data: LoopData, optimizer, scheduler, cfg, device, autocast):
        self.model, self.data, self.cfg, self.device = model, data, cfg, device
        self.optimizer, self.scheduler, self.autocast = optimizer, scheduler, autocast
        self.body, self.head = _body_and_head(model, cfg) if data.kind == "causal" else (None, None)
        self.chunk_tokens = cfg.loss_chunk_tokens
        self.mask_dtype = (
            torch.bfloat16
            if isinstance(autocast, torch.autocast)
            else model.get_input_embeddings().weight.dtype
        )
        # A compiled body sees one shape: every batch padded to max_length.
        compiled = cfg.compile and device.type == "cuda"
        self.width = data.max_length if compiled else None

    def __call__(self, chunk: list[list[Example]]) -> tuple[float, int, int]:
        kind = self.data.kind
        tensors = [collate(batch, self.data.pad_id, kind, self.width) for batch in chunk]
        targets = sum(count_targets(t["labels"], kind) for t in tensors)
        loss_total = 0.0
        for batch in tensors:
            loss_sum = self._loss_sum(batch)
            (loss_sum / max(targets, 1)).backward()
            loss_total += loss_sum.item()
        if self.cfg.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(
                [p for p in self.model.parameters() if p.requires_grad], self.cfg.max_grad_norm
            )
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        tokens = sum(_example_tokens(example, kind) for batch in chunk for example in batch)
        return loss_total, targets, tokens

    def _loss_sum(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        batch = {key: value.to(self.device) for key, value in batch.items()}
        labels = batch.pop("labels")
        if "position_ids" in batch:
            batch.update(packed_attention(batch.pop("position_ids"), self.mask_dtype))
        if self.data.kind == "seq2seq":
            batch["decoder_input_ids"] = self.model.prepare_decoder_input_ids_from_labels(
                labels=labels
            )
        with self.autocast:
            if self.head is not None:
                hidden = self.body(**batch, use_cache=False)[0]
                return causal_loss_sum(hidden, self.head, labels, self.chunk_tokens)
            logits = self.model(**batch, use_cache=False).logits
        return token_loss_sum(logits, labels, self.data.kind)

    @torch.no_grad()
    def validation_loss(self) -> float:
        self.model.eval()
        kind, size = self.data.kind, self.cfg.batch_size
        loss, count = 0.0, 0
        examples = self.data.validation
        for start in range(0, len(examples), size):
            batch = collate(examples[start : start + size], self.data.pad_id, kind)
            count += count_targets(batch["labels"], kind)
            loss += self._loss_sum(batch).item()
        self.model.train()
        return loss / max(count, 1)


# Causal LMs whose logits are exactly output_layer(last hidden state): no scaling or
# soft-capping after it, so the chunked loss computes what their forward would.
PLAIN_OUTPUT_LAYER = frozenset(
    {"llama", "mistral", "qwen2", "qwen3", "phi3", "gemma", "olmo", "olmo2", "smollm3"}
)


def _body_and_head(model, cfg) -> tuple[torch.nn.Module | None, torch.nn.Linear | None]:
    """The transformer body and output layer, when the chunked loss applies (train.chunked_loss
    on, a causal LM of a known plain-output architecture, an output layer without adapters)."""
    if not cfg.chunked_loss:
        return None, None
    config = getattr(model, "config", None)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if getattr(config, "model_type", None) not in PLAIN_OUTPUT_LAYER or type(head) is not (
        torch.nn.Linear
    ):
        return None, None
    return model.get_decoder(), head


def _example_tokens(example: Example, kind: str) -> int:
    tokens = len(example["input_ids"])
    return tokens + len(example["labels"]) if kind == "seq2seq" else tokens


class _LogWindow:
    """Loss and tokens/s since the last log line."""

    def __init__(self, now: float):
        self.started, self.loss_sum, self.targets, self.tokens = now, 0.0, 0, 0
        self.last_loss, self.last_rate = float("nan"), 0.0

    def add(self, loss_sum: float, targets: int, tokens: int) -> None:
        self.loss_sum += loss_sum
        self.targets += targets
        self.tokens += tokens
        self.last_loss = loss_sum / max(targets, 1)

    def flush(self, now: float) -> dict[str, float]:
        elapsed = max(now - self.started, 1e-9)
        self.last_rate = self.tokens / elapsed
        record = {
            "loss": self.loss_sum / max(self.targets, 1),
            "tokens_per_second": round(self.last_rate, 1),
        }
        self.started, self.loss_sum, self.targets, self.tokens = now, 0.0, 0, 0
        return record
