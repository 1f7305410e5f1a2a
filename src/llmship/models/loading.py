"""Load base models and tokenizers from a hub id or a local directory.

Hub and file-system failures are translated here into ModelError messages that say
what to check (the id, HF_TOKEN for gated models, a local path when offline).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from llmship.errors import ModelError

if TYPE_CHECKING:
    import torch

    from llmship.config.schema import ModelConfig

ModelKind = Literal["causal", "seq2seq"]


def _hub_kwargs(model_cfg: ModelConfig) -> dict:
    token = model_cfg.hf_token.get_secret_value() if model_cfg.hf_token else None
    return {
        "revision": model_cfg.revision,
        "token": token or None,
        "trust_remote_code": model_cfg.trust_remote_code,
    }


def _translate(source: str, exc: Exception) -> ModelError:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    hints = []
    lowered = str(exc).lower()
    if "gated" in lowered or "401" in lowered or "403" in lowered:
        hints.append("the model is gated: accept its licence on the hub and set HF_TOKEN")
    hints.append(
        "check model.name_or_path (a hub id, or a local directory relative to the config); "
        "offline, point it at a local copy"
    )
    return ModelError(f"could not load {source!r}: {text}; " + "; ".join(hints))


def detect_kind(model_cfg: ModelConfig, source: str) -> ModelKind:
    """causal or seq2seq, from the config or the model's own config.json."""
    if model_cfg.kind != "auto":
        return model_cfg.kind
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(source, **_hub_kwargs(model_cfg))
    except (OSError, ValueError) as exc:
        raise _translate(source, exc) from exc
    return "seq2seq" if getattr(config, "is_encoder_decoder", False) else "causal"


def published_dtype(model_cfg: ModelConfig, source: str) -> torch.dtype | None:
    """The dtype the model's config.json declares, if any."""
    import torch
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(source, **_hub_kwargs(model_cfg))
    except (OSError, ValueError) as exc:
        raise _translate(source, exc) from exc
    dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)  # 4.x name
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None)
    return dtype if isinstance(dtype, torch.dtype) else None


def load_tokenizer(model_cfg: ModelConfig, source: str):
    """The tokenizer, with a pad token (the EOS token when the model has none)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **_hub_kwargs(model_cfg))
    except (OSError, ValueError) as exc:
        raise _translate(source, exc) from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def dtype_argument(dtype: Any) -> dict[str, Any]:
    """from_pretrained's dtype keyword: `dtype` since transformers 4.56, `torch_dtype`
    before (the SageMaker training images pin 4.49 and 4.55 too)."""
    import transformers
    from packaging.version import Version

    old = Version(transformers.__version__) < Version("4.56")
    return {"torch_dtype" if old else "dtype": dtype}


def pick_dtype(model_cfg: ModelConfig, device: torch.device) -> torch.dtype:
    """auto: bf16 on GPUs that support it, fp32 elsewhere."""
    import torch

    if model_cfg.dtype != "auto":
        return getattr(torch, model_cfg.dtype)
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def load_model(
    model_cfg: ModelConfig,
    source: str,
    kind: ModelKind,
    dtype: torch.dtype,
    quantization_config=None,
):
    """The base model for `kind`, loaded from `source` (hub id or directory)."""
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    auto = AutoModelForSeq2SeqLM if kind == "seq2seq" else AutoModelForCausalLM
    kwargs = _hub_kwargs(model_cfg)
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
        kwargs["device_map"] = {"": 0}
    try:
        return auto.from_pretrained(source, **dtype_argument(dtype), **kwargs)
    except (OSError, ValueError) as exc:
        raise _translate(source, exc) from exc
