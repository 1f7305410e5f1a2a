"""Continuous batching: requests join and leave the running batch at every decode step.

One background thread owns the model. Each iteration it admits waiting requests into
free KV-cache slots (a bounded number of prefills per iteration, so running requests
are never stalled for long), then runs one decode step for every running request
together. Tokens stream out as text deltas; a request ends at EOS, max_new_tokens, a
stop sequence, the cache length, or when its caller cancels it.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from llmship.engine.attention import use_grouped_decode_attention
from llmship.engine.constraints import allowed_rows
from llmship.engine.cpu_linear import pack_linears
from llmship.engine.decode import DecodeStep
from llmship.engine.kv import KVShape, SlotCache
from llmship.engine.prefix_cache import PrefixCache
from llmship.engine.sampling import (
    SamplingParams,
    TokenConstraint,
    TokenLogprob,
    choose,
    token_logprob,
)

log = logging.getLogger("llmship.engine")
_DONE = object()


class QueueFull(RuntimeError):
    """The engine's waiting queue is full; the caller should retry later."""


class OverBudget(ValueError):
    """A request whose prompt plus max_new_tokens cannot fit in one KV-cache slot: refused
    at admission, so it never fails halfway through generating."""


@dataclass
class Output:
    """One piece of a request's answer: new text, and at the end why it finished."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    # SamplingParams.logprobs asked: the tokens generated since the previous piece
    logprobs: list[TokenLogprob] = field(default_factory=list)


class RequestHandle:
    """A submitted request: iterate its outputs (sync or async) or cancel it. Past its
    `deadline` (time.monotonic()) the engine ends it with finish_reason "timeout"."""

    def __init__(
        self,
        request_id: int,
        prompt_ids: list[int],
        params: SamplingParams,
        deadline: float | None = None,
    ):
        self.id, self.prompt_ids, self.params = request_id, prompt_ids, params
        self.deadline = deadline
        self.cancelled = threading.Event()
        self._queue: queue.Queue = queue.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._async_queue: asyncio.Queue | None = None
        try:
            self._loop = asyncio.get_running_loop()
            self._async_queue = asyncio.Queue()
        except RuntimeError:
            pass

    def cancel(self) -> None:
        """Stop generating; the slot is freed at the next step."""
        self.cancelled.set()

    def expired(self, now: float) -> bool:
        return self.deadline is not None and now >= self.deadline

    def __iter__(self):
        while (item := self._queue.get()) is not _DONE:
            yield item

    async def stream(self):
        while (item := await self._async_queue.get()) is not _DONE:
            yield item

    def result(self) -> Output:
        """The whole answer (blocking)."""
        return _join(list(self))

    async def aresult(self) -> Output:
        return _join([item async for item in self.stream()])


class _Outbox:
    """What a step produced, handed over once per event loop at the end of the step: one
    wake-up of the server's loop per step instead of one per token per request, so the
    loop and the engine thread fight less over the GIL and the CPU."""

    def __init__(self):
        self._by_loop: dict[asyncio.AbstractEventLoop, list[tuple[RequestHandle, Any]]] = {}

    def put(self, handle: RequestHandle, item: Any) -> None:
        if handle._loop is None:
            handle._queue.put(item)
        else:
            self._by_loop.setdefault(handle._loop, []).append((handle, item))

    def flush(self) -> None:
        for loop, items in self._by_loop.items():
            # A closed loop raises RuntimeError: nobody is listening any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_hand_over, items)
        self._by_loop = {}


def _hand_over(items: list[tuple[RequestHandle, Any]]) -> None:
    for handle, item in items:
        handle._async_queue.put_nowait(item)


def _join(outputs: list[Output]) -> Output:
    last = outputs[-1]
    return Output(
        "".join(o.text for o in outputs),
        last.finish_reason,
        last.prompt_tokens,
        last.completion_tokens,
        last.error,
        [entry for o in outputs for entry in o.logprobs],
    )


@dataclass
class _Running:
    handle: RequestHandle
    slot: int
    tokens: list[int]
    generated: list[int] = field(default_factory=list)
    text: str = ""  # the answer decoded so far
    sent: int = 0  # characters of text already delivered
    prefix_offset: int = 0  # incremental detokenization window (tokens)
    read_offset: int = 0
    generator: torch.Generator | None = None
    constraint: TokenConstraint | None = None
    logprobs: list[TokenLogprob] = field(default_factory=list)  # not yet delivered
    stop_from: int = 0  # characters of text before min_new_tokens: no stop sequence there

    @property
    def length(self) -> int:
        return len(self.tokens)


class Engine:
    """Continuous-batching generation over a transformers causal LM."""

    def __init__(
        self,
        model,
        tokenizer,
        max_batch: int = 16,
        max_len: int = 2048,
        prefills_per_step: int | None = None,
        max_waiting: int | None = None,
        max_prefill_tokens: int | None = None,
        static_decode: bool | None = None,
        cuda_graphs: bool = True,
        prefix_cache: bool = True,
        prefix_cache_tokens: int | None = None,
    ):
        self.model, self.tokenizer = model.eval(), tokenizer
        pack_linears(self.model, batch_hint=max_batch)
        use_grouped_decode_attention(self.model)
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        cuda = self.device.type == "cuda"
        self.max_batch, self.max_len = max_batch, max_len
        # A bounded queue: past it, callers are told to come back (no unbounded memory).
        self.max_waiting = max_waiting if max_waiting is not None else 4 * max_batch
        # Prefills per step while others decode: on a GPU as many as the token budget holds
        # (one padded forward for all), on a CPU two, so decoding rows never wait long.
        self.prefills_per_step = prefills_per_step or (max_batch if cuda else 2)
        self.max_prefill_tokens = max_prefill_tokens or (4096 if cuda else 8192)
        self.cache = SlotCache(
            KVShape.of(model.config), max_batch, max_len, self.dtype, self.device
        )
        # Prompts that share a start reuse its keys and values; by default the pool holds a
        # quarter of the slots' tokens (at least one slot's worth).
        self.prefix_cache = (
            PrefixCache(self.cache, prefix_cache_tokens or max(max_len, max_batch * max_len // 4))
            if prefix_cache
            else None
        )
        use_static = cuda if static_decode is None else static_decode
        self.decode_step = (
            DecodeStep(self.model, self.cache, max_batch, graphs=cuda_graphs)
            if use_static
            else None
        )
        eos = model.generation_config.eos_token_id
        if eos is None:
            eos = tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        self._decode_batch = batch_decoder(tokenizer)
        self._waiting: deque[RequestHandle] = deque()
        self._running: dict[int, _Running] = {}
        self._free = list(range(max_batch))
        self._outbox = _Outbox()
        self._wake = threading.Condition()
        self._ids = itertools.count()
        self._counts = {"refused": 0, "cancelled": 0, "timed_out": 0}
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="llmship-engine", daemon=True)
        self._thread.start()

    # ---- public -----------------------------------------------------------------------
    def submit(
        self, prompt_ids: list[int], params: SamplingParams, timeout_s: float | None = None
    ) -> RequestHandle:
        """Queue a request; it starts at the next step with a free slot. Refused at once
        (OverBudget) when it cannot fit in a slot, (QueueFull) when max_waiting wait already;
        ended with finish_reason "timeout" once `timeout_s` has passed, waiting or not."""
        if not prompt_ids:
            raise ValueError("the prompt is empty")
        needed = len(prompt_ids) + params.max_new_tokens
        if needed > self.max_len:
            raise OverBudget(
                f"the prompt ({len(prompt_ids)} tokens) + max_new_tokens "
                f"({params.max_new_tokens}) = {needed} tokens exceeds the engine's {self.max_len} "
                "(the tokens it holds per request, its KV-cache length); shorten the prompt or "
                f"ask for at most {max(self.max_len - len(prompt_ids), 0)} new tokens"
            )
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        handle = RequestHandle(next(self._ids), list(prompt_ids), params, deadline)
        with self._wake:
            if len(self._waiting) >= self.max_waiting:
                self._counts["refused"] += 1
                raise QueueFull(f"{len(self._waiting)} requests are already waiting")
            self._waiting.append(handle)
            self._wake.notify()
        return handle

    def stats(self) -> dict[str, int]:
        return {
            "running": len(self._running),
            "waiting": len(self._waiting),
            "free_slots": len(self._free),
        }

    def prefix_stats(self) -> dict[str, int]:
        """The prefix cache: tokens it holds and can hold, and since the start the prompt
        tokens looked up and those found cached (not computed); empty when it is off."""
        cache = self.prefix_cache
        if cache is None:
            return {}
        return {
            "cached_tokens": cache.cached_tokens,
            "capacity_tokens": cache.capacity * cache.block,
            "prompt_tokens": cache.prompt_tokens,
            "hit_tokens": cache.hit_tokens,
        }

    def counts(self) -> dict[str, int]:
        """Requests refused (queue full), cancelled and timed out since the start."""
        return dict(self._counts)

    def close(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout=30)

    # ---- the loop ---------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._stopping and not self._waiting and not self._running:
                    self._wake.wait()
                if self._stopping:
                    break
            try:
                with torch.inference_mode():
                    self._step()
            except Exception as exc:  # fail the requests in flight, keep the engine alive
                log.exception("engine step failed")
                for running in list(self._running.values()):
                    self._finish(running, "error", error=f"{type(exc).__name__}: {exc}")
            self._outbox.flush()
        for running in list(self._running.values()):
            self._finish(running, "abort")
        self._outbox.flush()

    def _step(self) -> None:
        now = time.monotonic()
        for running in list(self._running.values()):
            if running.handle.cancelled.is_set():
                self._finish(running, "cancelled")
            elif running.handle.expired(now):
                self._finish(running, "timeout")
        self._drop_abandoned(now)
        admitted = self._admit()
        if admitted:
            self._prefill(admitted)
        self._outbox.flush()  # first tokens go out now, not after the decode step
        if self._running:
            self._decode()

    def _drop_abandoned(self, now: float) -> None:
        """Take cancelled and timed-out requests out of the queue, so they never hold a
        place in it (nor a slot later) that a live request could use."""
        with self._wake:
            if not any(h.cancelled.is_set() or h.expired(now) for h in self._waiting):
                return
            kept: deque[RequestHandle] = deque()
            dropped: list[tuple[RequestHandle, str]] = []
            for handle in self._waiting:
                if handle.cancelled.is_set():
                    dropped.append((handle, "cancelled"))
                elif handle.expired(now):
                    dropped.append((handle, "timeout"))
                else:
                    kept.append(handle)
            self._waiting = kept
        for handle, reason in dropped:
            self._counts["timed_out" if reason == "timeout" else reason] += 1
            self._outbox.put(handle, Output("", reason, len(handle.prompt_ids), 0))
            self._outbox.put(handle, _DONE)

    def _admit(self) -> list[RequestHandle]:
        """Waiting requests to prefill now: within the free slots, the per-step count (none
        while idle) and the token budget (the first one always fits)."""
        limit = min(self.prefills_per_step if self._running else self.max_batch, len(self._free))
        admitted: list[RequestHandle] = []
        tokens = 0
        while len(admitted) < limit:
            with self._wake:
                handle = self._waiting[0] if self._waiting else None
                if handle is None:
                    break
                size = len(handle.prompt_ids)
                over = tokens + size > self.max_prefill_tokens
                if admitted and over and not handle.cancelled.is_set():
                    break
                self._waiting.popleft()
            if handle.cancelled.is_set():
                self._outbox.put(handle, Output("", "cancelled", size, 0))
                self._outbox.put(handle, _DONE)
                continue
            admitted.append(handle)
            tokens += size
        return admitted

    def _prefill(self, handles: list[RequestHandle]) -> None:
        """One forward for all admitted prompts, each from where its cached prefix ends (the
        prefix's keys and values are copied into its slot), left-padded to the longest. A
        pad token takes a position past its own prompt: its key and value land where the
        row's later tokens will overwrite them before anything reads them."""
        batch = []
        for handle in handles:
            slot = heapq.heappop(self._free)  # the lowest free slot keeps rows in one run
            running = _Running(handle, slot, list(handle.prompt_ids))
            running.prefix_offset = running.read_offset = running.length
            if handle.params.seed is not None:
                running.generator = torch.Generator(device=self.device).manual_seed(
                    handle.params.seed
                )
            if handle.params.constraint is not None:
                running.constraint = handle.params.constraint()
            batch.append(running)
        batch.sort(key=lambda running: running.slot)
        for running in batch:  # before the forward: if it fails, _loop fails these too
            self._running[running.slot] = running  # and gives their slots back
        cache = self.prefix_cache
        found = [(0, []) if cache is None else cache.reuse(r.slot, r.tokens) for r in batch]
        width = max(r.length - start for r, (start, _) in zip(batch, found, strict=True))
        ids, positions = [], []
        for running, (start, _) in zip(batch, found, strict=True):
            size = running.length
            pad = width - (size - start)
            ids.append([0] * pad + running.tokens[start:])
            # A mostly cached row beside a long new one can have more pads than positions
            # left in its slot: those share the slot's last position (never read either).
            pads = [min(place, self.max_len - 1) for place in range(size, size + pad)]
            positions.append([*pads, *range(start, size)])
        logits = self._forward(
            [running.slot for running in batch], ids, torch.tensor(positions, device=self.device)
        )
        if cache is not None:  # the prompts' keys and values, for requests that start alike
            for running, (_, names) in zip(batch, found, strict=True):
                cache.keep(running.slot, names)
        self._accept_all(batch, self._choose(batch, logits))

    def _decode(self) -> None:
        batch = sorted(self._running.values(), key=lambda r: r.slot)
        if self.decode_step is not None:
            logits = self.decode_step(
                [r.slot for r in batch],
                [r.tokens[-1] for r in batch],
                [r.length - 1 for r in batch],
            )
        else:
            positions = torch.tensor([[r.length - 1] for r in batch], device=self.device)
            logits = self._forward(
                [r.slot for r in batch], [[r.tokens[-1]] for r in batch], positions
            )
        self._accept_all(batch, self._choose(batch, logits))

    def _forward(self, slots: list[int], ids: list[list[int]], positions: torch.Tensor):
        """One forward pass of `ids` at `positions` in `slots`: the last position's logits."""
        mask = self.cache.prepare(torch.tensor(slots, device=self.device), positions)
        return self.model(
            input_ids=torch.tensor(ids, device=self.device),
            position_ids=positions,
            attention_mask=mask,
            cache=self.cache,
            use_cache=True,
            logits_to_keep=1,
        ).logits[:, -1]

    def _choose(self, batch: list[_Running], logits: torch.Tensor) -> list[int]:
        """Next tokens: one argmax for every plain greedy row, per-row processing and
        sampling for the rest; log-probabilities from the raw logits where asked."""
        tokens = torch.argmax(logits, dim=-1).tolist()
        constraints = [running.constraint for running in batch]
        masks = allowed_rows(constraints, logits.shape[-1], logits.device)  # all rows at once
        for index, running in enumerate(batch):
            params = running.handle.params
            constraint = running.constraint
            if not params.greedy or params.processed or constraint is not None:
                allowed = None if masks is None or constraint is None else masks[index]
                tokens[index] = choose(
                    logits[index].float(),
                    params,
                    running.tokens,
                    len(running.handle.prompt_ids),
                    running.generator,
                    allowed,
                    self.eos_ids,
                )
            ending = tokens[index] in self.eos_ids and not params.ignore_eos
            if params.logprobs is not None and not ending:  # EOS is no token of the answer
                running.logprobs.append(
                    token_logprob(logits[index], tokens[index], params.logprobs)
                )
        return tokens

    def _accept_all(self, batch: list[_Running], tokens: list[int]) -> None:
        """Add each row's new token, detokenizing every row's window in one batched call."""
        for running, token in zip(batch, tokens, strict=True):
            running.tokens.append(token)
            running.generated.append(token)
        windows = self._windows(batch)
        for running, window in zip(batch, windows, strict=True):
            self._accept(running, window)

    def _accept(self, running: _Running, window: tuple[str, str]) -> None:
        params = running.handle.params
        constraint = running.constraint
        if constraint is not None and running.tokens[-1] not in self.eos_ids:
            try:
                constraint.accept(running.tokens[-1])
            except ValueError as exc:  # a token the grammar refuses ends this request only
                self._finish(running, "error", f"the grammar refused a token: {exc}")
                return
            if constraint.is_finished():  # the grammar is complete: so is the answer
                piece = self._take(running, window, final=True)
                self._deliver(running, running.text + piece)
                self._finish(running, "stop")
                return
        if running.tokens[-1] in self.eos_ids and not params.ignore_eos:
            running.tokens.pop()
            running.generated.pop()
            tail = self._take(running, self._windows([running])[0], final=True)
            self._deliver(running, running.text + tail)
            self._finish(running, "stop")
            return
        piece = self._take(running, window)
        running.text += piece
        if len(running.generated) < params.min_new_tokens:
            running.stop_from = len(running.text)
        cut = _first_stop(running.text, params.stop, running.stop_from)
        if cut is not None:
            self._deliver(running, running.text[:cut])
            self._finish(running, "stop")
        elif len(running.generated) >= params.max_new_tokens or running.length >= self.max_len:
            if not piece:  # an answer cut inside a multi-byte character ends as a whole
                running.text += self._take(running, window, final=True)  # decode would
            self._deliver(running, running.text)
            self._finish(running, "length")
        else:
            self._deliver(
                running, running.text[: len(running.text) - _held_back(running.text, params.stop)]
            )

    def _windows(self, batch: list[_Running]) -> list[tuple[str, str]]:
        """Each row's incremental-detokenization window decoded without and with its newest
        tokens (a short window, never the whole answer)."""
        before = [r.tokens[r.prefix_offset : r.read_offset] for r in batch]
        after = [r.tokens[r.prefix_offset :] for r in batch]
        texts = self._decode_batch(before + after)
        return list(zip(texts[: len(batch)], texts[len(batch) :], strict=True))

    @staticmethod
    def _take(running: _Running, window: tuple[str, str], final: bool = False) -> str:
        """The text the newest tokens add; empty while they end inside a multi-byte
        character, unless this is the `final` text."""
        before, after = window
        if len(after) > len(before) and (final or not after.endswith("\ufffd")):
            running.prefix_offset, running.read_offset = running.read_offset, len(running.tokens)
            return after[len(before) :]
        return ""

    def _deliver(self, running: _Running, visible: str) -> None:
        if len(visible) > running.sent:
            self._outbox.put(
                running.handle, Output(visible[running.sent :], logprobs=running.logprobs)
            )
            running.sent, running.logprobs = len(visible), []

    def _finish(self, running: _Running, reason: str, error: str | None = None) -> None:
        if reason in ("cancelled", "timeout"):
            self._counts["timed_out" if reason == "timeout" else reason] += 1
        if self._running.get(running.slot) is running:
            cache = self.prefix_cache
            if cache is not None and reason not in ("error", "abort"):
                # What it wrote: every token's keys and values but the newest token's.
                cache.keep(running.slot, cache.names(running.tokens[: running.length - 1]))
            del self._running[running.slot]
            heapq.heappush(self._free, running.slot)
        self._outbox.put(
            running.handle,
            Output(
                "",
                reason,
                len(running.handle.prompt_ids),
                len(running.generated),
                error,
                running.logprobs,
            ),
        )
        self._outbox.put(running.handle, _DONE)


def batch_decoder(tokenizer) -> Callable[[list[list[int]]], list[str]]:
    """Decode many token lists: straight through the Rust tokenizer when the result equals
    transformers' decode (a fast tokenizer without clean-up of spaces), else through
    transformers. At 256 running rows the Python wrapper alone (about 25 us a call, against
    7 for the Rust call) costs milliseconds per step. (The Rust batch call was slower
    still for these one- or two-token windows: its thread pool costs more than it saves.)"""
    backend = getattr(tokenizer, "_tokenizer", None)
    if hasattr(backend, "decode") and not getattr(tokenizer, "clean_up_tokenization_spaces", False):
        decode = backend.decode
    else:
        decode = tokenizer.decode
    return lambda sequences: [decode(s, skip_special_tokens=True) for s in sequences]


def _first_stop(text: str, stops: tuple[str, ...], start: int = 0) -> int | None:
    found = [text.find(stop, start) for stop in stops if stop and stop in text[start:]]
    return min(found) if found else None


def _held_back(text: str, stops: tuple[str, ...]) -> int:
    """Characters at the end that could still become a stop sequence."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:size]):
                longest = max(longest, size)
                break
    return longest
