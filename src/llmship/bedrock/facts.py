"""What llmship knows about Bedrock, read from one table (data/bedrock.json) with its
sources and the date it was read: base models (regions, hyperparameter ranges, dataset
limits, hosting options and prices) and what Custom Model Import accepts.

Facts change; keeping them in data means a new limit or price is a one-line edit with
its source beside it. A price AWS does not publish in a form we could read is null,
and every message that needs it says it is unknown and where to look.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from llmship.errors import DeployError

TABLE = "bedrock.json"


@cache
def table() -> dict[str, Any]:
    """The whole table, parsed once."""
    text = resources.files("llmship.bedrock").joinpath("data", TABLE).read_text("utf-8")
    return json.loads(text)


def source(topic: str) -> str:
    """`<url> (read <date>)` for a topic of the table."""
    data = table()
    return f"{data['sources'][topic]} (read {data['retrieved']})"


@dataclass(frozen=True)
class Range:
    """One hyperparameter's allowed values."""

    kind: str  # int | float
    min: float
    max: float
    default: float


@dataclass(frozen=True)
class BaseModel:
    """A Bedrock base model llmship can fine-tune."""

    model_id: str
    name: str
    regions: tuple[str, ...]
    hyperparameters: dict[str, Range]
    limits: dict[str, int | None]
    on_demand_deployment: bool
    commitments: tuple[str, ...]
    hourly_usd_per_model_unit: dict[str, float | None]


def base_model(model_id: str) -> BaseModel:
    """The table's entry for `model_id`, or a DeployError listing the known ones."""
    models = table()["base_models"]
    if model_id not in models:
        raise DeployError(
            f"bedrock.base_model_id: {model_id!r} is not in llmship's Bedrock table "
            f"({source('hyperparameters')}); known: {', '.join(sorted(models))}"
        )
    entry = models[model_id]
    pt = entry["provisioned_throughput"]
    return BaseModel(
        model_id=model_id,
        name=entry["name"],
        regions=tuple(entry["regions"]),
        hyperparameters={
            name: Range(v["type"], v["min"], v["max"], v["default"])
            for name, v in entry["hyperparameters"].items()
        },
        limits=dict(entry["limits"]),
        on_demand_deployment=bool(entry["on_demand_deployment"]),
        commitments=tuple(pt["commitments"]),
        hourly_usd_per_model_unit=dict(pt["hourly_usd_per_model_unit"]),
    )


def import_facts() -> dict[str, Any]:
    """What Custom Model Import accepts: regions, architectures, files, price."""
    return table()["custom_model_import"]


def characters_per_token() -> int:
    """Bedrock's character quota per record is the token quota times this."""
    return int(table()["characters_per_token_quota"])
