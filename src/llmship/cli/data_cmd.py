"""`llmship data ...`: check and prepare datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from llmship.cli._common import ConfigOption, SetOption, console, load
from llmship.data.samples import SAMPLES, write_sample

app = typer.Typer(help="Prepare datasets.", no_args_is_help=True)


@app.command("prepare")
def prepare(
    config: ConfigOption = None,
    set_: SetOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Where to write the split files (default: data-prepared/ beside the config).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Load, split, format and length-filter the dataset; write one JSONL file per split.

    Example: llmship data prepare --set data.max_rows=1000
    """
    from llmship.data.prepare import prepare_data
    from llmship.models.loading import detect_kind, load_tokenizer

    loaded = load(config, set_).require("model", "data", command="data prepare")
    model_cfg = loaded.config.model
    source = loaded.resolve_path(model_cfg.name_or_path)
    tokenizer = load_tokenizer(model_cfg, source)
    report = prepare_data(
        loaded, out or loaded.base_dir / "data-prepared", tokenizer, detect_kind(model_cfg, source)
    )
    table = Table("split", "rows", f"dropped (> {model_cfg.max_length} tokens)", "file")
    for split, rows in report.rows.items():
        table.add_row(split, str(rows), str(report.dropped[split]), str(report.files[split]))
    console.print(table)


@app.command("export")
def export(
    format_: Annotated[
        str, typer.Option("--format", help="Export format: bedrock (bedrock-conversation-2024).")
    ] = "bedrock",
    config: ConfigOption = None,
    set_: SetOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Where to write train.jsonl and validation.jsonl (default: data-bedrock/ "
            "beside the config).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Convert the train and validation splits to Bedrock's conversation JSONL, checked
    against the base model's limits (bedrock.base_model_id); nothing is written unless
    every row passes. Record length is checked as Bedrock's character quota per record
    (its token quota x 6), which needs no tokenizer.

    Example: llmship data export --format bedrock --out bedrock-data
    """
    from llmship.bedrock.export import export_dataset

    if format_ != "bedrock":
        raise typer.BadParameter(f"{format_!r}; the one format is bedrock", param_hint="--format")
    loaded = load(config, set_).require("data", command="data export")
    report = export_dataset(loaded, out or loaded.base_dir / "data-bedrock")
    table = Table("split", "records", "file")
    for split, count in report.records.items():
        table.add_row(split, str(count), str(report.files.get(split, "-")))
    console.print(table)
    console.print(f"checked: {report.token_check}, record counts, roles and turn order")


@app.command("sample")
def sample(
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(SAMPLES)}.")],
    out: Annotated[Path, typer.Argument(help="JSONL file to write.")],
) -> None:
    """Write a bundled sample dataset (made by llmship; no download).

    Example: llmship data sample samsum data/samsum_sample.jsonl
    """
    path = write_sample(name, out)
    console.print(f"{name} sample written to {path} ({SAMPLES[name]})")
