"""`llmship init` templates and `llmship config show`."""

from __future__ import annotations

import typer
import yaml

from llmship.cli._common import ConfigOption, SetOption, console, load

app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)


@app.command("show")
def show(config: ConfigOption = None, set_: SetOption = None) -> None:
    """Print the effective config: file, .env and --set applied, secrets masked.

    Example: llmship config show --set train.epochs=1
    """
    loaded = load(config, set_)
    tree = loaded.config.model_dump(mode="json")
    tree = {name: value for name, value in tree.items() if value is not None}  # sections left out
    console.print(yaml.safe_dump(tree, sort_keys=False, allow_unicode=True), highlight=False)
