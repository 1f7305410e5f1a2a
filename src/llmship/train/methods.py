"""Training methods, one function each, registered in one table: lora, qlora, full."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.util import find_spec

import torch

from llmship.config.schema import LlmshipConfig, LoraConfig
from llmship.errors import TrainError
from llmship.models.loading import ModelKind, load_model, pick_dtype


@dataclass(frozen=True)
class MethodContext:
    config: LlmshipConfig
    base_source: str
    kind: ModelKind
    device: torch.device


def add_lora(model: torch.nn.Module, lora: LoraConfig, kind: ModelKind) -> torch.nn.Module:
    """`model` with peft LoRA adapters as train.lora configures them (the benchmark adds
    them to its random-init models the same way)."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import TaskType, get_peft_model

    settings = PeftLoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type=TaskType.SEQ_2_SEQ_LM if kind == "seq2seq" else TaskType.CAUSAL_LM,
    )
    return get_peft_model(model, settings)


def prepare_lora(ctx: MethodContext):
    """Base weights frozen in their load dtype; LoRA adapters trained in float32."""
    dtype = pick_dtype(ctx.config.model, ctx.device)
    model = load_model(ctx.config.model, ctx.base_source, ctx.kind, dtype).to(ctx.device)
    return add_lora(model, ctx.config.train.lora, ctx.kind)


def prepare_qlora(ctx: MethodContext):
    """4-bit NF4 base (bitsandbytes) with LoRA adapters; CUDA only."""
    if ctx.device.type != "cuda":
        raise TrainError(
            "train.method qlora needs a CUDA GPU (none is visible here); use train.method lora "
            "on this machine, or train on a GPU"
        )
    if find_spec("bitsandbytes") is None:
        raise TrainError(
            "train.method qlora needs bitsandbytes; install it with `pip install 'llmship[gpu]'`"
        )
    from peft import prepare_model_for_kbit_training

    compute, quantization = qlora_quantization()
    model = load_model(ctx.config.model, ctx.base_source, ctx.kind, compute, quantization)
    model = prepare_model_for_kbit_training(model)
    return add_lora(model, ctx.config.train.lora, ctx.kind)


def qlora_quantization():
    """The compute dtype and bitsandbytes settings of a QLoRA base: 4-bit NF4 weights with
    double quantization, matmuls in bf16 (fp16 on GPUs without bf16)."""
    from transformers import BitsAndBytesConfig

    compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return compute, BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute,
    )


def prepare_full(ctx: MethodContext):
    """Every weight trained, in float32 (bf16 autocast on GPUs that support it)."""
    model = load_model(ctx.config.model, ctx.base_source, ctx.kind, torch.float32)
    return model.to(ctx.device)


METHODS: dict[str, Callable[[MethodContext], torch.nn.Module]] = {
    "lora": prepare_lora,
    "qlora": prepare_qlora,
    "full": prepare_full,
}


def prepare_model(ctx: MethodContext) -> torch.nn.Module:
    """The model ready to train with the configured method."""
    return METHODS[ctx.config.train.method](ctx)
