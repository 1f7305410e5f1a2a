"""Faster linear layers for batched decoding on CPU: oneDNN with prepacked weights.

A decode step multiplies a few rows (one per running request) by every weight matrix.
PyTorch's default fp32 CPU path (MKL sgemm) handles such short, wide products poorly:
on a 2-core AVX2 CPU a batch of 8 rows costs about twice a single row, although both
read the same weights. oneDNN with weights reordered once into its blocked layout keeps
the batch of 8 much closer to the cost of one row, and threads better, which is what
continuous batching needs. Only inference uses the packed copy; the module's own weight
is left in place for everything else (saving, merging, hub code).
"""

from __future__ import annotations

import logging
import os
import types

import torch

log = logging.getLogger("llmship.engine")

DISABLE_VARIABLE = "LLMSHIP_CPU_PACKED_LINEAR"


def available(model: torch.nn.Module) -> bool:
    """Whether prepacked oneDNN linears apply: an fp32 model on CPU with oneDNN built in."""
    parameter = next(model.parameters())
    return (
        os.environ.get(DISABLE_VARIABLE, "1") != "0"
        and parameter.device.type == "cpu"
        and parameter.dtype == torch.float32
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
        and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
    )


def pack_linears(model: torch.nn.Module, batch_hint: int = 8) -> int:
    """Route every nn.Linear's forward through a prepacked oneDNN weight; return how many.

    The packed weights are a second copy (the originals stay for saving and merging), so
    this suits the small and mid-sized models that are served on CPU. Call under
    inference mode only: oneDNN tensors carry no autograd.
    """
    if not available(model):
        return 0
    count = 0
    for module in model.modules():
        if type(module) is not torch.nn.Linear:  # peft and quantized layers keep their own
            continue
        with torch.no_grad():
            packed = torch.ops.mkldnn._reorder_linear_weight(module.weight.detach(), batch_hint)
        module._llmship_packed = packed
        module.forward = types.MethodType(_packed_forward, module)
        count += 1
    log.info("prepacked %d linear layers for oneDNN", count)
    return count


def _packed_forward(self: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, self._llmship_packed, self.bias, "none", [], "")
