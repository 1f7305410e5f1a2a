"""`llmship invoke`: ask a deployed model, print its answer (or write it to a file)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer

from llmship.cli._common import ConfigOption, SetOption, err_console, load_if_present
from llmship.config.loader import LoadedConfig
from llmship.errors import DeployError


def invoke_command(
    name: Annotated[str, typer.Argument(help="The deployment (its endpoint's name).")],
    prompt: Annotated[
        str | None,
        typer.Option(
            help='Text sent as the Hugging Face payload {"inputs": TEXT, "parameters": ...}.',
            show_default=False,
        ),
    ] = None,
    body: Annotated[
        Path | None,
        typer.Option(
            help="Send this file as the request body as it is ('-': standard input), for "
            "models with their own payload schema.",
            show_default=False,
        ),
    ] = None,
    content_type: Annotated[
        str, typer.Option(help="Content type of the body.")
    ] = "application/json",
    accept: Annotated[
        str | None,
        typer.Option(
            help="Content type to ask the answer in (not with --stream).", show_default=False
        ),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            help="With --prompt: a generation parameter, k=v, the value read as JSON "
            "(--param max_new_tokens=64 --param do_sample=true). Repeatable.",
            show_default=False,
        ),
    ] = None,
    stream: Annotated[
        bool, typer.Option(help="Print the answer piece by piece as the model writes it.")
    ] = False,
    async_: Annotated[
        bool,
        typer.Option(
            "--async",
            help="Asynchronous endpoint: upload the body to S3 (aws.bucket), invoke, and wait "
            "for the answer in the endpoint's S3 output path.",
        ),
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            help="Write the answer's raw body to this file (default: print the answer).",
            show_default=False,
        ),
    ] = None,
    endpoint_url: Annotated[
        str | None,
        typer.Option(
            help="Send the call here instead of SageMaker (e.g. a local `llmship serve`).",
            show_default=False,
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            help="local (a `deploy --target local` server, at its recorded URL), sagemaker "
            "(an endpoint, through sagemaker-runtime) or bedrock (a Bedrock deployment: "
            "Converse / ConverseStream, InvokeModel for imported models). Default: the "
            "target NAME was deployed to, as the state store records it; else sagemaker.",
            show_default=False,
        ),
    ] = None,
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """Invoke a deployed model and print what it answers.

    Examples: llmship invoke my-model --prompt "Anna: lunch at 1?" --stream |
    llmship invoke market-model --body req.json --content-type application/json --output out.json |
    llmship invoke my-project-20260101-120000 --prompt "Anna: lunch?" --stream
    """
    from llmship.aws.runtime import invoke, invoke_async, invoke_stream, sagemaker_runtime

    if target not in (None, *INVOKED_AS.values()):
        raise typer.BadParameter(
            f"{target!r}; choose local, sagemaker or bedrock", param_hint="--target"
        )
    target = route(name, target)
    if target == "bedrock":
        options = {
            "--body": body,
            "--async": async_,
            "--endpoint-url": endpoint_url,
            "--accept": accept,
        }
        extra = [option for option, value in options.items() if value]
        if extra:
            raise typer.BadParameter(
                f"{name} answers through Bedrock, which takes --prompt (with --param, "
                "--stream, --output)",
                param_hint=extra[0],
            )
        _invoke_bedrock(load_if_present(config, set_), name, prompt, param, stream, output)
        return
    if target == "local":
        if async_:
            raise typer.BadParameter(
                f"{name} runs locally, which answers each request directly", param_hint="--async"
            )
        endpoint_url = endpoint_url or local_url(name)
    if stream and async_:
        raise typer.BadParameter("choose one of --stream and --async", param_hint="--stream")
    if stream and accept:
        raise typer.BadParameter("streams arrive as the model writes them", param_hint="--accept")
    loaded = load_if_present(config, set_)
    payload = _payload(prompt, body, param)
    runtime = sagemaker_runtime(loaded.config.aws if loaded else None, endpoint_url)
    if stream:
        _write_stream(invoke_stream(runtime, name, body=payload, content_type=content_type), output)
        return
    if async_:
        s3, location = _async_input(loaded, name, content_type)
        err_console.print(f"input: {location}; waiting for the answer", highlight=False)
        result = invoke_async(
            runtime, s3, name, body=payload, input_location=location, content_type=content_type
        )
        err_console.print(f"answer: {result.output_location}", highlight=False)
        _write_answer(result.body or b"", output)
        return
    answer = invoke(runtime, name, body=payload, content_type=content_type, accept=accept)
    _write_answer(answer.body, output)


# How a recorded target is invoked: sagemaker-runtime (a local deployment speaks the same
# Runtime API at its own URL) or Bedrock's runtime, which answers both Bedrock targets.
INVOKED_AS = {
    "local": "local",
    "sagemaker": "sagemaker",
    "bedrock": "bedrock",
    "bedrock-import": "bedrock",
}


def route(name: str, given: str | None) -> str:
    """How NAME is invoked (local, sagemaker or bedrock): through the target the state
    store records for it, so nobody has to repeat `--target` after `deploy`; `given` (an
    explicit --target) must agree with that record. A name the store does not record (an
    endpoint created outside llmship) is `given`, else a SageMaker endpoint."""
    from llmship.state import StateStore, state_path
    from llmship.target import recorded_target

    # An absent store records nothing: reading it must not create one.
    recorded = recorded_target(StateStore(), name) if state_path().is_file() else None
    if recorded is None:
        return given or "sagemaker"
    if recorded not in INVOKED_AS:  # an API exposed with `llmship expose --target aws`
        raise DeployError(
            f"{name} is a {recorded} deployment, not a model endpoint: call its URL "
            "(`llmship status` shows it) with an API key"
        )
    if given is not None and given != INVOKED_AS[recorded]:
        raise DeployError(
            f"--target {given} contradicts the record of {name}: it was deployed to "
            f"{recorded} (state store {state_path()}); drop --target, or name another deployment"
        )
    return INVOKED_AS[recorded]


def local_url(name: str) -> str:
    """Where the local deployment NAME serves (the state store records its URL)."""
    from llmship.state import StateStore
    from llmship.targets.local.target import server_url

    return server_url(StateStore(), name)


def _invoke_bedrock(
    loaded: LoadedConfig | None,
    name: str,
    prompt: str | None,
    params: list[str] | None,
    stream: bool,
    output: Path | None,
) -> None:
    """The deployment's Bedrock model answers --prompt: Converse (ConverseStream with
    --stream, printed as it arrives), or InvokeModel for an imported model."""
    from llmship.aws.runtime import caller_session
    from llmship.bedrock.hosted import IMPORTED_KIND, hosting_of
    from llmship.bedrock.invoke import (
        answer_text,
        converse,
        converse_stream,
        inference_config,
        invoke_imported,
        user_message,
    )
    from llmship.config.schema import GenerationConfig
    from llmship.state import StateStore

    if prompt is None:
        raise typer.BadParameter(f"a Bedrock deployment ({name}) needs it", param_hint="--prompt")
    from pydantic import ValidationError

    base = loaded.config.eval.generation if loaded else GenerationConfig()
    try:
        generation = GenerationConfig.model_validate(
            {**base.model_dump(), **parse_params(params or [])}
        )
    except ValidationError as exc:
        raise typer.BadParameter(str(exc).splitlines()[1], param_hint="--param") from None
    hosting = hosting_of(StateStore(), name)
    aws = loaded.config.aws if loaded else None
    session = caller_session(aws, local=False, region=hosting.region or None)
    model_id = hosting.details["arn"]
    if hosting.kind == IMPORTED_KIND:
        if stream:
            raise typer.BadParameter("imported models answer whole here", param_hint="--stream")
        _write_text(invoke_imported(session, model_id, prompt, generation), output)
        return
    messages, inference = [user_message(prompt)], inference_config(generation)
    if stream:
        _write_text_stream(
            converse_stream(session, model_id, messages, system=None, inference=inference), output
        )
        return
    response = converse(session, model_id, messages, system=None, inference=inference)
    _write_text(answer_text(response), output)


def _write_text(text: str, output: Path | None) -> None:
    if output is not None:
        output.write_text(text, encoding="utf-8")
        err_console.print(f"wrote {len(text):,} characters to {output}", highlight=False)
        return
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _write_text_stream(pieces: Iterable[str], output: Path | None) -> None:
    if output is not None:
        _write_text("".join(pieces), output)
        return
    for piece in pieces:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")


def _payload(prompt: str | None, body: Path | None, params: list[str] | None) -> bytes:
    from llmship.protocol.toolkit import prompt_body

    if (prompt is None) == (body is None):
        raise typer.BadParameter("give exactly one of --prompt and --body", param_hint="--prompt")
    if body is not None:
        if params:
            raise typer.BadParameter("--param goes with --prompt", param_hint="--param")
        if str(body) == "-":
            return sys.stdin.buffer.read()
        if not body.is_file():
            raise typer.BadParameter(f"{body} is not a file", param_hint="--body")
        return body.read_bytes()
    return prompt_body(prompt, parse_params(params or []))


def parse_params(items: Iterable[str]) -> dict:
    """k=v pairs; each value read as JSON (numbers, true/false, lists), else kept as text."""
    parameters = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r}: expected k=v", param_hint="--param")
        try:
            parameters[key.strip()] = json.loads(value)
        except ValueError:
            parameters[key.strip()] = value
    return parameters


def _async_input(loaded: LoadedConfig | None, name: str, content_type: str):
    """The S3 client and a fresh input key under the deployment's prefix in aws.bucket."""
    from llmship.aws.runtime import async_input

    if loaded is None or not loaded.config.aws.bucket:
        raise DeployError(
            "--async uploads the request to S3: set aws.bucket in llmship.yaml (the "
            "deployment's bucket), or run where that config is"
        )
    return async_input(loaded.config.aws, loaded.config.project.name, name, content_type)


def _write_answer(data: bytes, output: Path | None) -> None:
    """The raw body to --output; else the generated text, or the body as text."""
    from llmship.protocol.toolkit import generated_text

    if output is not None:
        output.write_bytes(data)
        err_console.print(f"wrote {len(data):,} bytes to {output}", highlight=False)
        return
    text = generated_text(data)
    sys.stdout.write((text if text is not None else data.decode("utf-8", "replace")) + "\n")
    sys.stdout.flush()


def _write_stream(parts: Iterable[bytes], output: Path | None) -> None:
    """Each part to --output as it comes, or its text to the terminal as it comes."""
    from llmship.protocol.toolkit import stream_text

    if output is not None:
        written = 0
        with output.open("wb") as handle:
            for part in parts:
                handle.write(part)
                handle.flush()
                written += len(part)
        err_console.print(f"wrote {written:,} bytes to {output}", highlight=False)
        return
    for piece in stream_text(parts):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")


def register(app: typer.Typer) -> None:
    app.command("invoke")(invoke_command)
