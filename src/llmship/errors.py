"""Every failure a user can cause or fix is one of these types.

    LlmshipError                 root: catch this to catch everything we raise on purpose
    ├── ConfigError              the config file, an override or an environment reference
    ├── DataError                a dataset file, a row, a field mapping or a split
    ├── ModelError               loading, creating or saving a model or tokenizer
    ├── TrainError               a training run: method, hardware, checkpoints, resume
    ├── EvalError                evaluation and generation
    ├── PackageError             building, validating or extracting a model artifact
    ├── StateError               the local record of created cloud resources
    ├── DeployError              a deployment's settings, plan, rollout or teardown
    └── AwsError                 an AWS call failed (credentials, permissions, limits)

Each message says what was wrong, where (file:line, key path, row, resource) and what
to do next. Lower-level errors (pydantic, yaml, transformers, OSError) are translated
into these at the adapter that called them, with ``raise ... from``.
"""

from __future__ import annotations

__all__ = [
    "AwsError",
    "ConfigError",
    "DataError",
    "DeployError",
    "EvalError",
    "LlmshipError",
    "ModelError",
    "PackageError",
    "StateError",
    "TrainError",
]


class LlmshipError(Exception):
    """Root of every error llmship raises on purpose."""


class ConfigError(LlmshipError):
    """The config file, a --set override or a ${VAR} reference is wrong."""


class DataError(LlmshipError):
    """A dataset cannot be read, mapped, split or formatted."""


class ModelError(LlmshipError):
    """A model or tokenizer cannot be loaded, created or saved."""


class TrainError(LlmshipError):
    """A training run cannot start, continue or finish."""


class EvalError(LlmshipError):
    """Evaluation or generation cannot run."""


class DeployError(LlmshipError):
    """A deployment cannot be planned, created, updated or removed as asked."""


class PackageError(LlmshipError):
    """A model artifact cannot be built, validated or extracted safely."""


class StateError(LlmshipError):
    """The state store (the record of what llmship created) cannot be opened or written."""


class AwsError(LlmshipError):
    """An AWS call failed; the message names the service, the call, AWS's code and what to do."""
