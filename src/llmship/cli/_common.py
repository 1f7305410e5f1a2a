"""Options shared by every command, and the one place errors become user messages."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from llmship.config.loader import DEFAULT_CONFIG_NAME, LoadedConfig, load_config
from llmship.errors import (
    AwsError,
    ConfigError,
    DataError,
    DeployError,
    EvalError,
    LlmshipError,
    ModelError,
    PackageError,
    StateError,
    TrainError,
)

console = Console()
err_console = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="Config file (default: ./llmship.yaml).", show_default=False
    ),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override a config value: --set train.epochs=3 (repeatable).",
        show_default=False,
    ),
]
OutputOption = Annotated[
    Path | None,
    typer.Option(
        "--output",
        help="Directory for run directories (default: project.runs_dir).",
        show_default=False,
    ),
]

# What to run next, by error type (the message itself says what was wrong and where); a
# subclass gets the hint of its nearest listed parent.
NEXT_STEP: dict[type[LlmshipError], str] = {
    ConfigError: "fix the config (see `llmship config show`) and run the command again",
    DataError: "fix the data file or data.* settings, then `llmship data prepare` to check",
    ModelError: "check model.name_or_path; `llmship model create-tiny DIR` makes a local model",
    TrainError: "fix the train.* settings; a run can continue with `llmship train --resume`",
    EvalError: "check the run directory; `llmship train` writes one",
    PackageError: "fix the artifact or its model directory, then `llmship validate` it",
    DeployError: "fix the deploy.* / aws.* settings named above; `llmship deploy --plan` "
    "shows what would happen without creating anything",
    AwsError: "check the credentials, region and permissions named above "
    "(`llmship aws bootstrap` prints the policy a deploying user needs)",
    StateError: "the state store is under $LLMSHIP_HOME (default ~/.llmship); "
    "`llmship status --refresh` reconciles it with AWS",
}


def next_step(exc: LlmshipError) -> str | None:
    """The hint for `exc`'s type, or for the nearest parent type that has one."""
    return next((NEXT_STEP[kind] for kind in type(exc).__mro__ if kind in NEXT_STEP), None)


def quiet_libraries() -> None:
    """Keep the terminal for llmship's own progress: no library progress bars or notices.

    Said through the environment variables transformers and huggingface_hub read when
    they are first imported, so that commands which load no model never import them
    (importing transformers alone takes over a second on a small machine). A process
    that has imported transformers already (a test session) is quieted directly."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*TypedStorage.*")
    if sys.modules.get("transformers") is not None:  # None: blocked, as in a test
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


def name_command(ctx: typer.Context) -> None:
    """While a command runs, put its name ("deploy", "aws bootstrap", "keys create") in
    the environment, so the AWS calls it makes (here or in a subprocess) are recorded
    against the policy for that command. Called from the app's callback, before Click has
    parsed past the first name: each command under it is wrapped to name itself."""
    if ctx.invoked_subcommand is None:
        return
    command = ctx.command.get_command(ctx, ctx.invoked_subcommand)
    if command is not None:
        _wrap_commands(command, (ctx.invoked_subcommand,))


def _wrap_commands(command, path: tuple[str, ...]) -> None:
    import functools

    from llmship.aws.session import CALL_COMMAND_ENV

    for name, sub in getattr(command, "commands", {}).items():
        _wrap_commands(sub, (*path, name))
    run = command.callback
    if run is None or getattr(run, "names_command", False):
        return

    @functools.wraps(run)
    def named(*args, **kwargs):
        previous = os.environ.get(CALL_COMMAND_ENV)
        os.environ[CALL_COMMAND_ENV] = " ".join(path)
        try:
            return run(*args, **kwargs)
        finally:
            if previous is None:
                os.environ.pop(CALL_COMMAND_ENV, None)
            else:
                os.environ[CALL_COMMAND_ENV] = previous

    named.names_command = True
    command.callback = named


def load(config: Path | None, overrides: list[str] | None) -> LoadedConfig:
    """The config with no optional section required: a command that reads model or data
    asks for them (`loaded.require("model", "data", command="train")`), so a config kept
    for the gateway, `invoke` or `status` needs neither."""
    return load_config(config, overrides or [], require=())


def load_if_present(config: Path | None, overrides: list[str] | None) -> LoadedConfig | None:
    """The config when --config is given or ./llmship.yaml exists, else None, for the
    commands that work without one (status, destroy, invoke, package, serve, keys):
    their defaults stand in. --set without a config file is refused, not ignored."""
    if config is None and not Path(DEFAULT_CONFIG_NAME).is_file():
        if overrides:
            raise ConfigError(f"--set needs a config file and there is no {DEFAULT_CONFIG_NAME}")
        return None
    return load(config, overrides)


def confirmer(yes: bool, refusal: str) -> Callable[[str], bool]:
    """The `confirm` callback a stage's flow asks (question -> bool): yes with --yes, the
    answer on a terminal, and anywhere else an error saying `refusal` and to pass --yes
    (a script must not hang on, or silently skip, a question about money)."""

    def confirm(question: str) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            raise DeployError(f"{refusal}; not a terminal to ask on: pass --yes to confirm")
        return typer.confirm(question, default=False)

    return confirm


def fail(exc: LlmshipError) -> NoReturn:
    """Print an llmship error and exit 2; LLMSHIP_DEBUG=1 shows the traceback too."""
    if os.environ.get("LLMSHIP_DEBUG"):
        raise exc
    err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
    hint = next_step(exc)
    if hint:
        err_console.print(f"[dim]next: {hint}[/]", highlight=False)
    sys.exit(2)
