"""Top-level commands: init, train, eval, generate, demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmship.cli._common import ConfigOption, OutputOption, SetOption, console, load
from llmship.cli._runs import RUN_HELP, run_argument
from llmship.progress import RichReporter
from llmship.templates import TEMPLATES, write_template


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
    target: Annotated[
        str | None,
        typer.Option(
            help="Where training runs: local, local-container (the SageMaker entry point "
            "under a temporary /opt/ml tree here), sagemaker (a training job) or bedrock "
            "(default: train.target).",
            show_default=False,
        ),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="sagemaker: create the job without asking.")
    ] = False,
    python: Annotated[
        str | None,
        typer.Option(
            help="local-container: the Python that runs the entry point (e.g. a virtual "
            "environment holding the training container's library versions).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Fine-tune the base model on the configured data (a new run directory per run).

    Examples: llmship train --set train.epochs=1 | llmship train --resume latest |
    llmship train --target sagemaker --set train.sagemaker.spot=true
    """
    from llmship.cli._targets import TrainingRequest, get_training

    overrides = list(set_ or [])
    if merge is not None:
        overrides.append(f"train.merge={str(merge).lower()}")
    if target is not None:
        overrides.append(f"train.target={target}")
    loaded = load(config, overrides)
    target = loaded.config.train.target
    backend = get_training(target)
    loaded.require(
        *backend.needs, command="train" if target == "local" else f"train --target {target}"
    )
    if python is not None and target != "local-container":
        raise typer.BadParameter("goes with --target local-container", param_hint="--python")
    backend.train(
        TrainingRequest(loaded, overrides, output, resume, python, yes, reporter=RichReporter())
    )


def eval_command(
    run: Annotated[str, typer.Argument(help="Run directory, run id, or 'latest'.")] = "latest",
    config: ConfigOption = None,
    set_: SetOption = None,
    output: OutputOption = None,
    target: Annotated[
        str | None,
        typer.Option(
            help="Where the model generates: local (the run's model here), sagemaker "
            "(the deployed endpoint answers the same rows) or bedrock (the Bedrock deployment "
            "answers them). Default: with --endpoint or --endpoint-url, the target the "
            "deployment was deployed to, as the state store records it; else local.",
            show_default=False,
        ),
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option(
            help="sagemaker / bedrock: the endpoint or deployment (default: deploy.name, "
            "else <project>-<run>).",
            show_default=False,
        ),
    ] = None,
    endpoint_url: Annotated[
        str | None,
        typer.Option(
            help="sagemaker: send the calls here instead (e.g. a local `llmship serve`).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Score a trained run with ROUGE-1/2/L on its test split; write a report and plots.

    Examples: llmship eval latest --set eval.max_samples=50 |
    llmship eval latest --endpoint my-endpoint
    """
    from llmship.cli.invoke_cmd import local_url, route
    from llmship.runs import find_run
    from llmship.sagemaker.names import default_name
    from llmship.train.evaluation import evaluate, report_paths

    if target not in (None, "local", "sagemaker", "bedrock"):
        raise typer.BadParameter(
            f"{target!r}; choose local, sagemaker or bedrock", param_hint="--target"
        )
    if target == "local" and (endpoint or endpoint_url):
        raise typer.BadParameter("goes with --target sagemaker or bedrock", param_hint="--endpoint")
    loaded = load(config, set_)
    found = find_run(loaded, run, output)
    cfg = loaded.config
    if target == "local" or (target is None and endpoint is None and endpoint_url is None):
        report = evaluate(found, cfg.eval, RichReporter())
    else:
        name = endpoint or cfg.deploy.name or default_name(cfg.project.name, found.run_id)
        deployed = route(name, target)  # the deployment's own target (or a contradiction)
        if deployed == "bedrock":
            if endpoint_url:
                raise typer.BadParameter(
                    f"{name} answers through Bedrock, not an endpoint URL",
                    param_hint="--endpoint-url",
                )
            report = _eval_on_bedrock(loaded, found, name)
        else:
            url = endpoint_url or (local_url(name) if deployed == "local" else None)
            report = _eval_on_endpoint(loaded, found, name, url, deployed)
    console.print(
        f"ROUGE-1 {report.rouge1:.4f}  ROUGE-2 {report.rouge2:.4f}  "
        f"ROUGE-L {report.rougeL:.4f}  ({report.rows} {report.split} rows)"
        + ("" if report.target == "local" else f" generated by {report.target}")
    )
    console.print(f"report: {report_paths(found, report.target)[0]}\nloss curve: {found.loss_plot}")


def _eval_on_endpoint(loaded, found, name: str, endpoint_url: str | None, target: str):
    """The evaluation with the deployed endpoint generating (a local deployment speaks the
    same Runtime API at its own URL); its report is `<target>-<name>`."""
    from llmship.aws.runtime import sagemaker_runtime
    from llmship.train.evaluation import endpoint_generator, evaluate, prompt_format_of

    cfg = loaded.config
    runtime = sagemaker_runtime(cfg.aws, endpoint_url)
    generator = endpoint_generator(
        runtime,
        name,
        prompt_format_of(found).input_field,
        cfg.eval.generation,
        workers=cfg.eval.batch_size,
    )
    return evaluate(found, cfg.eval, RichReporter(), generator=generator, target=f"{target}-{name}")


def _eval_on_bedrock(loaded, found, name: str):
    """The evaluation with the run's Bedrock deployment generating: Converse for a
    fine-tuned model, InvokeModel with the run's own prompt rendering for an imported one."""
    from llmship.aws.session import make_session
    from llmship.bedrock.hosted import IMPORTED_KIND, hosting_of
    from llmship.bedrock.invoke import converse_generator, imported_generator
    from llmship.state import StateStore
    from llmship.train.evaluation import evaluate, prompt_format_of

    cfg = loaded.config
    hosting = hosting_of(StateStore(), name)
    aws = cfg.aws.model_copy(update={"region": hosting.region}) if hosting.region else cfg.aws
    session, prompt_format = make_session(aws), prompt_format_of(found)
    workers, params = cfg.eval.batch_size, cfg.eval.generation
    if hosting.kind == IMPORTED_KIND:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(found.model))
        generator = imported_generator(
            session, hosting.details["arn"], prompt_format, tokenizer, params, workers
        )
    else:
        generator = converse_generator(
            session, hosting.details["arn"], prompt_format, params, workers
        )
    return evaluate(found, cfg.eval, RichReporter(), generator=generator, target=f"bedrock-{name}")


def generate_command(
    model_dir: Annotated[
        str, typer.Argument(help=f"A run ({RUN_HELP}) or a run's model/ directory.")
    ],
    text: Annotated[str, typer.Option("--input", help="The input text (e.g. a dialogue).")],
    max_new_tokens: Annotated[
        int | None, typer.Option(help="Override the model's default.", show_default=False)
    ] = None,
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """Generate with a trained model, formatting the input exactly as training did.

    Example: llmship generate latest --input "Anna: lunch at 1?"
    """
    from llmship.models.generation import generate, load_finetuned

    given = run_argument(model_dir, config, set_)
    directory = given / "model" if (given / "model").is_dir() else given
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
