"""llmship: from a base LLM and a dataset to a fine-tuned model behind an HTTP API.

The public API, one function per stage. Names load lazily, so importing llmship (or a
module such as a future llmship.aws) does not import torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "ConfigError": "llmship.errors",
    "DataError": "llmship.errors",
    "EvalError": "llmship.errors",
    "LlmshipError": "llmship.errors",
    "ModelError": "llmship.errors",
    "TrainError": "llmship.errors",
    "LlmshipConfig": "llmship.config.schema",
    "LoadedConfig": "llmship.config.loader",
    "load_config": "llmship.config.loader",
    "create_tiny_model": "llmship.models.tiny",
    "load_splits": "llmship.data.prepare",
    "prepare_data": "llmship.data.prepare",
    "train": "llmship.train.run",
    "train_in_environment": "llmship.train.run",
    "TrainingEnvironment": "llmship.sagemaker.training_contract",
    "evaluate": "llmship.train.evaluation",
    "load_finetuned": "llmship.models.generation",
    "generate": "llmship.models.generation",
    "run_demo": "llmship.demo",
    "PackageError": "llmship.errors",
    "build_artifact": "llmship.package.build",
    "validate_artifact": "llmship.package.validate",
    "safe_extract": "llmship.package.extract",
    "create_app": "llmship.serve.app",
    "serve": "llmship.serve.server",
    "publish": "llmship.publish.hub",
}

__all__ = [
    "ConfigError",
    "DataError",
    "EvalError",
    "LlmshipConfig",
    "LlmshipError",
    "LoadedConfig",
    "ModelError",
    "PackageError",
    "TrainError",
    "TrainingEnvironment",
    "__version__",
    "build_artifact",
    "create_app",
    "create_tiny_model",
    "evaluate",
    "generate",
    "load_config",
    "load_finetuned",
    "load_splits",
    "prepare_data",
    "publish",
    "run_demo",
    "safe_extract",
    "serve",
    "train",
    "train_in_environment",
    "validate_artifact",
]

if TYPE_CHECKING:
    from llmship.config.loader import LoadedConfig, load_config
    from llmship.config.schema import LlmshipConfig
    from llmship.data.prepare import load_splits, prepare_data
    from llmship.demo import run_demo
    from llmship.errors import (
        ConfigError,
        DataError,
        EvalError,
        LlmshipError,
        ModelError,
        PackageError,
        TrainError,
    )
    from llmship.models.generation import generate, load_finetuned
    from llmship.models.tiny import create_tiny_model
    from llmship.package.build import build_artifact
    from llmship.package.extract import safe_extract
    from llmship.package.validate import validate_artifact
    from llmship.publish.hub import publish
    from llmship.sagemaker.training_contract import TrainingEnvironment
    from llmship.serve.app import create_app
    from llmship.serve.server import serve
    from llmship.train.evaluation import evaluate
    from llmship.train.run import train, train_in_environment


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'llmship' has no attribute {name!r}")
