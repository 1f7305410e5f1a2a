"""`llmship demo`: the whole local pipeline on a tiny model and the bundled sample.

Creates a tiny Llama-shaped model (if absent), fine-tunes it with LoRA on the sample
dialogues, scores it with ROUGE and summarizes a dialogue it has never seen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from llmship.config.loader import DEFAULT_CONFIG_NAME, LoadedConfig, load_config
from llmship.config.render import render_commented
from llmship.config.schema import LlmshipConfig
from llmship.data.samples import write_sample
from llmship.models.generation import generate, load_finetuned
from llmship.models.tiny import create_tiny_model
from llmship.progress import RecordingReporter, Reporter
from llmship.runs import RunDir
from llmship.train.evaluation import EvalReport, evaluate
from llmship.train.run import train

DEMO_CONFIG = {
    "project": {"name": "demo"},
    "model": {"name_or_path": "tiny-llama", "max_length": 256},
    "data": {
        "source": "samsum_sample.jsonl",
        "input_field": "dialogue",
        "output_field": "summary",
        "prompt_template": "Summarize this dialogue:\n{dialogue}",
    },
    "train": {
        "epochs": 6,
        "batch_size": 8,
        "learning_rate": 5e-3,
        "warmup_ratio": 0.05,
        "save_steps": 100,
        "logging_steps": 10,
        "lora": {"r": 64, "alpha": 64, "dropout": 0.0},
    },
    "eval": {"max_samples": 24, "batch_size": 12, "generation": {"max_new_tokens": 40}},
}

UNSEEN_DIALOGUE = (
    "Grace: Can you buy juice on your way home?\n"
    "Max: Sure, anything else?\n"
    "Grace: No, just juice. Thanks!"
)


@dataclass
class DemoResult:
    config: Path
    run: RunDir
    report: EvalReport
    dialogue: str
    summary: str


def run_demo(
    workdir: str | Path,
    say: Callable[[str], None] = print,
    reporter: Reporter | None = None,
    overrides: list[str] | None = None,
) -> DemoResult:
    """Run every local stage in `workdir`, saying what each did and where its output went."""
    reporter = reporter or RecordingReporter()
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    model_dir = workdir / DEMO_CONFIG["model"]["name_or_path"]
    if not (model_dir / "config.json").is_file():
        create_tiny_model(model_dir, "llama")
        say(f"1/5 model    created a tiny random-init Llama in {model_dir}")
    else:
        say(f"1/5 model    using the tiny Llama in {model_dir}")
    data_path = write_sample("samsum", workdir / DEMO_CONFIG["data"]["source"])
    say(f"2/5 data     wrote the bundled dialogue sample to {data_path}")
    config_path = workdir / DEFAULT_CONFIG_NAME
    if not config_path.is_file():
        tree = LlmshipConfig.model_validate(DEMO_CONFIG).model_dump(mode="json")
        config_path.write_text(render_commented(tree), encoding="utf-8")
    loaded: LoadedConfig = load_config(config_path, overrides or [])
    run, result = train(loaded, reporter=reporter)
    say(
        f"3/5 train    {result.state.step} LoRA steps on {result.train_rows} rows; "
        f"run directory {run.root}"
    )
    report = evaluate(run, loaded.config.eval, reporter)
    say(
        f"4/5 eval     ROUGE-1 {report.rouge1:.3f}  ROUGE-2 {report.rouge2:.3f}  "
        f"ROUGE-L {report.rougeL:.3f} on {report.rows} test rows; report {run.eval_report}, "
        f"loss curve {run.loss_plot}"
    )
    model = load_finetuned(run.model)
    summary = generate(model, [model.prompt_format.fields_for(UNSEEN_DIALOGUE)])[0]
    say(f"5/5 generate a new dialogue:\n{UNSEEN_DIALOGUE}\n  -> {summary}")
    return DemoResult(config_path, run, report, UNSEEN_DIALOGUE, summary)
