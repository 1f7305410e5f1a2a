"""The tables of targets by name: the one place a name such as "sagemaker" becomes code.

TARGETS: where `deploy` puts a model (and what `status` and `destroy` find recorded).
TRAINING: where `train` runs (train.target); each entry calls its stage and prints what
it made. Each entry imports its stage only when asked for, so `local` never imports
boto3 and `status` imports only the targets it lists. Stages receive a target, never a
name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from llmship.cli._common import confirmer, console
from llmship.errors import ConfigError, DeployError
from llmship.state import StateStore
from llmship.target import Target

if TYPE_CHECKING:
    from llmship.config.loader import LoadedConfig
    from llmship.progress import Reporter
    from llmship.train.sagemaker_job import JobPlan

TargetFactory = Callable[..., Target]


def _local(store: StateStore, aws=None, **options) -> Target:
    from llmship.targets.local.target import LocalTarget

    return LocalTarget(store, **options)


def _sagemaker(store: StateStore, aws=None, **options) -> Target:
    from llmship.config.schema import AwsConfig
    from llmship.targets.sagemaker.target import SageMakerTarget

    return SageMakerTarget(store, aws or AwsConfig(), **options)


def _bedrock(store: StateStore, aws=None, **options) -> Target:
    from llmship.config.schema import AwsConfig
    from llmship.targets.bedrock.target import BedrockTarget

    return BedrockTarget(store, aws or AwsConfig(), **options)


def _bedrock_import(store: StateStore, aws=None, **options) -> Target:
    from llmship.config.schema import AwsConfig
    from llmship.targets.bedrock_import.target import BedrockImportTarget

    return BedrockImportTarget(store, aws or AwsConfig(), **options)


def _gateway(store: StateStore, aws=None, **options) -> Target:
    from llmship.targets.gateway.target import ExposedGateway

    return ExposedGateway(store, aws, **options)


TARGETS: dict[str, TargetFactory] = {
    "local": _local,
    "sagemaker": _sagemaker,
    "bedrock": _bedrock,
    "bedrock-import": _bedrock_import,
    "gateway": _gateway,  # `llmship expose ROUTE --target aws` (status and destroy only)
}


def get_target(name: str, store: StateStore, aws=None, **options) -> Target:
    """The target registered as `name`, built over the state store and AWS settings."""
    if name not in TARGETS:
        raise DeployError(f"deploy.target: unknown target {name!r}; one of {', '.join(TARGETS)}")
    return TARGETS[name](store, aws, **options)


@dataclass(frozen=True)
class TrainingRequest:
    """What `llmship train` parsed, for the backend train.target names."""

    loaded: LoadedConfig
    overrides: list[str]
    output: Path | None
    resume: str | None
    python: str | None
    yes: bool
    reporter: Reporter


@dataclass(frozen=True)
class TrainingBackend:
    """Where training runs: the config sections it reads, and how to train there."""

    train: Callable[[TrainingRequest], None]
    needs: tuple[str, ...] = ("model", "data")


def _train_local(request: TrainingRequest) -> None:
    from llmship.train.run import train

    run, result = train(
        request.loaded,
        output=request.output,
        resume=request.resume,
        overrides=request.overrides,
        reporter=request.reporter,
    )
    console.print(f"trained {result.state.step} steps ({result.state.tokens_seen:,} tokens)")
    console.print(f"run directory: {run.root}")
    console.print(f"model:         {result.model_dir}")
    console.print(
        f"metrics:       {run.metrics}  (tensorboard --logdir {run.output / 'tensorboard'})"
    )


def _train_local_container(request: TrainingRequest) -> None:
    from llmship.train.container import run_local_container

    result = run_local_container(
        request.loaded,
        output=request.output,
        resume=request.resume,
        python=request.python,
        on_line=lambda line: console.print(line, highlight=False, markup=False),
    )
    console.print(f"run directory: {result.run.root}")
    console.print(f"model.tar.gz:  {result.model_tar}  (what SageMaker would upload)")
    console.print(f"metrics:       {result.metrics}")


def _train_sagemaker(request: TrainingRequest) -> None:
    """A training job through the one flow: its plan and permission check shown, asked
    (billed while it runs), created and watched."""
    from llmship.cli.aws_cmd import show_permission_check
    from llmship.runs import find_run, new_run
    from llmship.train.run import prepare_run_data
    from llmship.train.sagemaker_job import submit

    loaded, output = request.loaded, request.output
    if request.resume:
        run = find_run(loaded, request.resume, output)  # same run: same checkpoints in S3
    else:
        run = new_run(loaded, output)
        prepare_run_data(loaded, run)

    def show(plan: JobPlan) -> None:
        console.print(plan.describe(), highlight=False)
        show_permission_check(loaded, "train", deployment=plan.deployment, run_id=plan.run_id)

    job = submit(
        loaded,
        run,
        reporter=request.reporter,
        show=show,
        confirm=confirmer(request.yes, "a SageMaker training job is billed while it runs"),
    )
    if job is None:
        console.print("nothing created")
        return
    console.print(f"training job {job.name}: {job.status}")
    console.print(f"model artifact: {job.model_data}")
    console.print(f"deploy it: llmship deploy --set deploy.model_data={job.model_data}")


def _train_bedrock(request: TrainingRequest) -> None:
    import time

    from llmship.bedrock.customize import train_on_bedrock
    from llmship.cli.aws_cmd import show_permission_check
    from llmship.sagemaker.names import default_name

    loaded, reporter, output = request.loaded, request.reporter, request.output
    stamp = time.strftime("%Y%m%d-%H%M%S")  # the run directory's name, as new_run makes it
    name = default_name(loaded.config.project.name, stamp)
    show_permission_check(loaded, "bedrock", deployment=name)

    def stop_job(question: str) -> bool:
        """Ctrl-C while the job runs: ask on a terminal; anywhere else it keeps running."""
        import sys

        from rich.prompt import Confirm

        return sys.stdin.isatty() and Confirm.ask(question, default=False)

    run = train_on_bedrock(loaded, reporter=reporter, output=output, confirm=stop_job)
    console.print(f"run directory: {run.root}")


TRAINING: dict[str, TrainingBackend] = {
    "local": TrainingBackend(_train_local),
    "local-container": TrainingBackend(_train_local_container),
    "sagemaker": TrainingBackend(_train_sagemaker),
    # Bedrock tunes its own base model (bedrock.base_model_id): only the data is read here.
    "bedrock": TrainingBackend(_train_bedrock, needs=("data",)),
}


def get_training(name: str) -> TrainingBackend:
    """The training backend registered as `name` (train.target)."""
    if name not in TRAINING:
        raise ConfigError(f"train.target: unknown target {name!r}; one of {', '.join(TRAINING)}")
    return TRAINING[name]
