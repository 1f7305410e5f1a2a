"""The base of every config section, in its own module so per-stage modules can share it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, model_validator


class Section(BaseModel):
    """A config section: strict about unknown keys, re-validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class NetworkSection(Section):
    """A section naming `subnets` and `security_groups` (a VPC): both or neither."""

    @model_validator(mode="after")
    def _both_or_neither(self):
        if bool(self.subnets) != bool(self.security_groups):
            raise ValueError("give both subnets and security_groups (or neither: no VPC)")
        return self
