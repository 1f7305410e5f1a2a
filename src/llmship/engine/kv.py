"""A KV cache preallocated once: one slot per running request, written in place.

Shaped [layers, slots, kv_heads, max_len, head_dim] for keys and for values. A forward
pass names the slots it runs (`rows`) and the position of each new token
(`positions`); attention reads each row's own slot up to the longest live length, and
a 4-D mask hides what lies beyond each row's own length. It speaks the small part of
transformers' Cache interface that decoder models call: update(key, value, layer_idx).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class KVShape:
    layers: int
    kv_heads: int
    head_dim: int

    @classmethod
    def of(cls, config) -> KVShape:
        heads = config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        return cls(
            config.num_hidden_layers, getattr(config, "num_key_value_heads", heads), head_dim
        )


class SlotCache:
    """Preallocated keys and values for `slots` sequences of up to `max_len` tokens."""

    def __init__(
        self, shape: KVShape, slots: int, max_len: int, dtype: torch.dtype, device: torch.device
    ):
        size = (shape.layers, slots, shape.kv_heads, max_len, shape.head_dim)
        self.keys = torch.zeros(size, dtype=dtype, device=device)
        self.values = torch.zeros(size, dtype=dtype, device=device)
        self.slots, self.max_len = slots, max_len
        self.rows = torch.zeros(0, dtype=torch.long, device=device)
        self.positions = torch.zeros((0, 0), dtype=torch.long, device=device)
        self.span = 0
        self.block: slice | None = None  # rows that are one run of slots: read without copying
        self.columns = torch.arange(max_len, device=device)

    def prepare(self, rows: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Set up the next forward pass; return its 4-D boolean attention mask. `rows` in
        ascending slot order that form one run (the usual case) are read as a view."""
        self.rows, self.positions = rows, positions
        self.span = int(positions.max()) + 1
        first, count = int(rows[0]), rows.numel()
        self.block = (
            slice(first, first + count)
            if int(rows[-1]) - first == count - 1 and bool((rows.diff() == 1).all())
            else None
        )
        return self._mask(positions)

    def prepare_static(
        self, rows: torch.Tensor, positions: torch.Tensor, span: int
    ) -> torch.Tensor:
        """As prepare(), for rows 0..len(rows)-1 over a given span, without reading any
        tensor back to the host (so the step can be captured in a CUDA graph)."""
        self.rows, self.positions, self.span = rows, positions, span
        self.block = slice(0, rows.numel())
        return self._mask(positions)

    def _mask(self, positions: torch.Tensor) -> torch.Tensor:
        # Row r's query at position p sees columns 0..p of its own slot, nothing else.
        columns = self.columns[: self.span]
        return columns[None, None, None, :] <= positions[:, None, :, None]

    def update(self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, *_, **__):
        """Write the new tokens' keys and values; return each row's keys and values so far."""
        rows = self.rows[:, None].expand_as(self.positions)
        self.keys[layer_idx][rows, :, self.positions] = key.transpose(1, 2).to(self.keys.dtype)
        self.values[layer_idx][rows, :, self.positions] = value.transpose(1, 2).to(
            self.values.dtype
        )
        rows = self.block if self.block is not None else self.rows
        return (
            self.keys[layer_idx][rows, :, : self.span],
            self.values[layer_idx][rows, :, : self.span],
        )

    # What the model may ask of a cache besides update().
    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.span

    def __len__(self) -> int:
        return self.keys.shape[0]
