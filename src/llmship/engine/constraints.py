"""JSON by constrained decoding: at every step only the tokens that keep the answer valid
JSON (any object, or one JSON schema) may come next, so a finished answer always parses.

    json_object(tokenizer) / json_schema(tokenizer, schema) ──► factory () -> Grammar
    Grammar: one request's parser state (allowed, accept, is_finished)
    allowed_rows(constraints, width, device) ──► a [batch, width] bool mask, one step

The grammar library is llguidance (a structured-output backend of vLLM, SGLang and
llama.cpp): one small wheel with no dependencies (xgrammar requires torch and brings
triton and tvm-ffi with it), a schema compiles in milliseconds into a lazy Earley
parser (outlines-core turns a schema into a regular expression, so recursive schemas
only to a fixed depth, and indexes the whole vocabulary per schema up front), and it
reads the Hugging Face tokenizer's own JSON, added tokens included: special tokens never
match text, only the end-of-sequence token ends an answer. Masks are bitmasks filled
on the CPU for the whole batch at once (in parallel threads) and unpacked wherever the
logits live, CPU or GPU.

JSON is written compact (`{"a":1}`, no optional whitespace), so a model can never spend
its tokens on spaces between values.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import llguidance
import torch

from llmship.engine.sampling import TokenConstraint

_OPTIONS: Any = {"whitespace_flexible": False}
_KEPT = 64  # compiled schemas kept per tokenizer
_BITS = torch.arange(32, dtype=torch.int32)


class GrammarError(ValueError):
    """The schema cannot be compiled into a grammar: the caller's request is wrong."""


class Grammar:
    """One request's place in its grammar, a TokenConstraint."""

    def __init__(self, matcher: llguidance.LLMatcher, vocab_size: int):
        self.matcher = matcher
        self.vocab_size = vocab_size

    def allowed(self) -> torch.Tensor:
        mask = torch.ones(1, self.vocab_size, dtype=torch.bool)
        _fill(mask, [(self, 0)])
        return mask[0]

    def accept(self, token: int) -> None:
        if not self.matcher.consume_token(token):
            raise ValueError(f"the grammar refused token {token}: {self.matcher.get_error()}")

    def is_finished(self) -> bool:
        return self.matcher.is_stopped()


class _Grammars:
    """One tokenizer's grammars: its llguidance view (built once) and a pristine parser per
    schema, copied for each request (a copy shares the compiled grammar)."""

    def __init__(self, tokenizer: Any):
        import llguidance.hf  # imports transformers: only once a grammar is asked for

        self.tokenizer = llguidance.hf.from_tokenizer(tokenizer)
        self._parsers: OrderedDict[str, llguidance.LLMatcher] = OrderedDict()
        self._lock = threading.Lock()

    def parser(self, schema: dict[str, Any]) -> llguidance.LLMatcher:
        key = json.dumps(schema)  # property order is the order answers follow
        with self._lock:
            if key in self._parsers:
                self._parsers.move_to_end(key)
                return self._parsers[key]
        try:
            grammar = llguidance.LLMatcher.grammar_from_json_schema(key, defaults=_OPTIONS)
        except ValueError as exc:
            raise GrammarError(f"the schema cannot be compiled: {exc}") from None
        parser = llguidance.LLMatcher(self.tokenizer, grammar, log_level=0)
        if parser.is_error():
            raise GrammarError(f"the schema cannot be compiled: {parser.get_error()}")
        with self._lock:
            self._parsers[key] = parser
            while len(self._parsers) > _KEPT:
                self._parsers.popitem(last=False)
        return parser


_GRAMMARS: weakref.WeakKeyDictionary[Any, _Grammars] = weakref.WeakKeyDictionary()
_GRAMMARS_LOCK = threading.Lock()


def _grammars(tokenizer: Any) -> _Grammars:
    with _GRAMMARS_LOCK:
        if tokenizer not in _GRAMMARS:
            _GRAMMARS[tokenizer] = _Grammars(tokenizer)
        return _GRAMMARS[tokenizer]


def json_schema(tokenizer: Any, schema: dict[str, Any]) -> Callable[[], Grammar]:
    """A factory of fresh parser states for answers that validate against `schema`
    (compiled now, so a schema the grammar cannot express fails here: GrammarError)."""
    grammars = _grammars(tokenizer)
    parser = grammars.parser(schema)
    vocab_size = grammars.tokenizer.vocab_size
    return lambda: Grammar(parser.deep_copy(), vocab_size)


def json_object(tokenizer: Any) -> Callable[[], Grammar]:
    """A factory of parser states for answers that are one JSON object (OpenAI's
    json_object response format)."""
    return json_schema(tokenizer, {"type": "object"})


@cache
def _executor() -> llguidance.LLExecutor:
    return llguidance.LLExecutor()


def allowed_rows(
    constraints: Sequence[TokenConstraint | None], width: int, device: torch.device
) -> torch.Tensor | None:
    """Each row's allowed next tokens as one [rows, width] bool mask on `device` (a row
    without a constraint allows every token), or None when no row has one. Grammars fill
    one bitmask together; ids past a constraint's vocabulary (a model's padded logits)
    are never allowed."""
    if all(constraint is None for constraint in constraints):
        return None
    mask = torch.ones(len(constraints), width, dtype=torch.bool, device=device)
    _fill(mask, [(c, i) for i, c in enumerate(constraints) if isinstance(c, Grammar)])
    for index, constraint in enumerate(constraints):
        if constraint is not None and not isinstance(constraint, Grammar):
            row = constraint.allowed()[:width].to(device)
            mask[index, : row.numel()] = row
            mask[index, row.numel() :] = False
    return mask


def _fill(mask: torch.Tensor, grammars: list[tuple[Grammar, int]]) -> None:
    """Write each grammar's allowed tokens into its row of `mask`: one bitmask per
    vocabulary size, filled on the CPU (in parallel for several rows), unpacked on the
    mask's device."""
    width, device = mask.shape[1], mask.device
    for vocab_size in {grammar.vocab_size for grammar, _ in grammars}:
        group = [(g.matcher, index) for g, index in grammars if g.vocab_size == vocab_size]
        words = torch.zeros(len(group), (vocab_size + 31) // 32, dtype=torch.int32)
        row_bytes = words.shape[1] * 4
        if len(group) == 1:
            group[0][0].unsafe_compute_mask_ptr(words.data_ptr(), row_bytes)
        else:
            numbered = [(matcher, row) for row, (matcher, _) in enumerate(group)]
            _executor().unsafe_compute_mask_ptr(numbered, words.data_ptr(), row_bytes, len(group))
        words = words.to(device)
        bits = ((words.unsqueeze(-1) >> _BITS.to(device)) & 1).flatten(1)[:, :width]
        if bits.shape[1] < width:  # logits past the tokenizer's vocabulary: never allowed
            bits = torch.cat([bits, bits.new_zeros(len(group), width - bits.shape[1])], 1)
        rows = torch.tensor([index for _, index in group], device=device)
        mask.index_copy_(0, rows, bits.bool())
