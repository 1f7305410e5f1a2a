"""Token counts for quotas and usage when a target does not report them.

Targets' own usage fields win (llmship serve's OpenAI routes and Bedrock's Converse
report them). Otherwise the route's tokenizer.json counts, through the `tokenizers`
library (Rust, no torch). A route with no tokenizer falls back to one token per four
characters, the usual rule of thumb for English, and the request log marks nothing
different: set the route's tokenizer for exact quotas.
"""

from __future__ import annotations

import math
import threading
from functools import lru_cache
from pathlib import Path

from llmship.errors import DeployError

_lock = threading.Lock()


def tokenizer_file(path: str | Path) -> Path:
    """The tokenizer.json at `path` (a file, or a directory holding one)."""
    path = Path(path)
    candidate = path / "tokenizer.json" if path.is_dir() else path
    if not candidate.is_file():
        raise DeployError(
            f"gateway.routes.*.tokenizer: no tokenizer.json at {path}; give the file or the "
            "model directory that holds it"
        )
    return candidate


@lru_cache(maxsize=16)
def _load(path: str):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(path)


class TokenCounter:
    """Counts tokens of text with one tokenizer.json, or estimates without one."""

    def __init__(self, path: str | Path | None = None):
        self.path = str(tokenizer_file(path)) if path else None

    def count(self, text: str) -> int:
        if not text:
            return 0
        if self.path is None:
            return math.ceil(len(text) / 4)
        with _lock:
            tokenizer = _load(self.path)
        return len(tokenizer.encode(text, add_special_tokens=False).ids)
