"""A plan: what a deploy would create, change or delete, what it costs, and what stands in
its way; computed with read-only calls and shown before anything is created.

`llmship deploy --plan` prints it and stops; `llmship deploy` prints it, asks before any
create that bills by the hour (unless --yes), then hands it to the target's apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from rich.console import Group
from rich.table import Table
from rich.text import Text

from llmship.errors import DeployError
from llmship.sagemaker.cost import Cost

if TYPE_CHECKING:
    from llmship.deploy.network import NetworkFinding
    from llmship.deploy.quotas import QuotaCheck
    from llmship.sagemaker.limits import KindLimits

Verb = Literal["create", "change", "delete", "keep"]


@dataclass(frozen=True)
class Action:
    """One resource the deploy would touch."""

    verb: Verb
    kind: str  # e.g. sagemaker:endpoint
    name: str
    detail: str = ""
    hourly_usd: float | None = None  # what it bills per hour once it exists


@dataclass
class Plan:
    """Everything `apply` needs, and everything the user should see first."""

    target: str
    deployment: str
    project: str
    region: str
    kind: str
    actions: list[Action]
    cost: Cost
    instance: str | None = None
    instance_reason: str = ""
    limits: KindLimits | None = None
    quota: QuotaCheck | None = None
    network: NetworkFinding | None = None
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    spec: Any = None  # the target's resolved settings, for its apply

    @property
    def bills_hourly(self) -> bool:
        """Whether applying creates (or changes) something billed by the hour."""
        return any(
            a.verb in ("create", "change") and a.hourly_usd is not None for a in self.actions
        )

    def check(self) -> None:
        """Refuse to apply a plan with problems, naming every one."""
        if self.problems:
            raise DeployError(
                f"deployment {self.deployment} cannot be created as planned:\n  - "
                + "\n  - ".join(self.problems)
            )


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
    if plan.quota is not None:
        line("quota", plan.quota.message, "" if plan.quota.ok else "yellow")
    if plan.network is not None:
        line("network", plan.network.describe(), "" if plan.network.ok else "yellow")
    for warning in plan.warnings:
        line("warning", warning, "yellow")
    for problem in plan.problems:
        line("problem", problem, "red")
    if not plan.problems and plan.bills_hourly:
        lines.append(Text("Applying this creates resources billed by the hour.", "bold yellow"))
    return Group(*lines)
