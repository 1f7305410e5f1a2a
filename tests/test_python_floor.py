"""The Python llmship says it needs (requires-python, and ruff's target-version, which
keeps the code to that version's syntax and standard library) is exactly the oldest one
that has every standard-library API the code calls."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
# Standard-library APIs newer than 3.10 -> the version that added them.
NEWER_APIS = {
    r"\bdatetime\.UTC\b|from datetime import [^\n]*\bUTC\b": (3, 11),
    r"\basyncio\.timeout(_at)?\(": (3, 11),
    r"\bimport tomllib\b": (3, 11),
    r"\basyncio\.TaskGroup\b|\bExceptionGroup\b|\bexcept\*": (3, 11),
    r"from (typing|enum) import [^\n]*\b(Self|StrEnum|LiteralString)\b": (3, 11),
    r"\bitertools\.batched\b|from itertools import [^\n]*\bbatched\b": (3, 12),
    r"from typing import [^\n]*\boverride\b|\btyping\.override\b": (3, 12),
}


def _needed() -> tuple[tuple[int, int], list[str]]:
    needed, where = (3, 10), []
    for path in sorted((ROOT / "src" / "llmship").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for pattern, version in NEWER_APIS.items():
            if re.search(pattern, text):
                where.append(f"{path.relative_to(ROOT)} uses {pattern} ({version})")
                needed = max(needed, version)
    return needed, where


def test_requires_python_is_the_oldest_version_with_every_api_the_code_uses():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (major, minor), where = _needed()
    allowed = SpecifierSet(project["project"]["requires-python"])
    assert f"{major}.{minor}" in allowed, where
    assert f"{major}.{minor - 1}" not in allowed, where
    assert project["tool"]["ruff"]["target-version"] == f"py{major}{minor}"
