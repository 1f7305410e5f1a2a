"""llmship.json for a model that llmship did not train: prompts are sent as they are."""

from __future__ import annotations

import json
from pathlib import Path

MODEL_INFO = "llmship.json"


def write_default_model_info(model_dir: Path, out: Path) -> Path:
    """The identity prompt format ("{inputs}") and the model's own generation defaults."""
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    generation_path = model_dir / "generation_config.json"
    generation = json.loads(generation_path.read_text()) if generation_path.is_file() else {}
    info = {
        "kind": "seq2seq" if config.get("is_encoder_decoder") else "causal",
        "prompt_format": {
            "kind": "seq2seq" if config.get("is_encoder_decoder") else "causal",
            "prompt_template": "{inputs}",
            "input_field": "inputs",
            "output_field": "output",
            "system_prompt": None,
            "use_chat_template": False,
        },
        "generation": {
            "max_new_tokens": generation.get("max_new_tokens", 128),
            "do_sample": bool(generation.get("do_sample", False)),
        },
    }
    out.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return out
