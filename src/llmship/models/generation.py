"""Load a model written by `llmship train` and generate with the prompt format it was trained on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmship.config.schema import GenerationConfig
from llmship.data.formatting import PromptFormat
from llmship.errors import EvalError


@dataclass
class FineTunedModel:
    """A trained model with its tokenizer, prompt format and generation defaults."""

    model: Any
    tokenizer: Any
    prompt_format: PromptFormat
    defaults: GenerationConfig
    device: Any

    @property
    def kind(self) -> str:
        return self.prompt_format.kind


def load_finetuned(
    model_dir: str | Path, device: str | None = None, dtype: Any = None
) -> FineTunedModel:
    """A run's model/ directory: merged weights, or an adapter over its base model
    (in `dtype`, default: as saved)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    from llmship.models.info import read_model_info
    from llmship.models.loading import dtype_argument

    model_dir = Path(model_dir)
    info = read_model_info(model_dir)
    prompt_format = PromptFormat.from_dict(info["prompt_format"])
    auto = AutoModelForSeq2SeqLM if prompt_format.kind == "seq2seq" else AutoModelForCausalLM
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        if (model_dir / "adapter_config.json").is_file():
            from peft import AutoPeftModelForCausalLM, AutoPeftModelForSeq2SeqLM

            peft_auto = (
                AutoPeftModelForSeq2SeqLM
                if prompt_format.kind == "seq2seq"
                else AutoPeftModelForCausalLM
            )
            model = peft_auto.from_pretrained(model_dir, **dtype_argument(dtype or "auto"))
        else:
            model = auto.from_pretrained(model_dir, **dtype_argument(dtype or "auto"))
    except (OSError, ValueError) as exc:
        raise EvalError(f"cannot load the trained model in {model_dir}: {exc}") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.to(target).eval()
    defaults = GenerationConfig.model_validate(info.get("generation", {}))
    return FineTunedModel(model, tokenizer, prompt_format, defaults, target)


def generation_kwargs(params: GenerationConfig) -> dict[str, Any]:
    """transformers generate() arguments; sampling knobs only when sampling."""
    kwargs: dict[str, Any] = {
        "max_new_tokens": params.max_new_tokens,
        "do_sample": params.do_sample,
        "num_beams": params.num_beams,
        "repetition_penalty": params.repetition_penalty,
    }
    if params.do_sample:
        kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=params.top_k)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    return kwargs


def generate(
    loaded: FineTunedModel,
    rows: list[dict[str, Any]],
    params: GenerationConfig | None = None,
) -> list[str]:
    """Completions for rows of fields (e.g. {"dialogue": ...}), one per row, in order."""
    import torch

    params = params or loaded.defaults
    tokenizer, prompt_format = loaded.tokenizer, loaded.prompt_format
    encoded = [prompt_format.encode_prompt(fields, tokenizer) for fields in rows]
    pad = tokenizer.pad_token_id
    width = max(len(ids) for ids in encoded)
    left = prompt_format.kind == "causal"  # decoder-only models continue from the right edge
    input_ids = torch.full((len(encoded), width), pad, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, ids in enumerate(encoded):
        span = slice(width - len(ids), width) if left else slice(0, len(ids))
        input_ids[row, span] = torch.tensor(ids)
        mask[row, span] = 1
    with torch.no_grad():
        output = loaded.model.generate(
            input_ids=input_ids.to(loaded.device),
            attention_mask=mask.to(loaded.device),
            pad_token_id=pad,
            **generation_kwargs(params),
        )
    if left:
        output = output[:, width:]
    return [tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in output]
