"""`llmship package` and `llmship validate`: SageMaker model artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from llmship.cli._common import ConfigOption, SetOption, console, err_console, load_if_present
from llmship.cli._runs import RUN_HELP, run_argument
from llmship.package.containers import DEFAULT_TRANSFORMERS, TRANSFORMERS_VERSIONS

VersionOption = Annotated[
    str | None,
    typer.Option(
        "--transformers-version",
        show_default=False,
        help=f"Target container's transformers: {', '.join(TRANSFORMERS_VERSIONS)} "
        f"(default: package.transformers_version, else {DEFAULT_TRANSFORMERS}).",
    ),
]


def _package_settings(config: Path | None, overrides: list[str] | None):
    """The package section of llmship.yaml when there is one, else the defaults."""
    from llmship.config.schema import PackageConfig

    loaded = load_if_present(config, overrides)
    return loaded.config.package if loaded else PackageConfig()


def package(
    source: Annotated[str, typer.Argument(help=f"A run ({RUN_HELP}) or a model directory.")],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            show_default=False,
            help="tar.gz or uncompressed (default: package.format, else tar.gz).",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Where to write (default: beside the model).", show_default=False),
    ] = None,
    transformers_version: VersionOption = None,
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """Build a SageMaker model artifact (model files at the root, code/inference.py), then
    validate it.

    Example: llmship package latest --format uncompressed
    """
    from llmship.errors import PackageError
    from llmship.package.build import build_artifact, model_dir_of
    from llmship.package.validate import validate_artifact

    source_dir = run_argument(source, config, set_)
    settings = _package_settings(config, set_)
    fmt = fmt or settings.format
    transformers_version = transformers_version or settings.transformers_version
    if fmt not in ("tar.gz", "uncompressed"):
        raise PackageError(f"--format {fmt!r}: choose tar.gz or uncompressed")
    if out is None:
        root = model_dir_of(source_dir).parent / "artifact"
        out = root / ("model.tar.gz" if fmt == "tar.gz" else "model")
    artifact = build_artifact(source_dir, out, fmt, transformers_version)  # type: ignore[arg-type]
    rewritten = f"; rewrote {', '.join(artifact.rewritten)} for it" if artifact.rewritten else ""
    console.print(
        f"{artifact.format} artifact for transformers {artifact.transformers_version}"
        f"{rewritten}: {artifact.path} ({artifact.bytes / 1024**2:.1f} MiB in "
        f"{artifact.seconds:.2f} s)"
    )
    _report(validate_artifact(artifact.path, transformers_version))


def validate(
    artifact: Annotated[Path, typer.Argument(help="model.tar.gz or an artifact directory.")],
    transformers_version: VersionOption = None,
    instance_memory_gib: Annotated[
        float | None,
        typer.Option(
            help="Memory of the instance (GPU memory for GPU instances) the weights must fit in.",
            show_default=False,
        ),
    ] = None,
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """Check an artifact's layout, handler code, requirements, tokenizer and weights without
    running any of it; exit 1 on errors.

    Example: llmship validate model.tar.gz --transformers-version 4.49.0
    """
    from llmship.package.validate import validate_artifact

    version = transformers_version or _package_settings(config, set_).transformers_version
    memory = int(instance_memory_gib * 1024**3) if instance_memory_gib else None
    _report(validate_artifact(artifact, version, memory))


def _report(findings) -> None:
    table = Table("severity", "where", "finding", show_lines=False)
    colours = {"error": "red", "warning": "yellow", "info": "dim"}
    for finding in findings:
        table.add_row(
            f"[{colours[finding.severity]}]{finding.severity}[/]", finding.path, finding.message
        )
    console.print(table)
    errors = sum(f.severity == "error" for f in findings)
    if errors:
        err_console.print(f"[bold red]{errors} error(s):[/] the artifact would fail on SageMaker")
        raise typer.Exit(1)


def publish(
    run: Annotated[str, typer.Argument(help=f"The run: {RUN_HELP}.")],
    hub: Annotated[str, typer.Option(help="Hub repo id, e.g. my-org/samsum-llama.")],
    adapter_only: Annotated[bool, typer.Option(help="Publish the LoRA adapter only.")] = False,
    license_id: Annotated[
        str,
        typer.Option(
            "--license", help="Licence id for the card (the base model's terms still apply)."
        ),
    ] = "other",
    public: Annotated[
        bool, typer.Option(help="Create the repo public (default: private).")
    ] = False,
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """Push the merged model (or the adapter) to the Hugging Face Hub with a model card.
    The token comes from HF_TOKEN or `huggingface-cli login`.

    Example: llmship publish latest --hub my-org/samsum-llama --adapter-only
    """
    from llmship.publish.hub import publish as push
    from llmship.runs import RunDir

    found = RunDir(run_argument(run, config, set_))
    published = push(found, hub, adapter_only, license_id, private=not public)
    console.print(
        f"published {len(published.files)} files to {published.repo_id}: "
        f"{', '.join(published.files)}\n{published.url}"
    )


def register(app: typer.Typer) -> None:
    app.command("package")(package)
    app.command("validate")(validate)
    app.command("publish")(publish)
