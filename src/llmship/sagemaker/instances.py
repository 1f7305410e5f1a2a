"""SageMaker inference instance types (GPUs, GPU memory, vCPU, RAM, list price per region)
and a GPU-aware recommendation that says why it chose.

The table is data/instances.json, with its source and date: on-demand list prices
change, so every price shown carries that date. Sizing, stated once:

    weights  = params x dtype_bytes
    kv cache = 2 (K and V) x layers x kv_heads x head_dim x dtype_bytes x context x concurrency
    needed per GPU = (weights + kv cache) x 1.2 / tensor_parallel + 1 GiB
                     (20% for activations and fragmentation, 1 GiB for the CUDA context)
    usable per GPU = 90% of its memory

The smallest tensor-parallel degree (1, 2, 4, 8, within the instance's GPUs) that fits
is taken, then the cheapest fitting instance in the region, under the hourly budget if
one is given. CPU instances (gpu=False) size the same numbers against 90% of RAM.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from llmship.errors import DeployError

GIB = 1024**3
OVERHEAD_FACTOR = 1.2
OVERHEAD_GIB = 1.0
USABLE = 0.9
TP_DEGREES = (1, 2, 4, 8)


@dataclass(frozen=True)
class InstanceType:
    """One instance type; gpu_memory_gib is per GPU, prices are USD per hour by region."""

    name: str
    gpus: int
    gpu: str | None
    gpu_memory_gib: float
    vcpus: int
    memory_gib: float
    prices: dict[str, float]

    def describe(self) -> str:
        if not self.gpus:
            return f"{self.name} ({self.vcpus} vCPU, {self.memory_gib:g} GiB RAM)"
        return f"{self.name} ({self.gpus} x {self.gpu} {self.gpu_memory_gib:g} GiB)"


@dataclass(frozen=True)
class Recommendation:
    """The chosen instance, its tensor-parallel degree, the memory needed and why."""

    instance: InstanceType
    tensor_parallel: int
    needed_gib: float
    hourly_usd: float | None
    reason: str


@cache
def _data() -> dict[str, Any]:
    table = resources.files("llmship.sagemaker").joinpath("data/instances.json")
    return json.loads(table.read_text())


@cache
def _table() -> dict[str, InstanceType]:
    return {
        name: InstanceType(
            name=name,
            gpus=row["gpus"],
            gpu=row["gpu"],
            gpu_memory_gib=float(row["gpu_memory_gib"]),
            vcpus=row["vcpus"],
            memory_gib=float(row["memory_gib"]),
            prices=dict(row["prices"]),
        )
        for name, row in _data()["instances"].items()
    }


def price_source() -> str:
    """Where the prices come from and their date, for anything that shows a price."""
    return f"on-demand list prices as of {_data()['source']['as_of']}; they may change"


def instance_type(name: str) -> InstanceType:
    """The facts of one instance type; DeployError suggests close names for a typo."""
    table = _table()
    if name in table:
        return table[name]
    close = difflib.get_close_matches(name, table, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise DeployError(
        f"instance type {name!r} is not in llmship's table; {hint}known: {', '.join(table)}"
    )


def hourly_price(name: str, region: str) -> float | None:
    """The on-demand list price in USD per hour, or None where the table has none."""
    known = _table().get(name)
    return known.prices.get(region) if known else None


def recommend(
    *,
    params: int,
    dtype_bytes: int,
    layers: int,
    kv_heads: int,
    head_dim: int,
    context: int,
    concurrency: int,
    region: str,
    budget_per_hour: float | None = None,
    gpu: bool = True,
) -> Recommendation:
    """The cheapest instance in `region` that holds the model and its KV cache."""
    sizes = {
        "params": params,
        "dtype_bytes": dtype_bytes,
        "layers": layers,
        "kv_heads": kv_heads,
        "head_dim": head_dim,
        "context": context,
        "concurrency": concurrency,
    }
    bad = [f"{key}={value!r}" for key, value in sizes.items() if value <= 0]
    if bad:
        raise DeployError(f"cannot size an instance: {', '.join(bad)} must be positive")
    if budget_per_hour is not None and budget_per_hour <= 0:
        raise DeployError(f"the hourly budget must be positive, not {budget_per_hour}")
    weights = params * dtype_bytes / GIB
    kv = 2 * layers * kv_heads * head_dim * dtype_bytes * context * concurrency / GIB
    data = (weights + kv) * OVERHEAD_FACTOR
    unit = "GPU" if gpu else "instance"
    scaled = (
        f"(weights {weights:.1f} GiB + KV cache {kv:.1f} GiB for {context} tokens x "
        f"{concurrency} concurrent) x {OVERHEAD_FACTOR}"
    )
    sizing = f"{scaled} + {OVERHEAD_GIB:g} GiB per {unit}"
    candidates = [i for i in _table().values() if (i.gpus > 0) == gpu]
    priced = [i for i in candidates if region in i.prices]
    reference = _data()["reference_region"]
    if priced:
        candidates, price_region = priced, region
    else:
        price_region = reference
    fits = [fit for i in candidates if (fit := _fit(i, data, gpu)) is not None]
    if not fits:
        raise DeployError(_nothing_fits(candidates, data, sizing, gpu, region))
    fits.sort(
        key=lambda f: (
            f[0].prices.get(price_region, float("inf")),
            f[1],
            f[0].gpus,
            f[0].vcpus,
            f[0].name,
        )
    )
    within_budget = ""
    if budget_per_hour is not None:
        if not priced:
            raise DeployError(
                f"no list prices for {region} in llmship's table, so the hourly budget "
                f"${budget_per_hour:g} cannot be checked: drop the budget or name the instance "
                "type yourself"
            )
        within = [f for f in fits if f[0].prices[region] <= budget_per_hour]
        if not within:
            cheapest = fits[0][0]
            raise DeployError(
                f"the model needs {_total(data, fits[0][1], gpu):.1f} GiB {sizing}; the cheapest "
                f"instance that holds it in {region}, {cheapest.describe()}, lists at "
                f"${cheapest.prices[region]:.3f}/h, over the budget of ${budget_per_hour:g}/h: "
                "raise the budget, quantize the model, or lower the context or concurrency"
            )
        within_budget = f" within the ${budget_per_hour:g}/h budget"
        fits = within
    chosen, tp, per_unit = fits[0]
    hourly = chosen.prices.get(region)
    capacity = chosen.gpu_memory_gib if gpu else chosen.memory_gib
    price = (
        f"${hourly:.3f}/h in {region} ({price_source()})"
        if hourly is not None
        else f"price unknown for {region}: ranked by {reference} list prices "
        f"(${chosen.prices[reference]:.3f}/h there)"
    )
    parallel = f", tensor parallel {tp}" if gpu else ""
    split = f" / {tp} GPUs" if tp > 1 else ""
    plural = "s" if len(fits) != 1 else ""
    reason = (
        f"{chosen.describe()}{parallel}: needs {per_unit:.1f} GiB per {unit} = "
        f"{scaled}{split} + {OVERHEAD_GIB:g} GiB, within {capacity * USABLE:.1f} GiB usable "
        f"({USABLE:.0%} of {capacity:g} GiB); cheapest of {len(fits)} fitting type{plural}"
        f"{within_budget}; {price}"
    )
    return Recommendation(chosen, tp, round(_total(data, tp, gpu), 2), hourly, reason)


def _total(data: float, tp: int, gpu: bool) -> float:
    """Memory needed across all devices used: the data once, the overhead per device."""
    return data + OVERHEAD_GIB * (tp if gpu else 1)


def _fit(instance: InstanceType, data: float, gpu: bool) -> tuple[InstanceType, int, float] | None:
    """(instance, tensor-parallel degree, GiB needed per device) for the smallest fitting
    degree, or None."""
    if not gpu:
        need = data + OVERHEAD_GIB
        return (instance, 1, need) if need <= instance.memory_gib * USABLE else None
    for tp in TP_DEGREES:
        if tp > instance.gpus:
            break
        need = data / tp + OVERHEAD_GIB
        if need <= instance.gpu_memory_gib * USABLE:
            return instance, tp, need
    return None


def _nothing_fits(
    candidates: list[InstanceType], data: float, sizing: str, gpu: bool, region: str
) -> str:
    if gpu:
        largest = max(candidates, key=lambda i: min(i.gpus, TP_DEGREES[-1]) * i.gpu_memory_gib)
        usable = min(largest.gpus, TP_DEGREES[-1]) * largest.gpu_memory_gib * USABLE
        return (
            f"no GPU instance in {region} holds the model: it needs "
            f"{_total(data, TP_DEGREES[-1], gpu):.1f} GiB {sizing}, and the largest, "
            f"{largest.describe()}, has {usable:.0f} GiB usable: quantize the model (fewer "
            "bytes per parameter), lower the context or concurrency, or shard it across "
            "endpoints"
        )
    largest = max(candidates, key=lambda i: i.memory_gib)
    return (
        f"no CPU instance in {region} holds the model: it needs {_total(data, 1, gpu):.1f} GiB "
        f"{sizing}, and the largest, {largest.describe()}, has "
        f"{largest.memory_gib * USABLE:.0f} GiB usable: deploy on a GPU instance instead"
    )
