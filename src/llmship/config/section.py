"""The base of every config section, in its own module so per-stage modules can share it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A config section: strict about unknown keys, re-validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
