"""`llmship serve`: a model behind the SageMaker container and Runtime API contracts."""

from __future__ import annotations

from typing import Annotated

import typer

from llmship.cli._common import ConfigOption, SetOption, load_if_present
from llmship.cli._runs import RUN_HELP, run_argument


def serve(
    source: Annotated[
        str, typer.Argument(help=f"model.tar.gz, an artifact directory or a run ({RUN_HELP}).")
    ],
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
        int | None,
        typer.Option(
            help="Requests the engine decodes together (KV-cache slots; default 16).",
            show_default=False,
        ),
    ] = None,
    max_waiting: Annotated[
        int | None,
        typer.Option(
            help="Requests allowed to queue; past it: 503 with Retry-After "
            "(default: four per batch slot).",
            show_default=False,
        ),
    ] = None,
    max_len: Annotated[
        int | None,
        typer.Option(
            help="Tokens per KV-cache slot; prompt + max_new_tokens over it: 400 at admission "
            "(default: the model's context, at most 4096).",
            show_default=False,
        ),
    ] = None,
    prefix_cache: Annotated[
        bool | None,
        typer.Option(
            "--prefix-cache/--no-prefix-cache",
            help="Reuse the computed start of prompts that begin alike (default: on).",
            show_default=False,
        ),
    ] = None,
    max_in_flight: Annotated[
        int | None,
        typer.Option(
            help="HTTP requests held at once; past it: 503 with Retry-After "
            "(default: max-batch + max-waiting + 64).",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            help="Seconds a request may run before it is cancelled and its slot freed "
            "(default: the endpoint kind's 60 s).",
            show_default=False,
        ),
    ] = None,
    body_timeout: Annotated[
        float | None,
        typer.Option(
            help="Seconds a client has to send its request body; then 408 (default 30).",
            show_default=False,
        ),
    ] = None,
    grace: Annotated[
        float | None,
        typer.Option(
            help="On SIGTERM, seconds in-flight requests have to finish before the "
            "server exits 0 (default 30).",
            show_default=False,
        ),
    ] = None,
    config: ConfigOption = None,
    overrides: SetOption = None,
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
    with endpoint_url. Admission and shutdown come from the config's `serve:` section
    (when --config is given or ./llmship.yaml exists); these options override it.

    Example: llmship serve runs/20260101-120000/artifact/model.tar.gz --port 8080
    """
    found = run_argument(source, config, overrides)
    if emulate is not None:
        from llmship.serve.emulate import serve_emulated

        serve_emulated(found, emulate, host=host, port=port)
        return
    from llmship.serve.openmp import prefer_passive_waiting

    prefer_passive_waiting()
    from llmship.config.serving import ServeConfig
    from llmship.serve.server import serve as run_server

    loaded = load_if_present(config, overrides)
    base = loaded.config.serve if loaded else ServeConfig()
    settings = base.with_options(
        max_batch=max_batch,
        max_waiting=max_waiting,
        max_len=max_len,
        prefix_cache=prefix_cache,
        max_in_flight=max_in_flight,
        request_timeout_s=timeout,
        body_timeout_s=body_timeout,
        shutdown_grace_s=grace,
    )
    run_server(
        found,
        host=host,
        port=port,
        endpoint_name=name,
        endpoint_kind=endpoint_kind,
        settings=settings,
    )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
