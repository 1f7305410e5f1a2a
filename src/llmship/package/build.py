"""Build a SageMaker model artifact from a trained model directory.

Layout (what the Hugging Face PyTorch inference container expects):
    config.json, generation_config.json, tokenizer files, *.safetensors (+ index),
    llmship.json                      the prompt format and generation defaults
    code/inference.py                 llmship's self-contained handler
    code/requirements.txt             pinned public packages only (none needed today)
as model.tar.gz, or as an uncompressed directory to upload as an S3 prefix
(ModelDataSource with CompressionType None, the fast path for large models).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Literal

from llmship.errors import PackageError
from llmship.models.info import MODEL_FILES, MODEL_INFO, write_default_model_info
from llmship.package.compat import write_v4_files
from llmship.package.containers import DEFAULT_TRANSFORMERS, target_major
from llmship.package.targz import write_targz

REQUIREMENTS = (
    "# Installed by the inference container before it loads code/inference.py.\n"
    "# llmship's handler needs nothing beyond the container's own torch and transformers.\n"
)


@dataclass(frozen=True)
class Artifact:
    """What package wrote."""

    path: Path
    format: str
    transformers_version: str
    bytes: int
    seconds: float
    rewritten: tuple[str, ...]


def model_dir_of(path: Path) -> Path:
    """A run directory's model/, or the directory itself."""
    candidate = path / "model"
    return candidate if (candidate / "config.json").is_file() else path


def build_artifact(
    source: str | Path,
    out: str | Path,
    fmt: Literal["tar.gz", "uncompressed"] = "tar.gz",
    transformers_version: str | None = None,
) -> Artifact:
    """Write the artifact for `source` (a run directory or a model directory) to `out`."""
    started = time.perf_counter()
    model_dir = model_dir_of(Path(source))
    version = transformers_version or DEFAULT_TRANSFORMERS
    major = target_major(version)
    _check_source(model_dir)
    out = Path(out)
    if out.exists():
        raise PackageError(f"{out} already exists; choose a new path or remove it")
    stage = out if fmt == "uncompressed" else out.parent / f".{out.name}.staging"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        for path in sorted(model_dir.iterdir()):
            if path.name in MODEL_FILES or path.name.endswith((".safetensors", ".index.json")):
                shutil.copy2(path, stage / path.name)
        if not (stage / MODEL_INFO).is_file():
            write_default_model_info(model_dir, stage / MODEL_INFO)
        rewritten = write_v4_files(model_dir, stage, version) if major == 4 else []
        code = stage / "code"
        code.mkdir()
        handler = files("llmship.package.handler").joinpath("inference.py").read_text("utf-8")
        (code / "inference.py").write_text(handler, encoding="utf-8")
        (code / "requirements.txt").write_text(REQUIREMENTS, encoding="utf-8")
        if fmt == "tar.gz":
            write_targz(stage, out)
    finally:
        if fmt == "tar.gz":
            shutil.rmtree(stage, ignore_errors=True)
    size = (
        out.stat().st_size
        if out.is_file()
        else sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    )
    return Artifact(
        out, fmt, version, size, round(time.perf_counter() - started, 3), tuple(rewritten)
    )


def _check_source(model_dir: Path) -> None:
    if (model_dir / "adapter_config.json").is_file():
        raise PackageError(
            f"{model_dir} holds a LoRA adapter, not a full model; train with --merge "
            "(train.merge: true) so the artifact carries its own weights"
        )
    if not (model_dir / "config.json").is_file():
        raise PackageError(
            f"{model_dir} holds no model (no config.json); give a run directory or its model/"
        )
    if not any(model_dir.glob("*.safetensors")):
        raise PackageError(f"{model_dir} has no .safetensors weights; save it with safetensors")
