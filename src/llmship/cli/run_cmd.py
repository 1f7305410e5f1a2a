"""Top-level commands: init, train, eval, generate, demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmship.cli._common import ConfigOption, OutputOption, SetOption, console, load
from llmship.config.templates import TEMPLATES, write_template
from llmship.progress import RichReporter


def init(
    template: Annotated[
        str, typer.Option(help=f"One of: {', '.join(TEMPLATES)}.")
    ] = "samsum-llama",
    directory: Annotated[Path, typer.Option("--dir", help="Where to write llmship.yaml.")] = Path(
        "."
    ),
    force: Annotated[bool, typer.Option(help="Overwrite an existing llmship.yaml.")] = False,
) -> None:
    """Write a commented starter llmship.yaml (and sample data where the template needs it).

    Example: llmship init --template qa-flan-t5
    """
    for path in write_template(template, directory, force):
        console.print(f"wrote {path}")


def train_command(
    config: ConfigOption = None,
    set_: SetOption = None,
    output: OutputOption = None,
    resume: Annotated[
        str | None,
        typer.Option(
            help="Continue a run from its last checkpoint: a run directory, its id, or 'latest'.",
            show_default=False,
        ),
    ] = None,
    merge: Annotated[
        bool | None,
        typer.Option(
            "--merge/--no-merge",
            help="Merge the adapter into the base weights (train.merge).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Fine-tune the base model on the configured data (a new run directory per run).

    Examples: llmship train --set train.epochs=1 | llmship train --resume latest
    """
    from llmship.train.run import train

    overrides = list(set_ or [])
    if merge is not None:
        overrides.append(f"train.merge={str(merge).lower()}")
    loaded = load(config, overrides)
    reporter = RichReporter()
    run, result = train(
        loaded, output=output, resume=resume, overrides=overrides, reporter=reporter
    )
    console.print(f"trained {result.state.step} steps ({result.state.tokens_seen:,} tokens)")
    console.print(f"run directory: {run.root}")
    console.print(f"model:         {result.model_dir}")
    console.print(
        f"metrics:       {run.metrics}  (tensorboard --logdir {run.output / 'tensorboard'})"
    )


def eval_command(
    run: Annotated[str, typer.Argument(help="Run directory, run id, or 'latest'.")] = "latest",
    config: ConfigOption = None,
    set_: SetOption = None,
    output: OutputOption = None,
) -> None:
    """Score a trained run with ROUGE-1/2/L on its test split; write a report and plots.

    Example: llmship eval latest --set eval.max_samples=50
    """
    from llmship.runs import find_run
    from llmship.train.evaluation import evaluate

    loaded = load(config, set_)
    found = find_run(loaded, run, output)
    report = evaluate(found, loaded.config.eval, RichReporter())
    console.print(
        f"ROUGE-1 {report.rouge1:.4f}  ROUGE-2 {report.rouge2:.4f}  "
        f"ROUGE-L {report.rougeL:.4f}  ({report.rows} {report.split} rows)"
    )
    console.print(f"report: {found.eval_report}\nloss curve: {found.loss_plot}")


def generate_command(
    model_dir: Annotated[Path, typer.Argument(help="A run directory or its model/ directory.")],
    text: Annotated[str, typer.Option("--input", help="The input text (e.g. a dialogue).")],
    max_new_tokens: Annotated[
        int | None, typer.Option(help="Override the model's default.", show_default=False)
    ] = None,
) -> None:
    """Generate with a trained model, formatting the input exactly as training did.

    Example: llmship generate runs/20260101-120000 --input "Anna: lunch at 1?"
    """
    from llmship.models.generation import generate, load_finetuned

    directory = model_dir / "model" if (model_dir / "model").is_dir() else model_dir
    model = load_finetuned(directory)
    params = model.defaults
    if max_new_tokens is not None:
        params = params.model_copy(update={"max_new_tokens": max_new_tokens})
    console.print(
        generate(model, [model.prompt_format.fields_for(text)], params)[0], highlight=False
    )


def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Working directory.")] = Path("demo-run"),
    set_: SetOption = None,
) -> None:
    """Run the local pipeline end to end on a tiny model and the bundled sample.

    Example: llmship demo --dir /tmp/llmship-demo
    """
    from llmship.demo import run_demo

    run_demo(
        directory,
        say=lambda text: console.print(text, highlight=False),
        reporter=RichReporter(),
        overrides=set_,
    )


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("train")(train_command)
    app.command("eval")(eval_command)
    app.command("generate")(generate_command)
    app.command("demo")(demo)
