"""Deploy target `bedrock`: a Bedrock custom model (from `llmship train --target bedrock`)
hosted by on-demand custom model deployment where the base model supports it, else by
provisioned throughput.

Provisioned throughput bills by the hour whether it is used or not, so its plan always
asks before apply (its price is the table's, or said to be unknown with the pricing page
to check). Status, refresh, invoke and destroy are every Bedrock deployment's
(llmship.bedrock.hosted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmship.bedrock.facts import base_model, source
from llmship.bedrock.hosted import (
    DEPLOYMENT_KIND,
    HOSTING_KINDS,
    PRICING,
    PT_KIND,
    BedrockHosted,
    bedrock_tags,
)
from llmship.errors import DeployError
from llmship.progress import RecordingReporter, Reporter
from llmship.sagemaker.cost import Cost
from llmship.state import Kind, Resource, Status
from llmship.target import Action, Deployed, DeployRequest, Plan

MODEL_KIND = Kind.BEDROCK_CUSTOM_MODEL  # what `llmship train --target bedrock` leaves
COMMITMENTS = {"none": None, "1-month": "OneMonth", "6-months": "SixMonths"}


class BedrockPlan(Plan):
    """A Plan whose provisioned throughput asks before apply even when its price is unknown:
    it bills by the hour either way."""

    @property
    def bills_hourly(self) -> bool:
        return any(a.verb == "create" and a.kind == PT_KIND for a in self.actions) or any(
            a.verb in ("create", "change") and a.hourly_usd is not None for a in self.actions
        )


@dataclass
class HostingSpec:
    """What BedrockTarget.apply creates."""

    kind: str
    name: str
    model_arn: str
    tags: list[dict[str, str]]
    model_units: int = 1
    commitment: str = "none"
    hourly_usd: float | None = None


class BedrockTarget(BedrockHosted):
    """A Bedrock custom model (from `llmship train --target bedrock`) behind on-demand
    custom model deployment or provisioned throughput."""

    name = "bedrock"

    def plan(self, request: DeployRequest) -> Plan:
        """What hosting the run's custom model would create and cost; read calls only."""
        cfg = request.config.bedrock
        region = self.session().region_name
        custom = self._custom_model(request)
        model = base_model(custom.details.get("base_model") or cfg.base_model_id)
        problems: list[str] = []
        found = self._get(custom)
        arn = (found or {}).get("modelArn") or custom.details.get("arn")
        if found is None or not arn:
            problems.append(
                f"custom model {custom.name} does not exist (yet) in Bedrock; wait for its "
                "customization job (`llmship status`) or train again"
            )
        live = [r for r in self.store.resources(request.name) if r.kind in HOSTING_KINDS]
        if live:
            problems.append(
                f"{request.name} is already hosted ({live[0].kind}); `llmship destroy "
                f"{request.name}` first, or set deploy.name"
            )
        on_demand = cfg.hosting == "on-demand" or (
            cfg.hosting == "auto" and model.on_demand_deployment
        )
        if on_demand and not model.on_demand_deployment:
            problems.append(
                f"bedrock.hosting: on-demand deployment is not offered for custom models of "
                f"{model.name} ({source('on_demand_deployment')}); use auto or provisioned"
            )
        tags = bedrock_tags(request.tags)
        if on_demand:
            cost = Cost(None, "on-demand custom model deployment: billed per token, nothing idle")
            action = Action("create", DEPLOYMENT_KIND, request.name, f"on-demand, {custom.name}")
            spec = HostingSpec(DEPLOYMENT_KIND, request.name, arn or "", tags)
        else:
            cost = self._provisioned_cost(model, cfg.model_units, cfg.commitment)
            detail = f"{cfg.model_units} model unit(s), commitment {cfg.commitment}"
            action = Action("create", PT_KIND, request.name, detail, cost.hourly_usd)
            spec = HostingSpec(
                PT_KIND, request.name, arn or "", tags, cfg.model_units, cfg.commitment,
                cost.hourly_usd,
            )  # fmt: skip
        return BedrockPlan(
            target=self.name,
            deployment=request.name,
            project=request.project,
            region=region,
            kind="on-demand" if on_demand else "provisioned throughput",
            actions=[Action("keep", MODEL_KIND, custom.name, model.name), action],
            cost=cost,
            problems=problems,
            spec=spec,
        )

    def _custom_model(self, request: DeployRequest) -> Resource:
        if request.run is None:
            raise DeployError(
                "deploy.target bedrock hosts the custom model of a Bedrock-trained run: give "
                "the run (llmship deploy RUN --target bedrock)"
            )
        for resource in self.store.resources():
            if resource.kind == MODEL_KIND and resource.details.get("run_id") == request.run_id:
                return resource
        raise DeployError(
            f"no Bedrock custom model is recorded for run {request.run_id}; train it with "
            "`llmship train --target bedrock` (or use deploy.target bedrock-import for a "
            "model trained elsewhere)"
        )

    @staticmethod
    def _provisioned_cost(model, units: int, commitment: str) -> Cost:
        if commitment not in model.commitments:
            raise DeployError(
                f"bedrock.commitment: {commitment} is not offered for {model.name}; one of "
                f"{', '.join(model.commitments)}"
            )
        price = model.hourly_usd_per_model_unit.get(commitment)
        term = "" if commitment == "none" else f"; a {commitment} term bills for all of it"
        if price is None:
            return Cost(
                None,
                f"provisioned throughput bills by the hour, used or not; its price for "
                f"{model.name} ({units} model unit(s), commitment {commitment}) is unknown to "
                f"llmship: check {PRICING} (Provisioned Throughput){term}",
            )
        return Cost(round(price * units, 4), f"{units} x ${price:.2f}/model unit-hour{term}")

    def apply(self, plan: Plan, *, reporter: Reporter | None = None) -> Deployed:
        plan.check()
        reporter = reporter or RecordingReporter()
        spec: HostingSpec = plan.spec
        region = plan.region
        details: dict[str, Any] = {"model_arn": spec.model_arn, "hourly_usd": spec.hourly_usd}
        self.store.record_creating(spec.kind, spec.name, spec.name, plan.project, region, details)
        if spec.kind == PT_KIND:
            request: dict[str, Any] = {
                "modelUnits": spec.model_units,
                "provisionedModelName": spec.name,
                "modelId": spec.model_arn,
                "tags": spec.tags,
            }
            if COMMITMENTS[spec.commitment]:
                request["commitmentDuration"] = COMMITMENTS[spec.commitment]
            arn = self._call(
                "create_provisioned_model_throughput",
                "CreateProvisionedModelThroughput",
                spec.name,
                **request,
            )["provisionedModelArn"]
            details.update(arn=arn, model_units=spec.model_units, commitment=spec.commitment)
            self.store.set_status(spec.kind, spec.name, Status.UP, region, details)
            found = self._wait(
                f"provisioned throughput {spec.name}",
                lambda: self._call(
                    "get_provisioned_model_throughput",
                    "GetProvisionedModelThroughput",
                    spec.name,
                    provisionedModelId=arn,
                ),
                "InService",
                reporter,
            )
        else:
            arn = self._call(
                "create_custom_model_deployment",
                "CreateCustomModelDeployment",
                spec.name,
                modelDeploymentName=spec.name,
                modelArn=spec.model_arn,
                description=f"llmship deployment {spec.name}",
                tags=spec.tags,
            )["customModelDeploymentArn"]
            details["arn"] = arn
            self.store.set_status(spec.kind, spec.name, Status.UP, region, details)
            found = self._wait(
                f"custom model deployment {spec.name}",
                lambda: self._call(
                    "get_custom_model_deployment",
                    "GetCustomModelDeployment",
                    spec.name,
                    customModelDeploymentIdentifier=arn,
                ),
                "Active",
                reporter,
            )
        return Deployed(plan.deployment, self.name, arn, found["status"], spec.hourly_usd)
