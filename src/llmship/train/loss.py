"""Token-level loss: a sum and a count, so gradient accumulation weights tokens equally.

Two ways to the same number. `token_loss_sum` takes the model's logits. With a 128k
vocabulary those logits dominate training memory (8 x 1024 tokens x 128,256 x 4 bytes is
4.2 GB in float32, plus their gradient), so for causal LMs the loop hands the last hidden
states to `linear_cross_entropy_sum`, which runs the output layer and the cross-entropy a
chunk of tokens at a time, only on the positions that carry a label, and never holds more
than one chunk of logits.
"""

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


def causal_loss_sum(
    hidden: torch.Tensor, head: torch.nn.Linear, labels: torch.Tensor, chunk_tokens: int
) -> torch.Tensor:
    """token_loss_sum of a causal LM from its last hidden states [batch, seq, hidden] and its
    output layer, without the full logits (see linear_cross_entropy_sum)."""
    wanted = targets(labels, "causal")
    keep = wanted != IGNORE_INDEX
    return linear_cross_entropy_sum(
        hidden[:, :-1][keep], head.weight, head.bias, wanted[keep], chunk_tokens
    )


def linear_cross_entropy_sum(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    target: torch.Tensor,
    chunk_tokens: int = 1024,
) -> torch.Tensor:
    """sum(cross_entropy(hidden @ weight.T + bias, target)) for hidden [tokens, dim], computed
    `chunk_tokens` rows at a time; the logits live one chunk at a time, in float32."""
    wants_grad = torch.is_grad_enabled() and (
        hidden.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
    )
    return _ChunkedLinearCrossEntropy.apply(
        hidden, weight, bias, target, max(1, chunk_tokens), wants_grad
    )


class _ChunkedLinearCrossEntropy(torch.autograd.Function):
    """Output layer + cross-entropy by chunks, gradients computed chunk by chunk.

    The gradient of the summed loss with respect to a chunk's logits is softmax - onehot,
    known as soon as the chunk's logits are: so the forward pass turns it into the
    gradients of hidden (and of weight and bias when they train) right away and drops the
    logits, and backward only scales them by the incoming gradient. Peak memory is one
    chunk of logits, as with recomputing them in backward, for one matmul over the
    vocabulary less (the idea of Liger Kernel's fused linear cross-entropy, in plain torch).
    Matmuls run in the ambient autocast dtype, as the model's own output layer would.
    """

    @staticmethod
    def forward(ctx, hidden, weight, bias, target, chunk_tokens, wants_grad):
        grads = {}
        if wants_grad:
            if ctx.needs_input_grad[0]:
                grads["hidden"] = torch.empty_like(hidden)
            if ctx.needs_input_grad[1]:
                grads["weight"] = torch.zeros_like(weight, dtype=torch.float32)
            if bias is not None and ctx.needs_input_grad[2]:
                grads["bias"] = torch.zeros_like(bias, dtype=torch.float32)
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.size(0), chunk_tokens):
            rows = hidden[start : start + chunk_tokens]
            wanted = target[start : start + chunk_tokens]
            logits = F.linear(rows, weight, bias)
            dtype = logits.dtype  # the output layer's compute dtype (autocast's, if on)
            logits = logits.float()
            norm = torch.logsumexp(logits, dim=-1)
            picked = logits.gather(1, wanted.unsqueeze(1)).squeeze(1)
            total += (norm - picked).sum()
            if not grads:
                continue
            # softmax - onehot, in place over the chunk's logits.
            probs = logits.sub_(norm.unsqueeze(1)).exp_()
            probs[torch.arange(len(wanted), device=probs.device), wanted] -= 1.0
            if "bias" in grads:
                grads["bias"] += probs.sum(0)
            probs = probs.to(dtype)
            if "hidden" in grads:
                grads["hidden"][start : start + chunk_tokens] = probs @ weight.to(dtype)
            if "weight" in grads:
                grads["weight"] += probs.t() @ rows.to(dtype)
        ctx.grads = grads
        ctx.dtypes = (weight.dtype, bias.dtype if bias is not None else None)
        return total

    @staticmethod
    def backward(ctx, grad_total):
        grads = ctx.grads
        del ctx.grads
        scale = grad_total.float()
        hidden = grads.get("hidden")
        weight = grads.get("weight")
        bias = grads.get("bias")
        if hidden is not None:
            hidden = hidden * scale.to(hidden.dtype)
        if weight is not None:
            weight = (weight * scale).to(ctx.dtypes[0])
        if bias is not None:
            bias = (bias * scale).to(ctx.dtypes[1])
        return hidden, weight, bias, None, None, None
