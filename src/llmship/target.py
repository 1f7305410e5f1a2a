"""What every target shares: the request, the plan, the result, the status, the protocol.

A leaf module (it imports no target and no stage), so every target, the training jobs
that name a deployment, and the CLI that resolves target names can import it without a
cycle. A target turns a DeployRequest into a Plan with read-only calls, applies a Plan
(writing each resource's record, owner included, before its create call), reports what
it runs, sends a request to it and removes it. The CLI holds the table of targets by name
(`llmship.cli._targets`); `status` and `destroy` read the owner from the state record.

`carry_out` is the one plan -> show -> confirm -> apply flow, here rather than in deploy/
so that the stages below deploy/ that create things themselves (a SageMaker training
job, an exposed gateway, a Bedrock customization) go through it too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from llmship.errors import DeployError
from llmship.sagemaker.cost import Cost
from llmship.sagemaker.names import check_name, default_name
from llmship.state import Resource, StateStore, tags

if TYPE_CHECKING:
    from llmship.config.loader import LoadedConfig
    from llmship.config.schema import LlmshipConfig
    from llmship.progress import Reporter
    from llmship.runs import RunDir
    from llmship.sagemaker.limits import KindLimits

Verb = Literal["create", "change", "delete", "keep"]


class Finding(Protocol):
    """A check a plan ran (an instance quota, a subnet's route to S3): passed or not, in
    one line."""

    @property
    def ok(self) -> bool: ...

    def describe(self) -> str: ...


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
    quota: Finding | None = None
    network: Finding | None = None
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

    @property
    def question(self) -> str | None:
        """Asked before applying, price named, when it creates something billed by the hour."""
        return f"Create {self.deployment} at {self.cost.describe()}?" if self.bills_hourly else None


@dataclass(frozen=True)
class DeployRequest:
    """What to deploy: the validated config, the run it serves (if any), and its name."""

    config: LlmshipConfig
    base_dir: Path
    run: RunDir | None
    name: str

    @property
    def project(self) -> str:
        return self.config.project.name

    @property
    def run_id(self) -> str:
        return self.run.run_id if self.run is not None else "none"

    @property
    def tags(self) -> dict[str, str]:
        """The tags on every resource the deployment creates."""
        return tags(self.project, self.name, self.run_id)


def request_for(loaded: LoadedConfig, run: RunDir | None) -> DeployRequest:
    """The request for a loaded config: deploy.name, else `<project>-<run>`."""
    config = loaded.config
    name = config.deploy.name or default_name(
        config.project.name, run.run_id if run is not None else None
    )
    return DeployRequest(config, loaded.base_dir, run, check_name(name))


@dataclass(frozen=True)
class Deployed:
    """What apply left running."""

    deployment: str
    target: str
    address: str  # endpoint name or URL
    status: str
    hourly_usd: float | None
    messages: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeploymentStatus:
    """One recorded deployment, as it is now."""

    deployment: str
    target: str
    address: str
    state: str  # InService, Creating, Failed, running, gone, ...
    instance: str
    hourly_usd: float | None
    spent_usd: float | None
    ttl_left: timedelta | None
    idle: bool | None  # None: not asked or not known
    resources: int
    notes: tuple[str, ...] = ()


class Target(Protocol):
    name: str

    def plan(self, request: DeployRequest) -> Plan: ...

    def apply(self, plan: Plan, *, reporter: Reporter | None = None) -> Deployed: ...

    def status(
        self, deployment: str, resources: list[Resource], *, idle_hours: float | None = None
    ) -> DeploymentStatus: ...

    def refresh(self, resources: list[Resource]) -> list[Resource]: ...

    def invoke(
        self, deployment: str, body: bytes, content_type: str = "application/json"
    ) -> bytes: ...

    def destroy(self, deployment: str, *, purge: bool = False) -> list[str]: ...


def target_of(resources: list[Resource]) -> str:
    """The target that owns a recorded deployment, as its records say (written at CREATING)."""
    owners = {r.owner for r in resources if r.owner}
    if len(owners) > 1:
        raise DeployError(
            f"deployment {resources[0].deployment} is recorded under several targets "
            f"({', '.join(sorted(owners))}); destroy each resource by hand"
        )
    if not owners:
        raise DeployError(f"no recorded resources name their target: {resources!r}")
    return owners.pop()


def recorded(store: StateStore) -> dict[str, list[Resource]]:
    """Recorded resources by deployment, in the order they were created."""
    out: dict[str, list[Resource]] = {}
    for resource in store.resources():
        out.setdefault(resource.deployment, []).append(resource)
    return out


def recorded_target(store: StateStore, deployment: str) -> str | None:
    """The target `deployment` was deployed to, as its record says; None when the store
    records nothing of that name (e.g. an endpoint created outside llmship)."""
    resources = store.resources(deployment)
    return target_of(resources) if resources else None


class Proposal(Protocol):
    """What `carry_out` needs of a plan; a deployment's Plan, a SageMaker training job's
    JobPlan and an exposed gateway's ExposePlan each have it."""

    @property
    def question(self) -> str | None:
        """Asked before applying (naming the price); None: nothing to ask about."""
        ...

    def check(self) -> None:
        """Raise, naming every problem, when the plan cannot be applied."""
        ...


PlanT = TypeVar("PlanT", bound=Proposal)
ResultT = TypeVar("ResultT")


def carry_out(
    plan: PlanT,
    apply: Callable[[PlanT], ResultT],
    *,
    show: Callable[[PlanT], None],
    confirm: Callable[[str], bool],
) -> ResultT | None:
    """The one way llmship creates anything: show the plan, refuse it if it has problems,
    ask before anything billed by the hour, then apply it (which records each resource,
    owner included, before its create call). None when `confirm` declines: nothing was
    created. Stages never prompt: `show` renders and `confirm` asks for the caller (the
    CLI: --yes, a terminal, or a refusal that says to pass --yes)."""
    show(plan)
    plan.check()
    if plan.question is not None and not confirm(plan.question):
        return None
    return apply(plan)
