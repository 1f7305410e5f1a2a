"""`llmship model ...`: local models for trying llmship without downloads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmship.cli._common import console
from llmship.models.tiny import create_tiny_model

app = typer.Typer(help="Create and inspect models.", no_args_is_help=True)


@app.command("create-tiny")
def create_tiny(
    out: Annotated[Path, typer.Argument(help="Directory to write the model to (new or empty).")],
    arch: Annotated[str, typer.Option(help="llama (causal) or t5 (seq2seq).")] = "llama",
) -> None:
    """Write a small random-init model with a locally trained tokenizer (safetensors).

    Example: llmship model create-tiny --arch llama tiny-llama
    """
    path = create_tiny_model(out, arch)  # type: ignore[arg-type]
    console.print(f"tiny {arch} model written to {path}")
