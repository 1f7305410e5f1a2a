"""Training entry point for a SageMaker training job (and `python -m` anywhere).

SageMaker passes hyperparameters as `--name value` arguments. llmship's are:
    --config PATH            the run's config.yaml (shipped with the source)
    --checkpoint-dir PATH    where checkpoints go (default /opt/ml/checkpoints, synced to S3)
    --<key.path> VALUE       any config override, e.g. --train.epochs 2
Data comes from SM_CHANNEL_TRAIN and SM_CHANNEL_VALIDATION (and an optional
SM_CHANNEL_MODEL holding base weights); the model goes to SM_MODEL_DIR and metrics to
SM_OUTPUT_DATA_DIR. A job restarted after a spot interruption resumes from the newest
checkpoint.

Before anything else, secrets named by LLMSHIP_SECRET_<NAME> (a Secrets Manager ARN)
are read into this process's environment. When the job needs more than one process
(several GPUs or instances), the entry point starts itself again under torchrun, one
process per GPU. At the end, a merged model in SM_MODEL_DIR is turned into the
deployable artifact for package.transformers_version (model files at the root,
code/inference.py), so the job's model.tar.gz deploys as it is.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmship.config.loader import LoadedConfig, load_config
from llmship.errors import LlmshipError
from llmship.sagemaker.training_contract import DEFAULT_CHECKPOINT_DIR, TrainingEnvironment

LOG_EVERY_S = 10.0


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Known options, and the rest as key.path=value overrides."""
    parser = argparse.ArgumentParser(prog="llmship-train", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the run's config.yaml")
    parser.add_argument("--checkpoint-dir", "--checkpoint_dir", default=str(DEFAULT_CHECKPOINT_DIR))
    known, rest = parser.parse_known_args(argv)
    overrides = []
    index = 0
    while index < len(rest):
        item = rest[index]
        if not item.startswith("--"):
            parser.error(f"unexpected argument {item!r}; hyperparameters are --key.path value")
        key = item[2:]
        if "=" in key:
            overrides.append(key)
            index += 1
            continue
        if index + 1 >= len(rest):
            parser.error(f"hyperparameter {item} has no value")
        overrides.append(f"{key}={rest[index + 1]}")
        index += 2
    return known, overrides


class LineReporter:
    """Progress as plain lines (a job's log is a file, not a terminal): one line at most
    every LOG_EVERY_S seconds, and the last step always. SageMaker's metric definitions
    read `loss` from these lines."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, every_s: float = LOG_EVERY_S):
        self.clock, self.every_s = clock, every_s
        self.description, self.total, self.last = "", None, float("-inf")

    def start(self, description: str, total: int | None, completed: int = 0) -> None:
        self.description, self.total, self.last = description, total, float("-inf")
        print(f"{description}: starting at {completed} of {total}", flush=True)

    def update(self, completed: int, **fields: Any) -> None:
        now = self.clock()
        if now - self.last < self.every_s and completed != self.total:
            return
        self.last = now
        stats = " ".join(f"{key} {value}" for key, value in fields.items())
        print(f"{self.description} step {completed}/{self.total} {stats}", flush=True)

    def finish(self) -> None:
        print(f"{self.description}: done", flush=True)

    def message(self, text: str) -> None:
        print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args, overrides = parse_args(argv)
    try:
        from llmship.aws.secrets import ENV_PREFIX, load_secrets_into

        if any(key.startswith(ENV_PREFIX) for key in os.environ):
            names = load_secrets_into()
            if names:
                print(f"read {', '.join(names)} from Secrets Manager", flush=True)
        loaded = load_config(args.config, overrides)
        env = TrainingEnvironment.from_environ(checkpoint_dir=Path(args.checkpoint_dir))
        from llmship.train.distributed import launch_command, needs_launch, plan_launch

        launch = plan_launch(env)
        if needs_launch(launch):
            return _relaunch(launch_command(launch, argv))
        return _train(loaded, env)
    except LlmshipError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _relaunch(command: list[str]) -> int:
    """Run torchrun with llmship importable in every worker; its exit status."""
    import llmship

    root = str(Path(llmship.__file__).parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    print(f"starting torchrun {' '.join(command[3:8])}", flush=True)
    return subprocess.run(command, env=env, check=False).returncode


def _train(loaded: LoadedConfig, env: TrainingEnvironment) -> int:
    from llmship.progress import RichReporter
    from llmship.train.distributed import current_rank
    from llmship.train.run import train_in_environment

    reporter = RichReporter() if sys.stderr.isatty() else LineReporter()
    _quiet_progress_bars()
    result = train_in_environment(loaded, env, reporter)
    if not current_rank().is_main:
        return 0
    version = loaded.config.package.transformers_version
    rewritten = make_deployable(env.model_dir, version)
    print(f"trained {result.state.step} steps; model written to {result.model_dir}", flush=True)
    if rewritten is not None:
        fixed = f" (rewrote {', '.join(rewritten)})" if rewritten else ""
        print(f"the model deploys in the transformers {version} inference container{fixed}")
    return 0


def _quiet_progress_bars() -> None:
    """No library progress bars in a job's log (llmship's own lines say where it is)."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def make_deployable(model_dir: Path, transformers_version: str) -> list[str] | None:
    """Turn a merged model in `model_dir` into the artifact `llmship package` would build
    for `transformers_version` (the same code: llmship.package.build), in place; the
    files rewritten for that version. An adapter stays as it is (None): it needs its
    base model to serve."""
    from llmship.package.build import build_artifact

    if (model_dir / "adapter_config.json").is_file() or not (model_dir / "config.json").is_file():
        return None
    trained = model_dir.parent / f".{model_dir.name}.trained"
    artifact = model_dir.parent / f".{model_dir.name}.artifact"
    for leftover in (trained, artifact):
        shutil.rmtree(leftover, ignore_errors=True)
    trained.mkdir()
    # model_dir itself stays (in a job it may be a mount point); only its contents move.
    for path in list(model_dir.iterdir()):
        shutil.move(str(path), trained / path.name)
    built = build_artifact(trained, artifact, "uncompressed", transformers_version)
    for path in list(artifact.iterdir()):
        shutil.move(str(path), model_dir / path.name)
    shutil.rmtree(trained)
    artifact.rmdir()
    return list(built.rewritten)


if __name__ == "__main__":
    sys.exit(main())
