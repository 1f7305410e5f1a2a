"""`llmship serve`: a model behind the SageMaker container and Runtime API contracts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def serve(
    source: Annotated[Path, typer.Argument(help="model.tar.gz, an artifact directory or a run.")],
    port: Annotated[
        int | None,
        typer.Option(help="Port (default: SAGEMAKER_BIND_TO_PORT or 8080).", show_default=False),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    name: Annotated[str, typer.Option(help="Endpoint name on the Runtime API paths.")] = "local",
    endpoint_kind: Annotated[
        str, typer.Option(help="realtime (6 MB, 60 s) or serverless (4 MB, 60 s) limits.")
    ] = "realtime",
    max_batch: Annotated[
        int, typer.Option(help="Requests the engine decodes together (KV-cache slots).")
    ] = 16,
    max_waiting: Annotated[
        int | None,
        typer.Option(
            help="Requests allowed to queue; past it: 503 with Retry-After "
            "(default: four per batch slot).",
            show_default=False,
        ),
    ] = None,
    emulate: Annotated[
        str | None,
        typer.Option(
            help="hf-pytorch: run the artifact exactly as "
            "the AWS Hugging Face PyTorch container would.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve a model: GET /ping and POST /invocations (the SageMaker container contract), and
    /endpoints/NAME/invocations[-response-stream] so boto3's sagemaker-runtime client works
    with endpoint_url.

    Example: llmship serve runs/20260101-120000/artifact/model.tar.gz --port 8080
    """
    if emulate is not None:
        from llmship.serve.emulate import serve_emulated

        serve_emulated(source, emulate, host=host, port=port)
        return
    from llmship.serve.openmp import prefer_passive_waiting

    prefer_passive_waiting()
    from llmship.serve.server import serve as run_server

    run_server(
        source,
        host=host,
        port=port,
        endpoint_name=name,
        endpoint_kind=endpoint_kind,
        max_batch=max_batch,
        max_waiting=max_waiting,
    )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
