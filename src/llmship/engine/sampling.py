"""Per-request sampling, with transformers' meaning for every parameter it shares: logit
bias, repetition penalty, no-repeat n-grams, min_new_tokens, OpenAI's presence and frequency
penalties, then temperature, top-k, top-p and typical-p, and a seed; plus a token constraint
(a grammar) that decides which tokens may come next.

The processors run in generate's order (its logits processors, the penalties it lacks
after its own, then its warpers), so a greedy answer equals generate's on the same model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import torch


class TokenConstraint(Protocol):
    """One request's grammar state: which tokens may come next, advanced token by token."""

    def allowed(self) -> torch.Tensor:
        """A bool mask over the vocabulary (True: may come next)."""
        ...

    def accept(self, token: int) -> None:
        """Advance past the token the engine chose."""
        ...

    def is_finished(self) -> bool:
        """The grammar is complete: the answer ends here (finish_reason "stop")."""
        ...


@dataclass(frozen=True)
class SamplingParams:
    """What one request asks for; every request in a batch may ask for something else."""

    max_new_tokens: int = 128
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    typical_p: float = 1.0
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0  # OpenAI's: minus this once for a token already generated
    frequency_penalty: float = 0.0  # OpenAI's: minus this times the token's generated count
    logit_bias: Mapping[int, float] = field(default_factory=dict)  # token id -> added bias
    min_new_tokens: int = 0  # EOS and stop sequences hold off until this many tokens
    no_repeat_ngram_size: int = 0
    do_sample: bool = False
    seed: int | None = None
    stop: tuple[str, ...] = field(default_factory=tuple)
    ignore_eos: bool = False
    logprobs: int | None = None  # None: none; k: the chosen token's and the k most likely
    # A fresh grammar state per request (n copies of one request each get their own).
    constraint: Callable[[], TokenConstraint] | None = None

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be at least 1")
        if self.temperature < 0 or self.top_p <= 0 or self.top_p > 1 or self.top_k < 0:
            raise ValueError("temperature must be >= 0, top_p in (0, 1], top_k >= 0")
        if self.repetition_penalty <= 0:
            raise ValueError("repetition_penalty must be > 0")
        if not 0 < self.typical_p <= 1:
            raise ValueError("typical_p must be in (0, 1]")
        if self.min_new_tokens < 0 or self.no_repeat_ngram_size < 0:
            raise ValueError("min_new_tokens and no_repeat_ngram_size must be >= 0")
        if self.logprobs is not None and self.logprobs < 0:
            raise ValueError("logprobs must be >= 0")

    @property
    def greedy(self) -> bool:
        return not self.do_sample or self.temperature == 0

    @property
    def processed(self) -> bool:
        """Whether any processor changes the logits (else greedy is one argmax)."""
        return bool(
            self.repetition_penalty != 1.0
            or self.presence_penalty
            or self.frequency_penalty
            or self.logit_bias
            or self.min_new_tokens
            or self.no_repeat_ngram_size
        )


@dataclass(frozen=True)
class TokenLogprob:
    """A generated token's log-probability under the model (the raw log-softmax, before
    temperature, penalties and constraints) and the `top` most likely tokens there."""

    token: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()


def token_logprob(logits: torch.Tensor, token: int, top: int) -> TokenLogprob:
    """The entry for `token` from its row of raw logits ([vocab])."""
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    best: tuple[tuple[int, float], ...] = ()
    if top:
        values, ids = torch.topk(logprobs, min(top, logprobs.numel()))
        best = tuple(zip(ids.tolist(), values.tolist(), strict=True))
    return TokenLogprob(token, float(logprobs[token]), best)


def penalize_repeats(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """transformers' rule: divide positive logits of seen tokens by the penalty, multiply
    negative ones."""
    if penalty == 1.0 or seen.numel() == 0:
        return logits
    picked = logits[seen]
    logits = logits.clone()
    logits[seen] = torch.where(picked > 0, picked / penalty, picked * penalty)
    return logits


def bias_logits(logits: torch.Tensor, bias: Mapping[int, float]) -> torch.Tensor:
    """OpenAI's logit_bias (transformers' sequence_bias of one-token sequences): add."""
    if not bias:
        return logits
    ids = torch.tensor(list(bias), device=logits.device)
    values = torch.tensor(list(bias.values()), dtype=logits.dtype, device=logits.device)
    return logits.index_add(0, ids, values)


def ban_repeated_ngrams(logits: torch.Tensor, history: list[int], size: int) -> torch.Tensor:
    """transformers' no_repeat_ngram_size: no n-gram of the prompt and answer occurs twice."""
    if size < 1 or len(history) < size:
        return logits
    prefix = tuple(history[len(history) - size + 1 :])
    banned = {
        history[start + size - 1]
        for start in range(len(history) - size + 1)
        if tuple(history[start : start + size - 1]) == prefix
    }
    if not banned:
        return logits
    return logits.index_fill(0, torch.tensor(sorted(banned), device=logits.device), -math.inf)


def hold_eos(
    logits: torch.Tensor, generated: int, minimum: int, eos_ids: Collection[int]
) -> torch.Tensor:
    """transformers' min_new_tokens: no EOS before `minimum` new tokens."""
    if generated >= minimum or not eos_ids:
        return logits
    return logits.index_fill(0, torch.tensor(sorted(eos_ids), device=logits.device), -math.inf)


def penalize_presence(
    logits: torch.Tensor, generated: list[int], presence: float, frequency: float
) -> torch.Tensor:
    """OpenAI's presence and frequency penalties over the tokens generated so far."""
    if not generated or not (presence or frequency):
        return logits
    counts = torch.bincount(
        torch.tensor(generated, device=logits.device), minlength=logits.numel()
    )[: logits.numel()].to(logits.dtype)
    return logits - counts * frequency - (counts > 0).to(logits.dtype) * presence


def typical(logits: torch.Tensor, mass: float) -> torch.Tensor:
    """transformers' typical_p (locally typical sampling, keeping at least one token)."""
    if mass >= 1.0:
        return logits
    normalized = torch.log_softmax(logits, dim=-1)
    entropy = -(normalized * normalized.exp()).nansum()
    shifted = (-normalized - entropy).abs()
    ordered, order = torch.sort(shifted)
    cumulative = logits[order].softmax(-1).cumsum(-1)
    last = min(int((cumulative < mass).sum()), ordered.numel() - 1)
    drop = ordered > ordered[last]
    drop[0] = False
    return logits.masked_fill(drop.scatter(0, order, drop), -math.inf)


def process(
    logits: torch.Tensor,
    params: SamplingParams,
    history: list[int],
    prompt_length: int,
    eos_ids: Collection[int] = (),
) -> torch.Tensor:
    """The logits processors over one row ([vocab]): `history` is the prompt and the answer
    so far, the answer starting at `prompt_length`."""
    generated = history[prompt_length:]
    logits = bias_logits(logits, params.logit_bias)
    if params.repetition_penalty != 1.0:
        seen = torch.tensor(history, device=logits.device)
        logits = penalize_repeats(logits, seen, params.repetition_penalty)
    logits = ban_repeated_ngrams(logits, history, params.no_repeat_ngram_size)
    logits = hold_eos(logits, len(generated), params.min_new_tokens, eos_ids)
    return penalize_presence(logits, generated, params.presence_penalty, params.frequency_penalty)


def warp(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """transformers' warpers for a sampled row: temperature, top-k, top-p, typical-p."""
    logits = logits / params.temperature
    if params.top_k and params.top_k < logits.numel():
        threshold = torch.topk(logits, params.top_k).values[-1]
        logits = logits.masked_fill(logits < threshold, -math.inf)
    if params.top_p < 1.0:
        ordered, order = torch.sort(logits, descending=True)
        cumulative = torch.softmax(ordered, dim=-1).cumsum(-1)
        drop = cumulative - torch.softmax(ordered, dim=-1) >= params.top_p
        logits = logits.clone()
        logits[order[drop]] = -math.inf
    return typical(logits, params.typical_p)


def choose(
    logits: torch.Tensor,
    params: SamplingParams,
    history: list[int],
    prompt_length: int,
    generator: torch.Generator | None,
    allowed: torch.Tensor | None = None,
    eos_ids: Collection[int] = (),
) -> int:
    """The next token for one request from its row of logits (float32, [vocab]); only
    `allowed` tokens (a bool mask) when a constraint gives one."""
    logits = process(logits, params, history, prompt_length, eos_ids)
    if allowed is not None:
        logits = logits.masked_fill(~allowed.to(logits.device), -math.inf)
    if params.greedy:
        return int(torch.argmax(logits))
    probabilities = torch.softmax(warp(logits, params), dim=-1)
    return int(torch.multinomial(probabilities, 1, generator=generator))
