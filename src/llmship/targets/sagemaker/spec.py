"""What plan resolves and apply creates from, and the model facts that size an instance.

`SageMakerSpec` is computed by the plan and only read after; `ModelFacts` is what the
instance recommendation and the serverless memory check read from a model directory;
the artifact checks refuse, before anything is created, what TGI would fail on minutes
later.
"""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmship.errors import DeployError

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int8": 1}


@dataclass
class SageMakerSpec:
    """The resolved settings apply creates from (computed by plan, read-only)."""

    endpoint_name: str
    model_name: str
    config_name: str
    updating: bool
    tags: list[dict[str, str]]
    model_request: dict[str, Any]
    config_request: dict[str, Any]
    instance_type: str | None
    instance_count: int
    hourly_usd: float | None
    container: str
    local_artifact: Path | None = None  # to build (if missing) and upload
    artifact_format: str = "tar.gz"
    transformers_version: str | None = None
    upload_uri: str | None = None
    check_tgi: bool = False
    create_s3_endpoint: bool = False
    ttl_seconds: int | None = None
    autoscaling: Any = None  # scaling.AutoscalingSettings
    policy: Any = None  # update.DeploymentPolicy
    role_grant: Any = None  # role_grants.RoleGrant: the execution role's extra policy

    @property
    def tag_values(self) -> dict[str, str]:
        """The tags as a mapping, as the TTL, network and scaling calls take them."""
        return {t["Key"]: t["Value"] for t in self.tags}


@dataclass(frozen=True)
class ModelFacts:
    """What instance sizing needs to know about a model."""

    params: int
    dtype_bytes: int
    weight_bytes: int
    layers: int
    kv_heads: int
    head_dim: int


def model_facts(model_dir: Path) -> ModelFacts:
    """The facts of a model directory, read from its config and its safetensors weights."""
    config = json.loads((model_dir / "config.json").read_text())
    config = config.get("text_config", config)
    dtype = str(config.get("torch_dtype") or config.get("dtype") or "float32")
    dtype_bytes = DTYPE_BYTES.get(dtype, 2)
    weight_bytes = sum(p.stat().st_size for p in model_dir.glob("*.safetensors"))
    heads = int(config.get("num_attention_heads") or config.get("num_heads") or 1)
    hidden = int(config.get("hidden_size") or config.get("d_model") or 0)
    return ModelFacts(
        params=max(1, weight_bytes // dtype_bytes),
        dtype_bytes=dtype_bytes,
        weight_bytes=weight_bytes,
        layers=int(config.get("num_hidden_layers") or config.get("num_layers") or 1),
        kv_heads=int(config.get("num_key_value_heads") or heads),
        head_dim=int(config.get("head_dim") or (hidden // heads if hidden else 128)),
    )


def artifact_files(path: Path) -> list[str]:
    """File names in an artifact directory or tar.gz (relative to its root)."""
    if path.is_dir():
        return [str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()]
    with tarfile.open(path, "r:gz") as archive:
        return [m.name.removeprefix("./") for m in archive.getmembers() if m.isfile()]


def check_tgi_files(names: list[str], where: str) -> None:
    """TGI loads safetensors weights and a tokenizer.json from /opt/ml/model; refuse
    an artifact without them before deploying (TGI would fail minutes later)."""
    roots = [n for n in names if "/" not in n]
    missing = []
    if not any(n.endswith(".safetensors") for n in roots):
        missing.append("*.safetensors weights")
    if "tokenizer.json" not in roots:
        missing.append("tokenizer.json (a fast tokenizer)")
    if missing:
        raise DeployError(
            f"deploy.container: tgi needs {' and '.join(missing)} at the root of {where}; "
            "save the model with safetensors and a fast tokenizer, or use container: huggingface"
        )
