"""What a deployment costs: per hour and per month while it runs, and so far.

Instance-backed endpoints (real-time, async) bill per instance-hour at the on-demand
price in instances.py's table; serverless endpoints bill per request and GB-second,
so they have no hourly price (provisioned concurrency aside, which the plan names).
A month is 730 hours, as AWS's own calculator counts it.
"""

from __future__ import annotations

from dataclasses import dataclass

HOURS_PER_MONTH = 730


@dataclass(frozen=True)
class Cost:
    """The price of running a deployment; None where it is not billed by the hour."""

    hourly_usd: float | None
    note: str

    @property
    def monthly_usd(self) -> float | None:
        return None if self.hourly_usd is None else round(self.hourly_usd * HOURS_PER_MONTH, 2)

    def describe(self) -> str:
        if self.hourly_usd is None:
            return self.note
        return f"${self.hourly_usd:.2f}/h, ${self.monthly_usd:,.2f}/month (730 h)" + (
            f"; {self.note}" if self.note else ""
        )


def instance_cost(instance_type: str, count: int, region: str) -> Cost:
    """`count` instances of `instance_type` in `region` at the on-demand price."""
    from llmship.sagemaker.instances import hourly_price, price_source

    price = hourly_price(instance_type, region)
    if price is None:
        return Cost(
            None,
            f"no price for {instance_type} in {region} in the instance table "
            f"({price_source()}); check the SageMaker pricing page",
        )
    each = f"{count} x ${price:.4f}/h" if count > 1 else ""
    return Cost(round(price * count, 4), each)


def serverless_cost(provisioned_concurrency: int | None) -> Cost:
    note = "serverless: billed per request and GB-second of compute, nothing while idle"
    if provisioned_concurrency:
        note += f"; {provisioned_concurrency} provisioned worker(s) bill while provisioned"
    return Cost(None, note)


def running_cost(hourly_usd: float | None, created: float, now: float) -> float | None:
    """USD spent since `created` (epoch seconds) at `hourly_usd`."""
    if hourly_usd is None:
        return None
    return round(hourly_usd * max(0.0, now - created) / 3600, 2)
