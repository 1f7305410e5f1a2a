"""A plan on the terminal: the table of actions, then its cost, limits and findings."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from llmship.target import Plan

VERB_STYLE = {"create": "green", "change": "yellow", "delete": "red", "keep": "dim"}


def render(plan: Plan) -> Group:
    """The plan as a rich table with the facts below it."""
    table = Table(
        "", "resource", "name", "detail", "per hour",
        title=f"{plan.target} deployment {plan.deployment} ({plan.kind}, {plan.region or 'local'})",
        title_justify="left",
    )  # fmt: skip
    for action in plan.actions:
        style = VERB_STYLE[action.verb]
        price = "" if action.hourly_usd is None else f"${action.hourly_usd:.2f}"
        table.add_row(f"[{style}]{action.verb}[/]", action.kind, action.name, action.detail, price)
    lines: list[Any] = [table]

    def line(label: str, text: str, style: str = "") -> None:
        lines.append(Text.assemble((f"{label}: ", "bold"), (text, style)))

    if plan.instance:
        line("instance", f"{plan.instance} ({plan.instance_reason})")
    line("cost", plan.cost.describe())
    if plan.limits is not None:
        line("limits", plan.limits.summary())
    for label, finding in (("quota", plan.quota), ("network", plan.network)):
        if finding is not None:
            line(label, finding.describe(), "" if finding.ok else "yellow")
    for warning in plan.warnings:
        line("warning", warning, "yellow")
    for problem in plan.problems:
        line("problem", problem, "red")
    if not plan.problems and plan.bills_hourly:
        lines.append(Text("Applying this creates resources billed by the hour.", "bold yellow"))
    return Group(*lines)
