"""The one interface every deployment target shares: plan, apply, status, invoke, destroy.

A target turns a DeployRequest (the config and the run it serves) into a Plan with
read-only work only, applies a Plan, reports what it runs, sends a request to it and
removes it. Which target owns a recorded deployment is read from its resources' kinds,
so `status` and `destroy` need no config. Targets are registered in TARGETS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from llmship.errors import DeployError
from llmship.sagemaker.names import check_name, default_name
from llmship.state import Resource, StateStore

if TYPE_CHECKING:
    from llmship.config.loader import LoadedConfig
    from llmship.config.schema import LlmshipConfig
    from llmship.deploy.plan import Plan
    from llmship.progress import Reporter
    from llmship.runs import RunDir


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
        return {
            "llmship:project": self.project,
            "llmship:deployment": self.name,
            "llmship:run": self.run_id,
        }


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


# name -> factory(store, aws settings); imported lazily so `local` never imports boto3.
TargetFactory = Callable[..., Target]


def _local(store: StateStore, aws=None, **options) -> Target:
    from llmship.deploy.local import LocalTarget

    return LocalTarget(store, **options)


def _sagemaker(store: StateStore, aws=None, **options) -> Target:
    from llmship.config.schema import AwsConfig
    from llmship.deploy.sagemaker import SageMakerTarget

    return SageMakerTarget(store, aws or AwsConfig(), **options)


def _bedrock(store: StateStore, aws=None, **options) -> Target:
    from llmship.bedrock.target import BedrockTarget
    from llmship.config.schema import AwsConfig

    return BedrockTarget(store, aws or AwsConfig(), **options)


def _bedrock_import(store: StateStore, aws=None, **options) -> Target:
    from llmship.bedrock.target import BedrockImportTarget
    from llmship.config.schema import AwsConfig

    return BedrockImportTarget(store, aws or AwsConfig(), **options)


def _gateway(store: StateStore, aws=None, **options) -> Target:
    from llmship.gateway.target import ExposedGateway

    return ExposedGateway(store, aws, **options)


TARGETS: dict[str, TargetFactory] = {
    "local": _local,
    "sagemaker": _sagemaker,
    "bedrock": _bedrock,
    "bedrock-import": _bedrock_import,
    "gateway": _gateway,  # `llmship expose ROUTE --target aws` (status and destroy only)
}


def get_target(name: str, store: StateStore, aws=None, **options) -> Target:
    if name not in TARGETS:
        raise DeployError(f"deploy.target: unknown target {name!r}; one of {', '.join(TARGETS)}")
    return TARGETS[name](store, aws, **options)


def target_of(resources: list[Resource]) -> str:
    """Which target owns a recorded deployment: local resources are `local:*`, Bedrock's
    `bedrock:*` (with their service role), an exposed gateway's carry its route, the rest
    SageMaker's."""
    if any(r.details.get("gateway_route") for r in resources):
        return "gateway"
    if all(r.kind.startswith("local:") for r in resources):
        return "local"
    from llmship.bedrock.target import owns

    return owns(resources) or "sagemaker"


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
