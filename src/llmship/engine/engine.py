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
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import torch

from llmship.engine.cpu_linear import pack_linears
from llmship.engine.kv import KVShape, SlotCache
from llmship.engine.sampling import SamplingParams, choose

log = logging.getLogger("llmship.engine")
_DONE = object()


class QueueFull(RuntimeError):
    """The engine's waiting queue is full; the caller should retry later."""


@dataclass
class Output:
    """One piece of a request's answer: new text, and at the end why it finished."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None


class RequestHandle:
    """A submitted request: iterate its outputs (sync or async) or cancel it."""

    def __init__(self, request_id: int, prompt_ids: list[int], params: SamplingParams):
        self.id, self.prompt_ids, self.params = request_id, prompt_ids, params
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
        prefills_per_step: int = 2,
        max_waiting: int | None = None,
    ):
        self.model, self.tokenizer = model.eval(), tokenizer
        pack_linears(self.model, batch_hint=max_batch)
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.max_batch, self.max_len = max_batch, max_len
        # A bounded queue: past it, callers are told to come back (no unbounded memory).
        self.max_waiting = max_waiting if max_waiting is not None else 4 * max_batch
        self.prefills_per_step = prefills_per_step
        self.cache = SlotCache(
            KVShape.of(model.config), max_batch, max_len, self.dtype, self.device
        )
        eos = model.generation_config.eos_token_id
        if eos is None:
            eos = tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        self._waiting: deque[RequestHandle] = deque()
        self._running: dict[int, _Running] = {}
        self._free = list(range(max_batch))
        self._outbox = _Outbox()
        self._wake = threading.Condition()
        self._ids = itertools.count()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="llmship-engine", daemon=True)
        self._thread.start()

    # ---- public -----------------------------------------------------------------------
    def submit(self, prompt_ids: list[int], params: SamplingParams) -> RequestHandle:
        """Queue a request; it starts at the next step with a free slot."""
        if not prompt_ids:
            raise ValueError("the prompt is empty")
        if len(prompt_ids) + params.max_new_tokens > self.max_len:
            raise ValueError(
                f"prompt ({len(prompt_ids)} tokens) + max_new_tokens "
                f"({params.max_new_tokens}) exceeds the engine's {self.max_len}"
            )
        handle = RequestHandle(next(self._ids), list(prompt_ids), params)
        with self._wake:
            if len(self._waiting) >= self.max_waiting:
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
        for running in [r for r in self._running.values() if r.handle.cancelled.is_set()]:
            self._finish(running, "cancelled")
        budget = self.prefills_per_step if self._running else self.max_batch
        while budget and self._free:
            with self._wake:
                handle = self._waiting.popleft() if self._waiting else None
            if handle is None:
                break
            if handle.cancelled.is_set():
                self._outbox.put(handle, Output("", "cancelled", len(handle.prompt_ids), 0))
                self._outbox.put(handle, _DONE)
                continue
            self._prefill(handle)
            budget -= 1
        self._outbox.flush()  # first tokens go out now, not after the decode step
        if self._running:
            self._decode()

    def _prefill(self, handle: RequestHandle) -> None:
        slot = heapq.heappop(self._free)  # the lowest free slot keeps running rows in one run
        running = _Running(handle, slot, list(handle.prompt_ids))
        running.prefix_offset = running.read_offset = len(running.tokens)
        if handle.params.seed is not None:
            running.generator = torch.Generator(device=self.device).manual_seed(handle.params.seed)
        positions = torch.arange(len(running.tokens), device=self.device)[None]
        logits = self._forward([slot], [running.tokens], positions)
        self._running[slot] = running
        self._accept(running, self._choose([running], logits)[0])

    def _decode(self) -> None:
        batch = sorted(self._running.values(), key=lambda r: r.slot)
        positions = torch.tensor([[r.length - 1] for r in batch], device=self.device)
        logits = self._forward([r.slot for r in batch], [[r.tokens[-1]] for r in batch], positions)
        for running, token in zip(batch, self._choose(batch, logits), strict=True):
            self._accept(running, token)

    def _forward(self, slots: list[int], ids: list[list[int]], positions: torch.Tensor):
        """One forward pass of `ids` at `positions` in `slots`: the last position's logits."""
        mask = self.cache.prepare(torch.tensor(slots, device=self.device), positions)
        return self.model(
            input_ids=torch.tensor(ids, device=self.device),
            position_ids=positions,
            attention_mask=mask,
            past_key_values=self.cache,
            use_cache=True,
            logits_to_keep=1,
        ).logits[:, -1]

    def _choose(self, batch: list[_Running], logits: torch.Tensor) -> list[int]:
        """Next tokens: one argmax for every plain greedy row, per-row sampling for the rest."""
        tokens = torch.argmax(logits, dim=-1).tolist()
        for index, running in enumerate(batch):
            params = running.handle.params
            if not params.greedy or params.repetition_penalty != 1.0:
                seen = torch.tensor(running.tokens, device=logits.device)
                tokens[index] = choose(logits[index].float(), params, seen, running.generator)
        return tokens

    def _accept(self, running: _Running, token: int) -> None:
        params = running.handle.params
        running.tokens.append(token)
        running.generated.append(token)
        if token in self.eos_ids and not params.ignore_eos:
            running.tokens.pop()
            running.generated.pop()
            self._deliver(running, running.text + self._new_text(running, final=True))
            self._finish(running, "stop")
            return
        running.text += self._new_text(running)
        cut = _first_stop(running.text, params.stop)
        if cut is not None:
            self._deliver(running, running.text[:cut])
            self._finish(running, "stop")
        elif len(running.generated) >= params.max_new_tokens or running.length >= self.max_len:
            # An answer cut inside a multi-byte character ends as a whole decode would.
            running.text += self._new_text(running, final=True)
            self._deliver(running, running.text)
            self._finish(running, "length")
        else:
            self._deliver(
                running, running.text[: len(running.text) - _held_back(running.text, params.stop)]
            )

    def _new_text(self, running: _Running, final: bool = False) -> str:
        """Text the newest tokens add, decoding only a short window (not the whole answer);
        empty while they end inside a multi-byte character, unless this is the `final` text."""
        decode = self.tokenizer.decode
        before = decode(
            running.tokens[running.prefix_offset : running.read_offset], skip_special_tokens=True
        )
        after = decode(running.tokens[running.prefix_offset :], skip_special_tokens=True)
        if len(after) > len(before) and (final or not after.endswith("\ufffd")):
            running.prefix_offset, running.read_offset = running.read_offset, len(running.tokens)
            return after[len(before) :]
        return ""

    def _deliver(self, running: _Running, visible: str) -> None:
        if len(visible) > running.sent:
            self._outbox.put(running.handle, Output(visible[running.sent :]))
            running.sent = len(visible)

    def _finish(self, running: _Running, reason: str, error: str | None = None) -> None:
        if self._running.get(running.slot) is running:
            del self._running[running.slot]
            heapq.heappush(self._free, running.slot)
        self._outbox.put(
            running.handle,
            Output("", reason, len(running.handle.prompt_ids), len(running.generated), error),
        )
        self._outbox.put(running.handle, _DONE)


def _first_stop(text: str, stops: tuple[str, ...]) -> int | None:
    found = [text.find(stop) for stop in stops if stop and stop in text]
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
