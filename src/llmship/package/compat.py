"""Rewrite the files transformers 5 saves so a transformers 4.x container reads them
exactly as llmship does.

What 4.x gets wrong without this, silently or loudly:
- config.json: `rope_parameters` is ignored (4.x reads `rope_theta` and `rope_scaling`),
  so a Llama 3 model runs with rope_theta 10000 and no llama3 scaling; `dtype` is
  ignored (4.x reads `torch_dtype`).
- tokenizer_config.json: `tokenizer_class: TokenizersBackend` does not exist in 4.x;
  the chat template lives in chat_template.jinja, which 4.48 does not read.
- T5: 5.x always ties the output layer and records the old untied "no scaling"
  behaviour as `scale_decoder_outputs: false`; 4.x scales by d_model**-0.5 whenever
  `tie_word_embeddings` is true. So a non-scaling T5 becomes untied for 4.x, with the
  shared embedding written out as its own lm_head.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FAST_TOKENIZER = "PreTrainedTokenizerFast"


def config_for_v4(config: dict[str, Any], transformers_version: str) -> dict[str, Any]:
    """config.json as transformers 4.x expects it."""
    out = dict(config)
    rope = out.pop("rope_parameters", None)
    if isinstance(rope, dict):
        rope = dict(rope)
        if "rope_theta" in rope:
            out["rope_theta"] = rope.pop("rope_theta")
        kind = rope.get("rope_type", "default")
        out["rope_scaling"] = None if kind == "default" and len(rope) <= 1 else rope
    if "dtype" in out:
        out["torch_dtype"] = out.pop("dtype")
    if out.get("model_type") == "t5" and out.pop("scale_decoder_outputs", True) is False:
        out["tie_word_embeddings"] = False
    out["transformers_version"] = transformers_version
    return out


def needs_untied_lm_head(config: dict[str, Any]) -> bool:
    """A 5.x T5 config whose output layer must be written out for 4.x."""
    return config.get("model_type") == "t5" and config.get("scale_decoder_outputs") is False


def tokenizer_config_for_v4(tokenizer_config: dict[str, Any], chat_template: str | None) -> dict:
    """tokenizer_config.json as transformers 4.x expects it (chat template inline)."""
    out = dict(tokenizer_config)
    out.pop("backend", None)
    if out.get("tokenizer_class") in (None, "TokenizersBackend"):
        out["tokenizer_class"] = FAST_TOKENIZER
    if chat_template and "chat_template" not in out:
        out["chat_template"] = chat_template
    return out


def write_v4_files(source: Path, target: Path, transformers_version: str) -> list[str]:
    """Write 4.x-readable config, tokenizer config and (for T5) weights; return what changed."""
    changed = []
    config_path = source / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    _write_json(target / "config.json", config_for_v4(config, transformers_version))
    changed.append("config.json")
    tokenizer_path = source / "tokenizer_config.json"
    if tokenizer_path.is_file():
        template_path = source / "chat_template.jinja"
        template = template_path.read_text(encoding="utf-8") if template_path.is_file() else None
        tokenizer_config = json.loads(tokenizer_path.read_text(encoding="utf-8"))
        _write_json(
            target / "tokenizer_config.json", tokenizer_config_for_v4(tokenizer_config, template)
        )
        changed.append("tokenizer_config.json")
    if needs_untied_lm_head(config):
        changed += _untie_lm_head(target)
    return changed


def _untie_lm_head(directory: Path) -> list[str]:
    from safetensors.torch import load_file, save_file

    changed = []
    for path in sorted(directory.glob("*.safetensors")):
        tensors = load_file(path)
        if "shared.weight" in tensors and "lm_head.weight" not in tensors:
            tensors["lm_head.weight"] = tensors["shared.weight"].clone()
            save_file(tensors, path, metadata={"format": "pt"})
            changed.append(path.name)
    return changed


def _write_json(path: Path, value: dict[str, Any]) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")
