"""Batches for training: seeded order per epoch, padding, and optional packing.

Packing concatenates several causal examples into one sequence with position ids that
restart at each example and no attention mask; transformers then builds a block-diagonal
causal mask from the position ids, so attention never crosses examples.
"""

from __future__ import annotations

import random

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
        current["labels"] += example["labels"]
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


def collate(batch: list[Example], pad_id: int, kind: str) -> dict[str, torch.Tensor]:
    """Right-padded tensors; packed batches get position_ids instead of an attention mask."""
    width = max(len(example["input_ids"]) for example in batch)
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
