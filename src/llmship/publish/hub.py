"""`llmship publish`: push a run's merged model or its adapter to the Hugging Face Hub.

The exact files are staged first (weights as safetensors, tokenizer, configs,
llmship.json, a generated model card), then handed to huggingface_hub in one commit.
The token comes from HF_TOKEN (or huggingface_hub's own login); it is never written.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from llmship.errors import PackageError
from llmship.models.info import MODEL_FILES, MODEL_INFO, TOKENIZER_FILES
from llmship.publish.card import render_card
from llmship.runs import RunDir

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", *TOKENIZER_FILES)


@dataclass(frozen=True)
class Published:
    repo_id: str
    files: tuple[str, ...]
    url: str


def stage_files(run: RunDir, adapter_only: bool, out: Path) -> list[str]:
    """Copy exactly what gets published into `out`; return the names."""
    if adapter_only:
        source = run.output / "adapter"
        if not (source / "adapter_config.json").is_file():
            raise PackageError(
                f"{run.root} has no LoRA adapter (output/adapter); it was "
                "trained with train.method full, so publish the merged model"
            )
        wanted = ADAPTER_FILES
    else:
        source = run.model
        if (source / "adapter_config.json").is_file():
            raise PackageError(
                f"{source} holds an adapter, not merged weights; publish with "
                "--adapter-only, or train with --merge"
            )
        wanted = MODEL_FILES
    names = []
    for path in sorted(source.iterdir()):
        keep = path.name in wanted or (
            not adapter_only and path.name.endswith((".safetensors", ".safetensors.index.json"))
        )
        if keep and path.is_file():
            shutil.copy2(path, out / path.name)
            names.append(path.name)
    if adapter_only:  # the adapter's own folder lacks the prompt format
        shutil.copy2(run.model / MODEL_INFO, out / MODEL_INFO)
        names.append(MODEL_INFO)
    return sorted(names)


def publish(
    run: RunDir,
    repo_id: str,
    adapter_only: bool = False,
    license_id: str = "other",
    private: bool = True,
    api=None,
) -> Published:
    """Create (or reuse) the Hub repo and upload the staged files in one commit."""
    if "/" not in repo_id:
        raise PackageError(f"--hub {repo_id!r}: give the full repo id, e.g. my-org/my-model")
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = api or HfApi()
    config = yaml.safe_load(run.config.read_text(encoding="utf-8"))
    info = json.loads((run.model / MODEL_INFO).read_text(encoding="utf-8"))
    report = json.loads(run.eval_report.read_text()) if run.eval_report.is_file() else None
    with tempfile.TemporaryDirectory(prefix="llmship-publish-") as workdir:
        folder = Path(workdir)
        names = stage_files(run, adapter_only, folder)
        card = render_card(repo_id, config, info, report, license_id, adapter_only)
        (folder / "README.md").write_text(card, encoding="utf-8")
        names.append("README.md")
        try:
            api.create_repo(repo_id=repo_id, repo_type="model", private=private, exist_ok=True)
            commit = api.upload_folder(
                folder_path=str(folder),
                repo_id=repo_id,
                repo_type="model",
                commit_message=f"Upload from llmship run {run.run_id}",
            )
        except HfHubHTTPError as exc:
            raise PackageError(
                f"the Hub refused {repo_id}: {exc}; check HF_TOKEN has write "
                "access (huggingface-cli login)"
            ) from exc
    return Published(repo_id, tuple(sorted(names)), str(getattr(commit, "commit_url", commit)))
