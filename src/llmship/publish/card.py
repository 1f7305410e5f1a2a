"""The model card written beside published weights: what it is, how it was made, how well
it does, and what it is for."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from llmship import __version__


def render_card(
    repo_id: str,
    config: dict[str, Any],
    info: dict[str, Any],
    report: dict[str, Any] | None,
    license_id: str,
    adapter_only: bool,
) -> str:
    """README.md with the Hub's YAML metadata block."""
    base = config["model"]["name_or_path"]
    train = _with_defaults(config.get("train", {}))
    data = config.get("data", {})
    prompt = info["prompt_format"]
    metadata: dict[str, Any] = {
        "base_model": base,
        "library_name": "peft" if adapter_only else "transformers",
        "license": license_id,
        "tags": ["llmship", train.get("method", "lora")],
    }
    if "/" in str(data.get("source", "")) and not Path(str(data["source"])).suffix:
        metadata["datasets"] = [data["source"]]
    if report:
        metadata["model-index"] = [
            {
                "name": repo_id.split("/")[-1],
                "results": [
                    {
                        "task": {"type": "text-generation"},
                        "dataset": {
                            "name": str(data.get("source", "custom")),
                            "type": "custom",
                            "split": report["split"],
                        },
                        "metrics": [
                            {"type": name, "value": report[name]}
                            for name in ("rouge1", "rouge2", "rougeL")
                        ],
                    }
                ],
            }
        ]
    lora = train.get("lora", {})
    method = train.get("method", "lora")
    what = "A LoRA adapter for" if adapter_only else "A fine-tuned version of"
    lines = [
        "---",
        yaml.safe_dump(metadata, sort_keys=False).strip(),
        "---",
        "",
        f"# {repo_id.split('/')[-1]}",
        "",
        f"{what} [{base}](https://huggingface.co/{base}), trained with llmship {__version__}.",
        "",
        "## Intended use",
        "",
        f"Input: the `{prompt['input_field']}` text; output: the `{prompt['output_field']}`. "
        "Prompts are built with this template"
        + (" inside the tokenizer's chat template" if prompt.get("use_chat_template") else "")
        + (
            f', with the system prompt "{prompt["system_prompt"]}"'
            if prompt.get("system_prompt")
            else ""
        )
        + ":",
        "",
        "```",
        prompt["prompt_template"],
        "```",
        "",
        "`llmship.json` holds the prompt format and generation defaults; format requests "
        "the same way for the results below. Not evaluated for uses beyond this task; "
        "check the base model's licence and use policy.",
        "",
        "## Training",
        "",
        "| setting | value |",
        "|---|---|",
        f"| data | `{data.get('source', '')}` |",
        f"| method | {method} |",
    ]
    if method in ("lora", "qlora"):
        lines.append(
            f"| LoRA | r={lora.get('r', 16)}, alpha={lora.get('alpha', 32)}, "
            f"dropout={lora.get('dropout', 0.05)}, "
            f"targets={json.dumps(lora.get('target_modules', 'all-linear'))} |"
        )
    for key in (
        "epochs",
        "max_steps",
        "batch_size",
        "gradient_accumulation",
        "learning_rate",
        "lr_scheduler",
        "packing",
    ):
        if train.get(key) is not None:
            lines.append(f"| {key} | {train[key]} |")
    lines.append(f"| max length | {config['model'].get('max_length', '')} tokens |")
    lines += ["", "## Evaluation", ""]
    if report:
        lines += [
            f"ROUGE F1 on {report['rows']} rows of the {report['split']} split "
            f"(greedy unless the generation settings say otherwise):",
            "",
            "| ROUGE-1 | ROUGE-2 | ROUGE-L |",
            "|---|---|---|",
            f"| {report['rouge1']:.4f} | {report['rouge2']:.4f} | {report['rougeL']:.4f} |",
        ]
    else:
        lines.append("Not evaluated yet (`llmship eval` writes the scores).")
    return "\n".join(lines) + "\n"


def _with_defaults(train: dict[str, Any]) -> dict[str, Any]:
    """The train section as it ran: written values over the schema's defaults."""
    from pydantic import ValidationError

    from llmship.config.schema import TrainConfig

    try:
        return TrainConfig.model_validate(train).model_dump(mode="json")
    except ValidationError:  # e.g. a ${VAR} reference in a number: show what was written
        return train
