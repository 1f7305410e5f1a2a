"""Batches for training: seeded order per epoch, padding, and optional packing.

Packing concatenates several causal examples into one sequence with position ids that
restart at each example, and nothing crosses from one example to the next: attention
stays inside each example (`packed_attention`) and the first token of an example is never
a target predicted from the one before it (`pack_examples`).
"""

from __future__ import annotations

import random
from functools import cache

import torch

from llmship.data.formatting import IGNORE_INDEX

Example = dict[str, list[int]]


def pack_examples(examples: list[Example], max_length: int) -> list[Example]:
    """Greedy packing in order: each pack holds whole examples, at most max_length tokens."""
    packs: list[Example] = []
    current: Example = {"input_ids": [], "labels": [], "position_ids": []}
    for example in examples:
        size = len(example["input_ids"])
        if current["input_ids"] and len(current["input_ids"]) + size > max_length:
            packs.append(current)
            current = {"input_ids": [], "labels": [], "position_ids": []}
        current["input_ids"] += example["input_ids"]
        # Unpacked, an example's first token is never a target; packed, it would be
        # predicted from the previous example's last token.
        current["labels"] += [IGNORE_INDEX, *example["labels"][1:]]
        current["position_ids"] += list(range(size))
    if current["input_ids"]:
        packs.append(current)
    return packs


def epoch_batches(
    examples: list[Example],
    batch_size: int,
    seed: int,
    epoch: int,
    packing: bool = False,
    max_length: int = 0,
) -> list[list[Example]]:
    """The micro-batches of one epoch; the same seed and epoch give the same batches."""
    order = list(range(len(examples)))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    items = [examples[i] for i in order]
    if packing:
        items = pack_examples(items, max_length)
    return [items[i : i + batch_size] for i in range(0, len(items), batch_size)]


def collate(
    batch: list[Example], pad_id: int, kind: str, width: int | None = None
) -> dict[str, torch.Tensor]:
    """Right-padded tensors (to `width` if given: one shape for a compiled model); packed
    batches get position_ids instead of an attention mask."""
    width = max(width or 0, *(len(example["input_ids"]) for example in batch))
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    packed = "position_ids" in batch[0]
    label_width = max(len(example["labels"]) for example in batch) if kind == "seq2seq" else width
    labels = torch.full((len(batch), label_width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    positions = torch.zeros((len(batch), width), dtype=torch.long)
    for row, example in enumerate(batch):
        size = len(example["input_ids"])
        input_ids[row, :size] = torch.tensor(example["input_ids"])
        labels[row, : len(example["labels"])] = torch.tensor(example["labels"])
        mask[row, :size] = 1
        if packed:
            # Padding forms a segment of its own, so real tokens never attend to it.
            positions[row, :size] = torch.tensor(example["position_ids"])
            positions[row, size:] = torch.arange(width - size)
    if packed:
        return {"input_ids": input_ids, "labels": labels, "position_ids": positions}
    return {"input_ids": input_ids, "labels": labels, "attention_mask": mask}


def packed_attention(position_ids: torch.Tensor, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """What a packed batch gives the model so that attention stays inside each example.

    transformers 4.53 and later find the examples from position_ids alone (a position that
    does not follow the previous one starts a new example) and build the matching mask for
    each attention kernel (a block-diagonal mask for sdpa/eager, a BlockMask for flex
    attention, varlen offsets for flash attention). Older versions, pinned by some
    training containers, would attend across the whole row: for them this adds the
    block-diagonal causal mask explicitly, as the 4D additive mask they accept.
    """
    if _transformers_finds_packed_examples():
        return {"position_ids": position_ids}
    return {"position_ids": position_ids, "attention_mask": block_causal_mask(position_ids, dtype)}


def block_causal_mask(position_ids: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive mask [batch, 1, seq, seq]: 0 where a token may attend (itself and earlier
    tokens of its own example), the dtype's minimum elsewhere."""
    starts = torch.ones_like(position_ids, dtype=torch.bool)
    starts[:, 1:] = position_ids[:, 1:] != position_ids[:, :-1] + 1
    example = starts.cumsum(-1)
    same = example.unsqueeze(-1) == example.unsqueeze(-2)
    seq = position_ids.size(-1)
    causal = torch.ones(seq, seq, dtype=torch.bool, device=position_ids.device).tril()
    allowed = (same & causal).unsqueeze(1)
    mask = torch.zeros(allowed.shape, dtype=dtype, device=position_ids.device)
    return mask.masked_fill_(~allowed, torch.finfo(dtype).min)


@cache
def _transformers_finds_packed_examples() -> bool:
    try:
        from transformers.masking_utils import find_packed_sequence_indices  # noqa: F401
    except ImportError:
        return False
    return True
