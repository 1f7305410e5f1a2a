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


# Linears of one module that read the same input (attention's q/k/v, the MLP's gate/up):
# one product over their stacked weights costs less than one each. A decode step's
# products are a few rows each, where oneDNN's fixed cost per call is much of the time
# (2 cores, 1 row: the step 20% faster); the outputs are bitwise the same.
SIBLINGS = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))


def pack_linears(model: torch.nn.Module, batch_hint: int = 8) -> int:
    """Route every nn.Linear's forward through a prepacked oneDNN weight; return how many.

    The packed weights are a second copy (the originals stay for saving and merging), so
    this suits the small and mid-sized models that are served on CPU. Call under
    inference mode only: oneDNN tensors carry no autograd.
    """
    if not available(model):
        return 0
    grouped: set[int] = set()
    for module in model.modules():
        for names in SIBLINGS:
            group = [getattr(module, name, None) for name in names]
            if _fusable(group):
                _SharedProduct(group, batch_hint)
                grouped.update(id(linear) for linear in group)
    count = len(grouped)
    for module in model.modules():
        if type(module) is not torch.nn.Linear or id(module) in grouped:
            continue  # peft and quantized layers keep their own
        with torch.no_grad():
            packed = torch.ops.mkldnn._reorder_linear_weight(module.weight.detach(), batch_hint)
        module._llmship_packed = packed
        module.forward = types.MethodType(_packed_forward, module)
        count += 1
    log.info("prepacked %d linear layers for oneDNN (%d in shared products)", count, len(grouped))
    return count


def _packed_forward(self: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, self._llmship_packed, self.bias, "none", [], "")


def _fusable(group: list) -> bool:
    return (
        all(type(linear) is torch.nn.Linear for linear in group)
        and len({linear.in_features for linear in group}) == 1
        and len({linear.bias is None for linear in group}) == 1
    )


class _SharedProduct:
    """One prepacked product for sibling linears. The first of them called with an input
    computes every sibling's output; the others take theirs while that input is the same
    tensor (a sibling called with another input, or again, computes afresh)."""

    def __init__(self, linears: list[torch.nn.Linear], batch_hint: int):
        with torch.no_grad():
            weight = torch.cat([linear.weight.detach() for linear in linears])
            self.packed = torch.ops.mkldnn._reorder_linear_weight(weight, batch_hint)
            self.bias = (
                None
                if linears[0].bias is None
                else torch.cat([linear.bias.detach() for linear in linears])
            )
        self.sizes = [linear.out_features for linear in linears]
        self.input: torch.Tensor | None = None
        self.outputs: list[torch.Tensor | None] = []
        for index, linear in enumerate(linears):
            linear._llmship_shared = self
            linear.forward = types.MethodType(_shared_forward(index), linear)

    def output(self, index: int, x: torch.Tensor) -> torch.Tensor:
        if x is not self.input or self.outputs[index] is None:
            y = torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")
            self.input, self.outputs = x, list(y.split(self.sizes, dim=-1))
        out, self.outputs[index] = self.outputs[index], None
        if all(taken is None for taken in self.outputs):  # hold no activations between calls
            self.input, self.outputs = None, []
        return out


def _shared_forward(index: int):
    def forward(self: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
        return self._llmship_shared.output(index, x)

    return forward
