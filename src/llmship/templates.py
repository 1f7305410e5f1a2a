"""Starter configs for the two workloads users bring most often."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmship.config.loader import DEFAULT_CONFIG_NAME
from llmship.config.render import render_commented
from llmship.config.schema import LlmshipConfig
from llmship.errors import ConfigError

TEMPLATES: dict[str, dict[str, Any]] = {
    # Llama 3.2 1B Instruct summarizing SAMSum dialogues (gated model: needs HF_TOKEN).
    "samsum-llama": {
        "project": {"name": "samsum-llama"},
        "model": {
            "name_or_path": "meta-llama/Llama-3.2-1B-Instruct",
            "hf_token": "${HF_TOKEN:-}",
            "max_length": 1024,
        },
        "data": {
            "source": "knkarthick/samsum",
            "input_field": "dialogue",
            "output_field": "summary",
            "prompt_template": "Summarize this dialogue:\n{dialogue}",
            "system_prompt": "You write short, faithful summaries of conversations.",
        },
        "train": {"epochs": 1, "batch_size": 8, "learning_rate": 2e-4, "save_steps": 200},
        "eval": {"max_samples": 200, "generation": {"max_new_tokens": 96}},
    },
    # Flan-T5 base answering your own question/answer pairs from a JSONL file.
    "qa-flan-t5": {
        "project": {"name": "qa-flan-t5"},
        "model": {
            "name_or_path": "google/flan-t5-base",
            "kind": "seq2seq",
            "hf_token": "${HF_TOKEN:-}",
            "max_length": 512,
        },
        "data": {
            "source": "data/qa.jsonl",
            "input_field": "question",
            "output_field": "answer",
            "prompt_template": "Answer the question: {question}",
        },
        "train": {"epochs": 6, "batch_size": 8, "learning_rate": 3e-4, "save_steps": 200},
        "eval": {"split": "test", "generation": {"max_new_tokens": 64}},
    },
}

# Local sample data each template can start from when its source file is missing.
TEMPLATE_SAMPLES = {"qa-flan-t5": "bio-qa"}


def render_template(name: str) -> str:
    """The commented starter YAML of one template."""
    if name not in TEMPLATES:
        known = ", ".join(TEMPLATES)
        raise ConfigError(f"unknown template {name!r}; choose one of: {known}")
    values = TEMPLATES[name]
    tree = LlmshipConfig.model_validate(values).model_dump(mode="json")
    tree["model"]["hf_token"] = values["model"].get("hf_token")
    return render_commented(tree)


def write_template(name: str, directory: Path, force: bool = False) -> list[Path]:
    """Write llmship.yaml (and the sample data it needs) into `directory`."""
    from llmship.data.samples import write_sample

    target = directory / DEFAULT_CONFIG_NAME
    if target.exists() and not force:
        raise ConfigError(f"{target} already exists; pass --force to overwrite it")
    directory.mkdir(parents=True, exist_ok=True)
    target.write_text(render_template(name), encoding="utf-8")
    written = [target]
    sample = TEMPLATE_SAMPLES.get(name)
    data_path = directory / TEMPLATES[name]["data"]["source"]
    if sample and not data_path.exists():
        written.append(write_sample(sample, data_path))
    return written
