"""What a saved model directory holds: llmship.json, and the files that travel with the
weights (shared by packaging and publishing). For a model llmship did not train, a
default llmship.json sends prompts as they are."""

from __future__ import annotations

import json
from pathlib import Path

from llmship.errors import TrainError

MODEL_INFO = "llmship.json"
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "tokenizer.model",
    "spiece.model",
)
# Beside the weights (*.safetensors and their index), which are matched by suffix.
MODEL_FILES = ("config.json", "generation_config.json", MODEL_INFO, *TOKENIZER_FILES)


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


def read_model_info(model_dir: Path) -> dict:
    """The llmship.json written beside a trained model."""
    path = Path(model_dir) / MODEL_INFO
    if not path.is_file():
        raise TrainError(
            f"{model_dir} has no {MODEL_INFO}; it was not written by `llmship train` "
            "(give a run's model/ directory)"
        )
    return json.loads(path.read_text(encoding="utf-8"))
