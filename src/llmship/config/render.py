"""Write a config as YAML with each field's help text as the comment above it."""

from __future__ import annotations

import textwrap
from typing import Any

import yaml
from pydantic import BaseModel

from llmship.config.schema import LlmshipConfig
from llmship.config.section import section_type


def render_commented(values: dict[str, Any], model: type[BaseModel] = LlmshipConfig) -> str:
    """YAML for `values` (a full config tree), documented from the schema."""
    return "\n".join(_render_section(values, model, indent=0)) + "\n"


def _render_section(values: dict[str, Any], model: type[BaseModel], indent: int) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    for name, info in model.model_fields.items():
        if name not in values:
            continue
        value = values[name]
        section = section_type(info.annotation)
        is_section = section is not None and isinstance(value, dict)
        if is_section and indent == 0 and out:
            out.append("")
        for line in textwrap.wrap(info.description or "", width=88 - indent - 2):
            out.append(f"{pad}# {line}")
        if is_section:
            out.append(f"{pad}{name}:")
            out.extend(_render_section(value, section, indent + 2))
        else:
            out.append(f"{pad}{name}: {_scalar(value)}")
    return out


def _scalar(value: Any) -> str:
    if isinstance(value, str) and "\n" in value:
        return yaml.safe_dump(value, default_style='"').strip()
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()
