"""The `llmship` command: thin wrappers that parse, call a stage function, render.

One module per command group; shared options and the error table live in _common.
"""

from __future__ import annotations

import typer

from llmship.cli import (
    aws_cmd,
    bench_cmd,
    config_cmd,
    data_cmd,
    deploy_cmd,
    gateway_cmd,
    invoke_cmd,
    model_cmd,
    package_cmd,
    run_cmd,
    serve_cmd,
)
from llmship.cli._common import fail, name_command, quiet_libraries
from llmship.errors import LlmshipError

app = typer.Typer(
    name="llmship",
    help="From a base LLM and a dataset to a fine-tuned model behind an HTTP API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _every_command(ctx: typer.Context) -> None:
    name_command(ctx)


app.add_typer(config_cmd.app, name="config")
app.add_typer(model_cmd.app, name="model")
app.add_typer(data_cmd.app, name="data")
app.add_typer(bench_cmd.app, name="bench")
app.add_typer(aws_cmd.app, name="aws")
run_cmd.register(app)
package_cmd.register(app)
serve_cmd.register(app)
invoke_cmd.register(app)
deploy_cmd.register(app)
gateway_cmd.register(app)


def main() -> None:
    quiet_libraries()
    try:
        app()
    except LlmshipError as exc:
        fail(exc)
