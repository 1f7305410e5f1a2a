"""Prefix caching: prompts that start alike reuse the keys and values of their common start.

Keys and values are kept in blocks of `block` tokens, in a pool of their own. A block is
named by a digest of every token up to its end (and of the adapter, so that a LoRA
adapter never reads another's keys), so a prompt's cached prefix is its longest run of
named blocks. At admission the engine copies those blocks into the request's slot (a
copy costs far less than the forward pass it replaces) and runs the forward over the
rest of the prompt only; after that forward, and when a request ends, the blocks it
filled are copied into the pool.

Why a pool and not the slots of finished requests: an idle slot is scratch space (the
static decode step writes a throw-away token into it, and the next request overwrites
it), while the pool keeps a shared system prompt reusable even while the request that
wrote it is still running, and it bounds its memory by itself. The least recently used
block goes first; a chain is touched from its end to its start, so a cached prefix
shortens from its end.
"""

from __future__ import annotations

import hashlib
from array import array
from collections import OrderedDict
from collections.abc import Sequence

import torch

from llmship.engine.kv import SlotCache

BLOCK = 16


class PrefixCache:
    """At most `tokens` tokens' keys and values, in blocks of `block`, reused by prefix."""

    def __init__(self, slots: SlotCache, tokens: int, block: int = BLOCK):
        if tokens < block:
            raise ValueError(f"a prefix cache of {tokens} tokens holds no {block}-token block")
        layers, _, heads, _, dim = slots.keys.shape
        size = (layers, tokens // block, heads, block, dim)
        self.slots, self.block, self.capacity = slots, block, tokens // block
        self.keys = torch.zeros(size, dtype=slots.keys.dtype, device=slots.keys.device)
        self.values = torch.zeros_like(self.keys)
        self._blocks: OrderedDict[bytes, int] = OrderedDict()  # name -> pool index, LRU first
        self._free = list(range(self.capacity))
        self.prompt_tokens = 0  # prompt tokens looked up
        self.hit_tokens = 0  # of those, tokens whose keys and values were copied, not computed

    @property
    def cached_tokens(self) -> int:
        return len(self._blocks) * self.block

    def names(self, tokens: Sequence[int], adapter: str | None = None) -> list[bytes]:
        """The name of each full block of `tokens`: a digest of all tokens up to its end."""
        chain = hashlib.blake2b(digest_size=16)
        chain.update(hashlib.blake2b((adapter or "").encode()).digest())  # fixed-length start
        names = []
        for end in range(self.block, len(tokens) + 1, self.block):
            chain.update(array("q", tokens[end - self.block : end]).tobytes())
            names.append(chain.copy().digest())
        return names

    def reuse(
        self, slot: int, tokens: Sequence[int], adapter: str | None = None
    ) -> tuple[int, list[bytes]]:
        """Copy the longest cached prefix of `tokens` into `slot`, leaving at least the last
        token to compute (its logits are needed); return its length and the block names."""
        names = self.names(tokens, adapter)
        found: list[int] = []
        for name in names[: (len(tokens) - 1) // self.block]:
            index = self._blocks.get(name)
            if index is None:
                break
            found.append(index)
        self._touch(names[: len(found)])
        self.prompt_tokens += len(tokens)
        self.hit_tokens += len(found) * self.block
        if found:
            length = len(found) * self.block
            index = torch.tensor(found, device=self.keys.device)
            for pool, cache in ((self.keys, self.slots.keys), (self.values, self.slots.values)):
                layers, _, heads, _, dim = pool.shape
                blocks = pool[:, index].transpose(1, 2)  # [layers, heads, found, block, dim]
                cache[:, slot, :, :length] = blocks.reshape(layers, heads, length, dim)
        return len(found) * self.block, names

    def keep(self, slot: int, names: list[bytes]) -> None:
        """Copy the blocks that `names` name from `slot` (which holds their keys and values)
        into the pool, where it lacks them, evicting the least recently used."""
        names = names[: self.capacity]
        self._touch(names)
        new = [(position, name) for position, name in enumerate(names) if name not in self._blocks]
        if not new:
            return
        targets = []
        for _, name in new:  # what is evicted is older than every block of this chain
            index = self._free.pop() if self._free else self._blocks.popitem(last=False)[1]
            self._blocks[name] = index
            targets.append(index)
        self._touch(names)
        length = (new[-1][0] + 1) * self.block
        sources = torch.tensor([position for position, _ in new], device=self.keys.device)
        targets_on = torch.tensor(targets, device=self.keys.device)
        for pool, cache in ((self.keys, self.slots.keys), (self.values, self.slots.values)):
            layers, _, heads, _, dim = pool.shape
            held = cache[:, slot, :, :length].reshape(layers, heads, -1, self.block, dim)
            pool[:, targets_on] = held.transpose(1, 2)[:, sources]

    def _touch(self, names: list[bytes]) -> None:
        """Mark as just used, the chain's start last (the most recently used)."""
        for name in reversed(names):
            if name in self._blocks:
                self._blocks.move_to_end(name)
