"""Checkpoints that a run resumes from exactly: weights, optimizer, scheduler, data position, RNG.

Each checkpoint is written to a temporary directory and renamed when complete, so a
run killed mid-save (a spot interruption) resumes from the last whole checkpoint.
Under data-parallel training only global rank 0 writes (every rank holds the same
weights and optimizer state), and names are those of the model inside the DDP wrapper,
so a checkpoint resumes on any number of processes.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from llmship.errors import TrainError
from llmship.train.distributed import current_rank, unwrap

PREFIX = "step-"


@dataclass
class TrainState:
    """Where a run is: optimizer steps done, and the next micro-batch to read."""

    step: int = 0
    epoch: int = 0
    micro_batch: int = 0
    tokens_seen: int = 0
    total_steps: int = 0


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {
        name: param.detach().contiguous().cpu()
        for name, param in unwrap(model).named_parameters()
        if param.requires_grad
    }


def save_checkpoint(
    directory: Path, model, optimizer, scheduler, state: TrainState, keep: int
) -> Path:
    """Write checkpoint step-N and keep only the newest `keep` ones (rank 0 only)."""
    final = directory / f"{PREFIX}{state.step:07d}"
    if not current_rank().is_main:
        return final
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / f".{final.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    save_file(trainable_state(model), partial / "trainable.safetensors")
    torch.save(optimizer.state_dict(), partial / "optimizer.pt")
    torch.save(scheduler.state_dict(), partial / "scheduler.pt")
    rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    torch.save(rng, partial / "rng.pt")
    (partial / "state.json").write_text(json.dumps(asdict(state), indent=2))
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    for old in list_checkpoints(directory)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(directory: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    if not directory.is_dir():
        return []
    found = [p for p in directory.glob(f"{PREFIX}*") if (p / "state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name.removeprefix(PREFIX)))


def load_checkpoint(path: Path, model, optimizer, scheduler) -> TrainState:
    """Restore everything save_checkpoint wrote; the model must have the same trainable names."""
    weights = load_file(path / "trainable.safetensors")
    model = unwrap(model)
    expected = {name for name, p in model.named_parameters() if p.requires_grad}
    if set(weights) != expected:
        raise TrainError(
            f"checkpoint {path} does not match this model's trainable weights (was the method, "
            "LoRA rank or target_modules changed?); resume with the run's own config"
        )
    model.load_state_dict(weights, strict=False)
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
    rng = torch.load(path / "rng.pt", weights_only=False)
    torch.set_rng_state(rng["cpu"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return TrainState(**json.loads((path / "state.json").read_text()))
