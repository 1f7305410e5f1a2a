"""The decode step at static shapes, replayed from CUDA graphs on GPUs.

A decode step of a small model on a GPU is bound by kernel launches, not arithmetic: a
1B model launches a few hundred kernels per step, and eager PyTorch spends longer
issuing them than the GPU spends running them. A CUDA graph issues them all at once,
but replays fixed shapes and fixed memory. So the step runs over the first `b` cache
slots (b: the smallest batch bucket that holds every running slot; idle slots inside
compute a throw-away token at position 0) and attends over the first `s` positions (s:
the smallest span bucket past the longest row). One graph per (b, s) pair, captured
the first time it is needed and replayed after; the inputs are copied into static
buffers first. On CPU the same static step runs eagerly, which keeps its arithmetic
under test where no GPU is.
"""

from __future__ import annotations

import logging
import time

import torch

from llmship.engine.kv import SlotCache

log = logging.getLogger("llmship.engine")

SPAN_STEP = 256


def batch_buckets(max_batch: int) -> list[int]:
    """1, 2, 4, 8, 16, 32, then every 32 (and max_batch itself)."""
    sizes = [size for size in (1, 2, 4, 8, 16) if size < max_batch]
    sizes += range(32, max_batch, 32)
    return [*sizes, max_batch]


def span_buckets(max_len: int) -> list[int]:
    """Every SPAN_STEP positions up to max_len (and max_len itself)."""
    return [*range(SPAN_STEP, max_len, SPAN_STEP), max_len]


def _bucket(value: int, buckets: list[int]) -> int:
    return next(size for size in buckets if size >= value)


class DecodeStep:
    """Next-token logits for the running rows, at static shapes (graphs on CUDA)."""

    def __init__(self, model, cache: SlotCache, max_batch: int, graphs: bool):
        self.model, self.cache = model, cache
        self.device = cache.keys.device
        self.batches = batch_buckets(max_batch)
        self.spans = span_buckets(cache.max_len)
        self.ids = torch.zeros((max_batch, 1), dtype=torch.long, device=self.device)
        self.positions = torch.zeros((max_batch, 1), dtype=torch.long, device=self.device)
        self.rows = torch.arange(max_batch, device=self.device)
        self.graphs_enabled = graphs and self.device.type == "cuda"
        self._graphs: dict[tuple[int, int], tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}
        self._pool = None
        self.capture_seconds = 0.0

    def __call__(self, slots: list[int], tokens: list[int], positions: list[int]) -> torch.Tensor:
        """Logits [len(slots), vocab] for `tokens` at `positions` in `slots`."""
        rows = _bucket(max(slots) + 1, self.batches)
        span = _bucket(max(positions) + 1, self.spans)
        ids, places = [0] * rows, [0] * rows
        for slot, token, position in zip(slots, tokens, positions, strict=True):
            ids[slot], places[slot] = token, position
        self.ids[:rows, 0].copy_(torch.tensor(ids), non_blocking=True)
        self.positions[:rows, 0].copy_(torch.tensor(places), non_blocking=True)
        logits = self._run(rows, span)
        return logits[torch.tensor(slots, device=self.device)]

    def _run(self, rows: int, span: int) -> torch.Tensor:
        if not self.graphs_enabled:
            return self._forward(rows, span)
        entry = self._graphs.get((rows, span))
        if entry is None:
            try:
                entry = self._capture(rows, span)
            except Exception as exc:  # an unsupported model: stay correct, run eagerly
                log.warning("CUDA graphs off (capture failed: %s: %s)", type(exc).__name__, exc)
                self.graphs_enabled = False
                return self._forward(rows, span)
            self._graphs[(rows, span)] = entry
        graph, logits = entry
        graph.replay()
        return logits

    def _forward(self, rows: int, span: int) -> torch.Tensor:
        positions = self.positions[:rows]
        mask = self.cache.prepare_static(self.rows[:rows], positions, span)
        return self.model(
            input_ids=self.ids[:rows],
            position_ids=positions,
            attention_mask=mask,
            cache=self.cache,
            use_cache=True,
            logits_to_keep=1,
        ).logits[:, -1]

    def _capture(self, rows: int, span: int) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
        started = time.perf_counter()
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(2):  # warm up (lazy initialisation happens outside the graph)
                self._forward(rows, span)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
            logits = self._forward(rows, span)
        self.capture_seconds += time.perf_counter() - started
        log.info("captured the decode step for %d rows x %d positions", rows, span)
        return graph, logits
