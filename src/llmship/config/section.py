"""The base of every config section, in its own module so per-stage modules can share it."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


class Section(BaseModel):
    """A config section: strict about unknown keys, re-validated on assignment.

    Validators are built on first use, not at import: building all of them takes about
    0.2 s, which every command (`--help` included) would pay at start."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, defer_build=True)


class NetworkSection(Section):
    """A section naming `subnets` and `security_groups` (a VPC): both or neither."""

    @model_validator(mode="after")
    def _both_or_neither(self):
        if bool(self.subnets) != bool(self.security_groups):
            raise ValueError("give both subnets and security_groups (or neither: no VPC)")
        return self


def section_type(annotation: Any) -> type[BaseModel] | None:
    """The section model a field holds, also when the file may leave the section out
    (`ModelConfig | None`); None for a plain value. Walkers of the schema (key hints,
    secret redaction, the commented template) use it to descend into sections."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        held = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = held[0] if len(held) == 1 else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None
