"""The source a SageMaker training job runs: llmship itself, a launcher, the config and a
requirements.txt written for the training container.

Layout of sourcedir.tar.gz (unpacked by the container into /opt/ml/code):
    llmship_train.py      the program SageMaker runs (sagemaker_program): llmship's entry point
    llmship/              llmship's own package source, as installed here
    llmship.yaml          the run's config, fully resolved, with no secret in it
    requirements.txt      what the training code needs beyond the container

The Hugging Face PyTorch training containers pin transformers and PyTorch. The
requirements pin both to the container's own versions, so pip keeps them (it fails
rather than replace them) and installs only what is missing (pydantic, python-dotenv
and rich; peft, safetensors, pyyaml, tensorboard and boto3 are already there).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, SecretStr

from llmship.config.loader import LoadedConfig
from llmship.package.targz import write_targz

PROGRAM = "llmship_train.py"
CONFIG_NAME = "llmship.yaml"
REQUIREMENTS = "requirements.txt"
# model.hf_token in the shipped config: the entry point sets HF_TOKEN from Secrets Manager.
TOKEN_REFERENCE = "${HF_TOKEN:-}"

# What llmship's training code imports beyond the standard library, torch and
# transformers (distribution name, versions it works with).
TRAINING_REQUIREMENTS: tuple[tuple[str, str], ...] = (
    ("peft", ">=0.14"),
    ("safetensors", ">=0.4"),
    ("pyyaml", ">=6"),
    ("pydantic", ">=2.7,<3"),
    ("python-dotenv", ">=1.0"),
    ("rich", ">=13"),
    ("tensorboard", ">=2.16"),
    ("boto3", ">=1.35"),
)
QLORA_REQUIREMENTS = (("bitsandbytes", ">=0.45"),)

LAUNCHER = '''"""SageMaker runs this file (sagemaker_program): llmship's training entry point."""

import sys

from llmship.train.entrypoint import main

if __name__ == "__main__":
    sys.exit(main())
'''


def requirements(torch_version: str, transformers_version: str, method: str = "lora") -> str:
    """requirements.txt for a container that ships torch and transformers at these versions."""
    extra = QLORA_REQUIREMENTS if method == "qlora" else ()
    lines = [
        "# llmship's training code on top of the training container's own libraries.",
        "# torch and transformers are pinned to the container's versions: pip keeps them.",
        f"torch=={torch_version}",
        f"transformers=={transformers_version}",
        *(f"{name}{spec}" for name, spec in (*TRAINING_REQUIREMENTS, *extra)),
    ]
    return "\n".join(lines) + "\n"


def job_config(loaded: LoadedConfig) -> dict[str, Any]:
    """The config as the job reads it: every ${VAR} already resolved, every secret out
    (model.hf_token becomes a reference to HF_TOKEN, which the entry point fills in)."""
    tree = _without_secrets(loaded.config)
    if loaded.config.model.hf_token is not None:
        tree["model"]["hf_token"] = TOKEN_REFERENCE
    return tree


def _without_secrets(model: BaseModel) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            out[name] = _without_secrets(value)
        elif isinstance(value, SecretStr):
            out[name] = None
        else:
            out[name] = _plain(value)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return _without_secrets(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def write_source(
    directory: Path, loaded: LoadedConfig, torch_version: str, transformers_version: str
) -> Path:
    """Write the job's source directory (see the module docstring) into `directory`."""
    import llmship

    directory.mkdir(parents=True, exist_ok=True)
    package = Path(llmship.__file__).parent
    _copy_package(package, directory / "llmship")
    (directory / PROGRAM).write_text(LAUNCHER, encoding="utf-8")
    (directory / CONFIG_NAME).write_text(
        yaml.safe_dump(job_config(loaded), sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
    (directory / REQUIREMENTS).write_text(
        requirements(torch_version, transformers_version, loaded.config.train.method),
        encoding="utf-8",
    )
    return directory


def build_source_archive(
    out: Path, loaded: LoadedConfig, torch_version: str, transformers_version: str
) -> Path:
    """sourcedir.tar.gz, the archive `sagemaker_submit_directory` points at."""
    stage = out.parent / f".{out.name}.source"
    shutil.rmtree(stage, ignore_errors=True)
    try:
        write_source(stage, loaded, torch_version, transformers_version)
        return write_targz(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _copy_package(source: Path, target: Path) -> None:
    """llmship's files, without caches or compiled files."""
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if "__pycache__" in relative.parts or path.suffix in (".pyc", ".pyo"):
            continue
        if path.is_dir():
            (target / relative).mkdir(parents=True, exist_ok=True)
        elif path.is_file():
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            (target / relative).write_bytes(path.read_bytes())
