"""One directory per run, with one documented layout:

runs/<run-id>/
  config.yaml            the config as given (overrides applied, ${VAR} unresolved)
  data/<split>/<split>.jsonl   prepared splits; train and validation are the
                         SageMaker channels (SM_CHANNEL_TRAIN, SM_CHANNEL_VALIDATION)
  checkpoints/step-N/    trainable weights, optimizer, scheduler, data position, RNG
  model/                 the final model (SM_MODEL_DIR): merged safetensors weights or
                         the adapter, tokenizer, generation_config.json, llmship.json
  output/                SM_OUTPUT_DATA_DIR: metrics.jsonl, tensorboard/, adapter/
  eval/report.json       ROUGE scores and settings; eval/predictions.jsonl
  plots/loss.png         training and validation loss
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from llmship.config.loader import LoadedConfig
from llmship.errors import TrainError
from llmship.sagemaker.training_contract import TrainingEnvironment

SPLIT_NAMES = ("train", "validation", "test")
LATEST = "latest"  # names the newest run wherever a command takes a run


@dataclass(frozen=True)
class RunDir:
    """Paths inside one run directory."""

    root: Path

    @property
    def run_id(self) -> str:
        return self.root.name

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    def channel(self, split: str) -> Path:
        return self.root / "data" / split

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def output(self) -> Path:
        return self.root / "output"

    @property
    def metrics(self) -> Path:
        return self.output / "metrics.jsonl"

    @property
    def eval_report(self) -> Path:
        return self.root / "eval" / "report.json"

    @property
    def predictions(self) -> Path:
        return self.root / "eval" / "predictions.jsonl"

    @property
    def loss_plot(self) -> Path:
        return self.root / "plots" / "loss.png"

    def environment(self, num_gpus: int) -> TrainingEnvironment:
        """The SageMaker training contract, mapped into this directory."""
        return TrainingEnvironment(
            model_dir=self.model,
            output_data_dir=self.output,
            checkpoint_dir=self.checkpoints,
            channels={split: self.channel(split) for split in ("train", "validation")},
            num_gpus=num_gpus,
        )


def runs_root(loaded: LoadedConfig, output: str | Path | None = None) -> Path:
    """runs/ beside the config, or --output."""
    if output is not None:
        return Path(output)
    return loaded.base_dir / loaded.config.project.runs_dir


def new_run(loaded: LoadedConfig, output: str | Path | None = None) -> RunDir:
    """Create a fresh run directory named by time (unique within its parent)."""
    root = runs_root(loaded, output)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate, suffix = root / stamp, 1
    while candidate.exists():
        suffix += 1
        candidate = root / f"{stamp}-{suffix}"
    candidate.mkdir(parents=True)
    run = RunDir(candidate)
    run.config.write_text(loaded.snapshot_yaml(), encoding="utf-8")
    return run


def find_run(loaded: LoadedConfig, which: str | Path, output: str | Path | None = None) -> RunDir:
    """A run by path, by id under runs/, or "latest"."""
    root = runs_root(loaded, output)
    path = resolve_run_argument(which, root)
    if not _is_run(path):
        raise TrainError(
            f"run {which!r} not found (looked in {root}); give a run directory or 'latest'"
        )
    return RunDir(path)


def resolve_run_argument(which: str | Path, root: Path) -> Path:
    """What a command's RUN argument names, the same for every command that takes one:
    "latest" (the newest run under `root`), a run id under `root`, or else the path as
    given (a run directory, or what a command also accepts: a model directory, an
    artifact). Whether that path will do is for the command to say."""
    if str(which) == LATEST:
        runs = sorted(p for p in root.glob("*") if _is_run(p)) if root.exists() else []
        if not runs:
            raise TrainError(f"no runs under {root}; run `llmship train` first")
        return runs[-1]
    given, by_id = Path(which), root / str(which)
    return by_id if not _is_run(given) and _is_run(by_id) else given


def _is_run(path: Path) -> bool:
    return (path / "config.yaml").exists()
