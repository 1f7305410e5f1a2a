"""SageMaker endpoints through boto3, as a Target: plan, apply, status, refresh, invoke,
destroy.

Each method is one step, kept in a module of its own: plan.py (read-only checks and the
resolved spec), requests.py (the request bodies, pure), apply.py (create or update, wait
for InService), status.py (live state, refresh, invoke) and teardown.py (destroy). The
class is the shared context (store, clients, clock; context.py) with those steps on top.
"""

from __future__ import annotations

from llmship.progress import Reporter
from llmship.state import Kind, Resource
from llmship.target import Deployed, DeploymentStatus, DeployRequest, Plan
from llmship.targets.sagemaker.apply import apply as apply_plan
from llmship.targets.sagemaker.apply import create
from llmship.targets.sagemaker.context import SageMakerContext
from llmship.targets.sagemaker.plan import plan as plan_deploy
from llmship.targets.sagemaker.status import invocations, invoke, refresh
from llmship.targets.sagemaker.status import status as live_status
from llmship.targets.sagemaker.teardown import destroy

# The kinds' names as tests import them from this module.
MODEL_KIND = Kind.SAGEMAKER_MODEL
CONFIG_KIND = Kind.SAGEMAKER_ENDPOINT_CONFIG
ENDPOINT_KIND = Kind.SAGEMAKER_ENDPOINT
S3_KIND = Kind.S3_ARTIFACT


class SageMakerTarget(SageMakerContext):
    """Endpoints on SageMaker; clients come from `aws` (or an injected session)."""

    def plan(self, request: DeployRequest) -> Plan:
        """What deploying `request` would do; only read calls, nothing is created."""
        return plan_deploy(self, request)

    def apply(self, plan: Plan, *, reporter: Reporter | None = None) -> Deployed:
        """Create (or update) what `plan` lists, wait for InService, then TTL and scaling."""
        return apply_plan(self, plan, reporter=reporter)

    def status(
        self, deployment: str, resources: list[Resource], *, idle_hours: float | None = None
    ) -> DeploymentStatus:
        """The endpoint's live state, instance, price, spend so far, TTL and idleness."""
        return live_status(self, deployment, resources, idle_hours=idle_hours)

    def invocations(self, endpoint: str, hours: float, region: str | None = None) -> float:
        """Invocations of the endpoint over the last `hours` (CloudWatch, hourly sums)."""
        return invocations(self, endpoint, hours, region)

    def refresh(self, resources: list[Resource]) -> list[Resource]:
        """Forget the recorded resources that no longer exist in AWS; return those."""
        return refresh(self, resources)

    def invoke(self, deployment: str, body: bytes, content_type: str = "application/json") -> bytes:
        return invoke(self, deployment, body, content_type)

    def destroy(self, deployment: str, *, purge: bool = False) -> list[str]:
        """Delete what `deployment` owns, in dependency order; NotFound counts as deleted."""
        return destroy(self, deployment, purge=purge)

    def _create(self, kind, name, operation, call, body, details, *, deployment, project, region):
        """Record CREATING, call, mark UP (apply.create; kept for callers of the method)."""
        create(
            self, kind, name, operation, call, body, details,
            deployment=deployment, project=project, region=region,
        )  # fmt: skip
