"""Container images per region and version: the Hugging Face PyTorch inference container
(what llmship's own artifacts run in), TGI and LMI (vLLM through DJL) for hub models.

The facts (repositories, tags, the registry account of each region) come from one
generated file, data/images.json, extracted from the SageMaker Python SDK's image
config by scripts/refresh_image_facts.py; no URI is typed by hand anywhere else. The
huggingface container defaults to the transformers version llmship packages for.
The Hugging Face PyTorch training containers (what SageMaker training jobs run in) are
a separate table with their own accessor, training_image().
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

from llmship.errors import DeployError

Container = Literal["huggingface", "tgi", "lmi"]


@dataclass(frozen=True)
class Image:
    """One container image: its URI and what it runs."""

    uri: str
    container: str
    version: str
    framework: dict[str, str]  # e.g. {"transformers": "4.51.3", "pytorch": "2.6.0"}
    device: str


@cache
def facts() -> dict[str, Any]:
    """The generated image facts, with their source (URL, commit, date)."""
    return json.loads(resources.files("llmship.sagemaker").joinpath("data/images.json").read_text())


def image_for(
    container: Container,
    region: str,
    *,
    device: Literal["cpu", "gpu"] = "gpu",
    transformers_version: str | None = None,
    version: str | None = None,
) -> Image:
    """The image of `container` for `region` and `device`; DeployError lists what exists."""
    data = facts()
    containers = data["containers"]
    if container not in containers:
        raise DeployError(
            f"unknown container {container!r}; choose one of: {', '.join(containers)}"
        )
    entry = containers[container]
    if transformers_version is not None:
        if container != "huggingface":
            raise DeployError(
                f"a transformers version only selects the huggingface container, not {container}; "
                "use the container version instead"
            )
        if version is not None and version != transformers_version:
            raise DeployError(
                f"container version {version!r} and transformers version "
                f"{transformers_version!r} disagree; the huggingface container's version is its "
                "transformers version: give one of them"
            )
        version = transformers_version
    version = version or entry["default"]
    if version not in entry["versions"]:
        what = "transformers version" if container == "huggingface" else "version"
        raise DeployError(
            f"no {container} container for {what} {version!r}; known: "
            f"{', '.join(entry['versions'])} (image facts from {data['source']['url']}, "
            f"{data['source']['retrieved']}; scripts/refresh_image_facts.py updates them)"
        )
    release = entry["versions"][version]
    if device not in release["tags"]:
        raise DeployError(
            f"the {container} {version} container has no {device.upper()} image (only "
            f"{', '.join(d.upper() for d in release['tags'])}): choose a "
            f"{'GPU' if device == 'cpu' else 'CPU'} instance type, or the huggingface container"
        )
    if region not in release["regions"]:
        raise DeployError(
            f"the {container} {version} container is not published in region {region!r}; "
            f"regions: {', '.join(release['regions'])} (set aws.region to one of them)"
        )
    registry = data["registries"][region]
    return Image(
        uri=f"{registry}/{entry['repository']}:{release['tags'][device]}",
        container=container,
        version=version,
        framework=dict(release["framework"]),
        device=device,
    )


def training_image(region: str, transformers_version: str | None = None) -> Image:
    """The Hugging Face PyTorch training image (GPU) for `transformers_version` in `region`.

    Each pins its transformers and PyTorch (Image.framework); the training job's
    requirements.txt keeps both, so what trained is what the image shipped.
    """
    data = facts()
    entry = data["training"]["huggingface"]
    version = transformers_version or entry["default"]
    where = (
        f"image facts from {data['source']['url']}, {data['source']['retrieved']}; "
        "scripts/refresh_image_facts.py updates them"
    )
    if version not in entry["versions"]:
        raise DeployError(
            f"train.sagemaker.transformers_version: no Hugging Face PyTorch training container "
            f"for transformers {version!r}; known: {', '.join(entry['versions'])} ({where})"
        )
    release = entry["versions"][version]
    if region not in release["regions"]:
        raise DeployError(
            f"the Hugging Face PyTorch training container for transformers {version} is not "
            f"published in region {region!r}; regions: {', '.join(release['regions'])} (set "
            "aws.region to one of them)"
        )
    return Image(
        uri=f"{data['registries'][region]}/{entry['repository']}:{release['tags']['gpu']}",
        container="huggingface-training",
        version=version,
        framework=dict(release["framework"]),
        device="gpu",
    )


def training_framework(transformers_version: str | None = None) -> dict[str, str]:
    """What a training container pins ({"transformers", "pytorch", "python"}), any region."""
    entry = facts()["training"]["huggingface"]
    version = transformers_version or entry["default"]
    if version not in entry["versions"]:
        raise DeployError(
            f"train.sagemaker.transformers_version: no Hugging Face PyTorch training container "
            f"for transformers {version!r}; known: {', '.join(entry['versions'])}"
        )
    return dict(entry["versions"][version]["framework"])
