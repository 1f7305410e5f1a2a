"""An exposed gateway as a deploy target, so `llmship status` and `llmship destroy` know
it: its records name "gateway" as their owner (stores older than the owner column: the
deployment's resources carry a gateway_route).
Creating one goes through `llmship expose` (it needs a route, not a trained run)."""

from __future__ import annotations

from llmship.errors import DeployError
from llmship.state import Kind, Resource, StateStore, Status


class ExposedGateway:
    name = "gateway"

    def __init__(self, store: StateStore, aws=None, *, session=None):
        self.store, self.aws, self._session = store.owned_by(self.name), aws, session

    def session(self):
        if self._session is None:
            from llmship.aws.session import make_session
            from llmship.config.schema import AwsConfig

            self._session = make_session(self.aws or AwsConfig())
        return self._session

    def plan(self, request):
        raise DeployError("an exposed gateway is made by `llmship expose ROUTE --target aws`")

    apply = plan

    def status(self, deployment: str, resources: list[Resource], *, idle_hours=None):
        from llmship.target import DeploymentStatus

        api = next((r for r in resources if r.kind == Kind.REST_API), None)
        states = {r.status for r in resources}
        return DeploymentStatus(
            deployment=deployment,
            target=self.name,
            address=api.details.get("url", "") if api else "",
            state="running" if states == {Status.UP} else ", ".join(sorted(states)),
            instance="lambda",
            hourly_usd=None,
            spent_usd=None,
            ttl_left=None,
            idle=None,
            resources=len(resources),
            notes=("billed per request; nothing while idle",),
        )

    def refresh(self, resources: list[Resource]) -> list[Resource]:
        return resources

    def invoke(self, deployment: str, body: bytes, content_type: str = "application/json"):
        raise DeployError(
            f"{deployment} is an API: call its URL (`llmship status` shows it) with an API key"
        )

    def destroy(self, deployment: str, *, purge: bool = False) -> list[str]:
        from llmship.gateway.aws_expose import destroy

        return destroy(self.store, deployment, session=self.session())
