"""Token-level loss: a sum and a count, so gradient accumulation weights tokens equally."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from llmship.data.formatting import IGNORE_INDEX


def targets(labels: torch.Tensor, kind: str) -> torch.Tensor:
    """The labels each logit predicts (causal models predict the next token)."""
    return labels[:, 1:] if kind == "causal" else labels


def count_targets(labels: torch.Tensor, kind: str) -> int:
    """Positions that carry loss."""
    return int((targets(labels, kind) != IGNORE_INDEX).sum())


def token_loss_sum(logits: torch.Tensor, labels: torch.Tensor, kind: str) -> torch.Tensor:
    """Summed cross-entropy over labelled positions, in float32."""
    if kind == "causal":
        logits = logits[:, :-1, :]
    return F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(),
        targets(labels, kind).reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
