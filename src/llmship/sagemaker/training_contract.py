"""The SageMaker training container contract, and its mapping into a local run directory.

Inside a SageMaker training job the platform sets SM_MODEL_DIR, SM_CHANNEL_<NAME>,
SM_OUTPUT_DATA_DIR, SM_NUM_GPUS, SM_HOSTS and SM_CURRENT_HOST, passes hyperparameters
as `--name value` arguments, and syncs /opt/ml/checkpoints to S3 for spot resume.
Locally the same names point into the run directory, so one code path serves both.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

SAGEMAKER_ROOT = Path("/opt/ml")
DEFAULT_CHECKPOINT_DIR = SAGEMAKER_ROOT / "checkpoints"


@dataclass(frozen=True)
class TrainingEnvironment:
    """Where a training run reads data and writes results."""

    model_dir: Path
    output_data_dir: Path
    checkpoint_dir: Path
    channels: dict[str, Path] = field(default_factory=dict)
    num_gpus: int = 0
    hosts: tuple[str, ...] = ("algo-1",)
    current_host: str = "algo-1"

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str] | None = None, checkpoint_dir: Path | None = None
    ) -> TrainingEnvironment:
        """Read the SageMaker variables (defaults are the container's own paths)."""
        env = os.environ if environ is None else environ
        channels = {
            key.removeprefix("SM_CHANNEL_").lower(): Path(value)
            for key, value in env.items()
            if key.startswith("SM_CHANNEL_")
        }
        hosts = tuple(json.loads(env["SM_HOSTS"])) if "SM_HOSTS" in env else ("algo-1",)
        return cls(
            model_dir=Path(env.get("SM_MODEL_DIR", SAGEMAKER_ROOT / "model")),
            output_data_dir=Path(env.get("SM_OUTPUT_DATA_DIR", SAGEMAKER_ROOT / "output/data")),
            checkpoint_dir=checkpoint_dir or DEFAULT_CHECKPOINT_DIR,
            channels=channels,
            num_gpus=int(env.get("SM_NUM_GPUS", _visible_gpus())),
            hosts=hosts,
            current_host=env.get("SM_CURRENT_HOST", hosts[0]),
        )


def _visible_gpus() -> int:
    import torch

    return torch.cuda.device_count()
