"""Training entry point for a SageMaker training job (and `python -m` anywhere).

SageMaker passes hyperparameters as `--name value` arguments. llmship's are:
    --config PATH            the run's config.yaml (shipped with the source)
    --checkpoint-dir PATH    where checkpoints go (default /opt/ml/checkpoints, synced to S3)
    --<key.path> VALUE       any config override, e.g. --train.epochs 2
Data comes from SM_CHANNEL_TRAIN and SM_CHANNEL_VALIDATION (and an optional
SM_CHANNEL_MODEL holding base weights); the model goes to SM_MODEL_DIR and metrics to
SM_OUTPUT_DATA_DIR. A job restarted after a spot interruption resumes from the newest
checkpoint.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llmship.config.loader import load_config
from llmship.errors import LlmshipError
from llmship.progress import RichReporter
from llmship.train.environment import DEFAULT_CHECKPOINT_DIR, TrainingEnvironment
from llmship.train.run import train_in_environment


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


def main(argv: list[str] | None = None) -> int:
    args, overrides = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        loaded = load_config(args.config, overrides)
        env = TrainingEnvironment.from_environ(checkpoint_dir=Path(args.checkpoint_dir))
        result = train_in_environment(loaded, env, RichReporter())
    except LlmshipError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"trained {result.state.step} steps; model written to {result.model_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
