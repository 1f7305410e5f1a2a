"""Bedrock behind the deploy interface: `bedrock` hosts a fine-tuned custom model (on-demand
custom model deployment where the base model supports it, else provisioned throughput),
`bedrock-import` imports llmship's own merged model with Custom Model Import.

Both share status, refresh, invoke and destroy: what a deployment runs is read from its
recorded kinds. Provisioned throughput bills by the hour whether it is used or not, so
its plan always asks before apply (its price is the table's, or said to be unknown with
the pricing page to check), status shows what it has cost so far, and destroy deletes
it. Destroy goes in dependency order: a running customization job is stopped first,
then provisioned throughput and deployments, the custom and imported models, the import
job's record, and last the service role when no other deployment still uses it; a
resource already gone counts as deleted, so a rerun finishes what a failed one left.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llmship.aws.errors import aws_call, ignore_not_found
from llmship.aws.iam import _identity, call_with_new_role
from llmship.aws.role_grants import RoleGrant, S3Access, put_grant, revoke_grants
from llmship.aws.secrets import ROLE_POLICY_KIND
from llmship.aws.session import client, make_session
from llmship.bedrock.customize import JOB_KIND, MODEL_KIND
from llmship.bedrock.facts import base_model, import_facts, source
from llmship.bedrock.role import (
    ROLE_KIND,
    Prefixes,
    delete_role,
    ensure_role,
    job_grant,
    outside_prefixes,
    role_name,
)
from llmship.config.schema import AwsConfig
from llmship.deploy.plan import Action, Plan
from llmship.deploy.target import Deployed, DeploymentStatus, DeployRequest
from llmship.errors import DeployError
from llmship.progress import RecordingReporter, Reporter
from llmship.sagemaker.cost import Cost, running_cost
from llmship.state import Resource, StateStore, state_path

PT_KIND = "bedrock:provisioned-throughput"
DEPLOYMENT_KIND = "bedrock:custom-model-deployment"
IMPORT_JOB_KIND = "bedrock:model-import-job"
IMPORTED_KIND = "bedrock:imported-model"
S3_KIND = "s3:artifact"
HOSTING_KINDS = (PT_KIND, DEPLOYMENT_KIND, IMPORTED_KIND)
IMPORT_KINDS = (IMPORT_JOB_KIND, IMPORTED_KIND)
PRICING = "https://aws.amazon.com/bedrock/pricing/"
COMMITMENTS = {"none": None, "1-month": "OneMonth", "6-months": "SixMonths"}


def owns(resources: list[Resource]) -> str | None:
    """`bedrock-import`, `bedrock` or None: which Bedrock target a recorded deployment is."""
    kinds = {r.kind for r in resources}
    if kinds & set(IMPORT_KINDS):
        return "bedrock-import"
    if any(k.startswith("bedrock:") for k in kinds) or any(
        r.kind == ROLE_KIND and r.details.get("service") == "bedrock" for r in resources
    ):
        return "bedrock"
    return None


def hosting_of(store: StateStore, deployment: str) -> Resource:
    """The resource a deployment answers through (its ARN is the runtime modelId)."""
    for resource in store.resources(deployment):
        if resource.kind in HOSTING_KINDS and resource.details.get("arn"):
            return resource
    raise DeployError(
        f"{deployment} has no Bedrock model to invoke (no provisioned throughput, deployment "
        "or imported model recorded); `llmship status` lists deployments"
    )


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


@dataclass
class ImportSpec:
    """What BedrockImportTarget.apply creates."""

    name: str
    job_name: str
    s3_uri: str
    tags: list[dict[str, str]]
    prefixes: Prefixes
    run_id: str
    role_arn: str | None
    local_dir: Path | None = None
    upload_files: list[str] = field(default_factory=list)
    vpc: Any = None
    grant: RoleGrant | None = None


def check_import_files(names: list[str], config: dict | None, where: str) -> list[str]:
    """Problems that would fail an import job minutes later: an architecture Bedrock does
    not import, or files it needs missing from the folder's root."""
    facts, problems = import_facts(), []
    roots = [n for n in names if "/" not in n]
    if config is None:
        problems.append(f"{where} has no config.json; import a saved Hugging Face model folder")
    else:
        architectures = config.get("architectures") or []
        if not any(a in facts["architectures"] for a in architectures):
            problems.append(
                f"{where}: architecture {', '.join(architectures) or 'unknown'} is not one "
                f"Custom Model Import accepts ({', '.join(sorted(facts['architectures']))}; "
                f"{source('custom_model_import')})"
            )
    missing = [f for f in facts["required_files"] if f not in roots and f != "config.json"]
    if not any(n.endswith(facts["weights_suffix"]) for n in roots):
        missing.insert(0, f"*{facts['weights_suffix']} weights")
    if missing:
        problems.append(
            f"{where} lacks {', '.join(missing)}; train with train.merge: true (merged "
            "safetensors weights and a fast tokenizer) or save the model with them"
        )
    return problems


class _BedrockBase:
    """Sessions, clients, waiting, status, refresh, invoke and destroy for both targets."""

    name = "bedrock"

    def __init__(
        self,
        store: StateStore,
        aws: AwsConfig,
        *,
        session=None,
        sleep=time.sleep,
        now=time.time,
        poll_seconds: float = 30.0,
        timeout_seconds: float = 3600.0,
    ):
        self.store, self.aws = store, aws
        self._session, self._clients = session, {}
        self.sleep, self.now = sleep, now
        self.poll_seconds, self.timeout_seconds = poll_seconds, timeout_seconds

    def session(self):
        if self._session is None:
            self._session = make_session(self.aws)
        return self._session

    def client(self, service: str):
        if service not in self._clients:
            self._clients[service] = client(self.session(), service)
        return self._clients[service]

    def _call(self, method: str, operation: str, resource: str, **arguments) -> dict:
        with aws_call("bedrock", operation, resource):
            return getattr(self.client("bedrock"), method)(**arguments)

    def _wait(self, what: str, get, ready: str, reporter: Reporter) -> dict:
        """Poll `get()` until its status is `ready`; Failed raises with Bedrock's message."""
        started, last = time.monotonic(), None
        while True:
            found = get()
            status = found.get("status", "")
            if status != last:
                reporter.message(f"{what}: {status}")
                last = status
            if status == ready:
                return found
            if status == "Failed":
                raise DeployError(
                    f"{what} failed: {found.get('failureMessage') or 'no reason given'}; "
                    "`llmship destroy` removes what was created"
                )
            if time.monotonic() - started > self.timeout_seconds:
                raise DeployError(
                    f"{what} is still {status}; it goes on in AWS: follow it with `llmship "
                    "status`, or `llmship destroy` it"
                )
            self.sleep(self.poll_seconds)

    # status ---------------------------------------------------------------------------

    def status(
        self, deployment: str, resources: list[Resource], *, idle_hours: float | None = None
    ) -> DeploymentStatus:
        """The hosting resource's live state and cost so far, else the training job's."""
        hosting = next((r for r in resources if r.kind in HOSTING_KINDS), None)
        if hosting is not None:
            state = self._live_status(hosting)
            hourly = hosting.details.get("hourly_usd") if state != "gone" else None
            what = {
                PT_KIND: f"{hosting.details.get('model_units', 1)} model unit(s)",
                DEPLOYMENT_KIND: "on-demand",
                IMPORTED_KIND: "imported, on-demand",
            }[hosting.kind]
            notes = []
            if hosting.kind == PT_KIND and hourly is None and state != "gone":
                notes.append(f"provisioned throughput bills by the hour; price: {PRICING}")
            return DeploymentStatus(
                deployment, self.name, hosting.details.get("arn", hosting.name), state, what,
                hourly, running_cost(hourly, hosting.created, self.now()), None, None,
                len(resources), tuple(notes),
            )  # fmt: skip
        job = next((r for r in resources if r.kind in (JOB_KIND, IMPORT_JOB_KIND)), None)
        state = self._live_status(job) if job is not None else "-"
        kinds = ", ".join(sorted({r.kind for r in resources}))
        return DeploymentStatus(
            deployment, self.name, job.name if job else "-", state, "job", None, None, None,
            None, len(resources), (f"holds: {kinds}",),
        )  # fmt: skip

    def _live_status(self, resource: Resource) -> str:
        found = self._get(resource)
        return "gone" if found is None else str(found.get("status", "Active"))

    def _get(self, resource: Resource) -> dict | None:
        """The resource as Bedrock describes it now; None when it no longer exists (only
        ResourceNotFoundException says so: a ValidationException is a refusal)."""
        call = self._get_call(resource)
        if call is None:
            return {}
        with ignore_not_found("bedrock", call[0], resource.name):
            return getattr(self.client("bedrock"), call[0])(**call[1])
        return None

    @staticmethod
    def _get_call(resource: Resource) -> tuple[str, dict] | None:
        """The Get call (method, arguments) that describes `resource`, if it has one."""
        arn = resource.details.get("arn") or resource.name
        calls = {
            JOB_KIND: ("get_model_customization_job", {"jobIdentifier": resource.name}),
            MODEL_KIND: ("get_custom_model", {"modelIdentifier": resource.name}),
            PT_KIND: ("get_provisioned_model_throughput", {"provisionedModelId": arn}),
            DEPLOYMENT_KIND: (
                "get_custom_model_deployment",
                {"customModelDeploymentIdentifier": arn},
            ),
            IMPORT_JOB_KIND: ("get_model_import_job", {"jobIdentifier": arn}),
            IMPORTED_KIND: ("get_imported_model", {"modelIdentifier": arn}),
        }
        return calls.get(resource.kind)

    def refresh(self, resources: list[Resource]) -> list[Resource]:
        """Forget recorded Bedrock resources that no longer exist; return those."""
        gone = [r for r in resources if r.kind.startswith("bedrock:") and self._get(r) is None]
        for resource in gone:
            self.store.remove(resource.kind, resource.name, resource.region)
        return gone

    # invoke ---------------------------------------------------------------------------

    def invoke(self, deployment: str, body: bytes, content_type: str = "application/json") -> bytes:
        """A Hugging Face toolkit payload in, [{"generated_text": ...}] out, through the
        deployment's Bedrock model (so callers of every target read one shape)."""
        from llmship.bedrock.invoke import (
            answer_text,
            converse,
            inference_config,
            invoke_imported,
            user_message,
        )
        from llmship.config.schema import GenerationConfig

        try:
            payload = json.loads(body)
            text = str(payload["inputs"])
        except (ValueError, KeyError, TypeError):
            raise DeployError(
                'a Bedrock deployment takes {"inputs": TEXT, "parameters": {...}}'
            ) from None
        known = GenerationConfig.model_fields
        params = GenerationConfig(
            **{k: v for k, v in (payload.get("parameters") or {}).items() if k in known}
        )
        hosting = hosting_of(self.store, deployment)
        runtime = self.client("bedrock-runtime")
        if hosting.kind == IMPORTED_KIND:
            answer = invoke_imported(runtime, hosting.details["arn"], text, params)
        else:
            response = converse(
                runtime,
                hosting.details["arn"],
                [user_message(text)],
                system=None,
                inference=inference_config(params),
            )
            answer = answer_text(response)
        return json.dumps([{"generated_text": answer}]).encode()

    # destroy --------------------------------------------------------------------------

    def destroy(self, deployment: str, *, purge: bool = False) -> list[str]:
        """Delete what `deployment` owns in dependency order; already gone counts as deleted."""
        resources = self.store.resources(deployment)
        deleted: list[str] = []
        for job in [r for r in resources if r.kind == JOB_KIND]:
            found = self._get(job)
            if found is not None and found.get("status") == "InProgress":
                self._delete(job, "stop_model_customization_job", jobIdentifier=job.name)
                deleted.append(f"{JOB_KIND} {job.name} (stopped)")
        steps = (
            (PT_KIND, "delete_provisioned_model_throughput", "provisionedModelId"),
            (DEPLOYMENT_KIND, "delete_custom_model_deployment", "customModelDeploymentIdentifier"),
            (MODEL_KIND, "delete_custom_model", "modelIdentifier"),
            (IMPORTED_KIND, "delete_imported_model", "modelIdentifier"),
        )
        for kind, method, key in steps:
            for resource in [r for r in resources if r.kind == kind]:
                identifier = resource.name if kind == MODEL_KIND else resource.details.get("arn")
                if identifier:  # no ARN: the create never returned, nothing to delete
                    self._delete(resource, method, **{key: identifier})
                self.store.remove(resource.kind, resource.name, resource.region)
                deleted.append(f"{kind} {resource.name}")
        for resource in [r for r in resources if r.kind in (JOB_KIND, IMPORT_JOB_KIND)]:
            # Bedrock keeps job records (no delete call); they cost nothing once ended.
            self.store.remove(resource.kind, resource.name, resource.region)
            deleted.append(f"{resource.kind} {resource.name} (record)")
        if purge:
            deleted += self._purge(resources)
        deleted += revoke_grants(self.client("iam"), self.store, deployment)
        for role in [r for r in resources if r.kind == ROLE_KIND]:
            users = [
                r.deployment
                for r in self.store.resources()
                if r.deployment != deployment and role_name_in(r, role.name)
            ]
            if users:
                continue
            delete_role(self.client("iam"), role.name)
            self.store.remove(role.kind, role.name, role.region)
            deleted.append(f"{ROLE_KIND} {role.name}")
        return deleted

    def _delete(self, resource: Resource, method: str, **arguments) -> None:
        """Delete (or stop) one resource; gone already counts as done, and any refusal
        (still creating, in use, under commitment) is raised with the record kept. An
        AccessDenied counts as gone only when the resource's Get says it is: a policy
        scoped by aws:ResourceTag cannot read the tags of a resource that no longer exists."""
        bedrock = self.client("bedrock")
        call = self._get_call(resource)
        confirm = (lambda: getattr(bedrock, call[0])(**call[1])) if call else None
        with ignore_not_found("bedrock", method, resource.name, confirm=confirm):
            getattr(bedrock, method)(**arguments)

    def _purge(self, resources: list[Resource]) -> list[str]:
        deleted = []
        s3 = self.client("s3")
        for resource in [r for r in resources if r.kind == S3_KIND]:
            bucket, _, prefix = resource.name.removeprefix("s3://").partition("/")
            with ignore_not_found("s3", "DeleteObjects", resource.name):
                pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
                keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
                for start in range(0, len(keys), 1000):
                    s3.delete_objects(
                        Bucket=bucket,
                        Delete={"Objects": [{"Key": k} for k in keys[start : start + 1000]]},
                    )
            self.store.remove(resource.kind, resource.name, resource.region)
            deleted.append(f"{S3_KIND} {resource.name}")
        return deleted


def role_name_in(resource: Resource, role: str) -> bool:
    """Whether a recorded resource was made with (and still needs) the role `role`."""
    return resource.kind.startswith("bedrock:") and str(resource.details.get("role", "")).endswith(
        f"/{role}"
    )


class BedrockTarget(_BedrockBase):
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
        tags = [{"key": k, "value": v} for k, v in sorted(request.tags.items())]
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
            self.store.set_status(spec.kind, spec.name, "UP", region, details)
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
            self.store.set_status(spec.kind, spec.name, "UP", region, details)
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


class BedrockImportTarget(_BedrockBase):
    """llmship's merged model imported with Custom Model Import, invoked on demand."""

    name = "bedrock-import"

    def plan(self, request: DeployRequest) -> Plan:
        """Where the model comes from, whether Bedrock can import it, what it creates."""
        cfg, aws = request.config, request.config.aws
        region = self.session().region_name
        facts = import_facts()
        problems: list[str] = []
        actions: list[Action] = []
        if region not in facts["regions"]:
            problems.append(
                f"aws.region: Custom Model Import runs in {', '.join(facts['regions'])}, not "
                f"{region} ({source('custom_model_import')})"
            )
        if not aws.bucket:
            raise DeployError(
                "aws.bucket is not set: Bedrock imports the model from there; run `llmship aws "
                "bootstrap` or set aws.bucket"
            )
        prefixes = Prefixes(aws.bucket, request.project)
        local_dir, upload = None, []
        if cfg.bedrock.import_model_data:
            s3_uri = cfg.bedrock.import_model_data
            names, config = self._remote_files(s3_uri)
        else:
            if request.run is None:
                raise DeployError(
                    "nothing to import: give a run (llmship deploy RUN --target bedrock-import) "
                    "or set bedrock.import_model_data to an S3 prefix holding a merged model"
                )
            local_dir = request.run.model
            s3_uri = prefixes.uri(f"{prefixes.input}{request.name}/model/")
            upload = sorted(
                str(p.relative_to(local_dir)) for p in local_dir.rglob("*") if p.is_file()
            )
            names = upload
            config_path = local_dir / "config.json"
            config = json.loads(config_path.read_text()) if config_path.is_file() else None
            actions.append(Action("create", S3_KIND, s3_uri, f"upload {len(upload)} files"))
        problems += check_import_files(names, config, s3_uri)
        if [r for r in self.store.resources(request.name) if r.kind in IMPORT_KINDS]:
            problems.append(
                f"{request.name} already has an imported model; `llmship destroy {request.name}` "
                "first, or set deploy.name"
            )
        if not cfg.bedrock.role_arn:
            actions.append(
                Action("keep", ROLE_KIND, role_name(request.project), "created if missing")
            )
        grant = self._grant(request, s3_uri, prefixes)
        warnings = []
        if grant is not None:
            actions.append(Action("create", ROLE_POLICY_KIND, grant.record, grant.describe()))
            warnings, problems = grant.warnings, problems + grant.problems
        job_name = f"{request.name}-{datetime.now(UTC).strftime('%Y%m%d%H%M%S')}"
        price = facts.get("hourly_usd_per_custom_model_unit")
        note = f"imported model: {facts['billing']}; " + (
            f"${price:.4f}/Custom Model Unit-hour" if price is not None else f"price: {PRICING}"
        )
        actions.append(Action("create", IMPORT_JOB_KIND, job_name, s3_uri))
        actions.append(Action("create", IMPORTED_KIND, request.name, "on-demand"))
        tags = [{"key": k, "value": v} for k, v in sorted(request.tags.items())]
        return BedrockPlan(
            target=self.name,
            deployment=request.name,
            project=request.project,
            region=region,
            kind="custom model import",
            actions=actions,
            cost=Cost(None, note),
            warnings=warnings,
            problems=problems,
            spec=ImportSpec(
                name=request.name,
                job_name=job_name,
                s3_uri=s3_uri,
                tags=tags,
                prefixes=prefixes,
                run_id=request.run_id,
                role_arn=cfg.bedrock.role_arn,
                local_dir=local_dir,
                upload_files=upload,
                vpc=cfg.bedrock.vpc,
                grant=grant,
            ),
        )

    def _grant(self, request: DeployRequest, s3_uri: str, prefixes: Prefixes):
        """The role's extra policy for this import: Bedrock's VPC permissions, and reading
        bedrock.import_model_data when it lies outside the project's input prefix."""
        cfg = request.config.bedrock
        outside = outside_prefixes(s3_uri, prefixes)
        if not (outside or cfg.vpc.subnets):
            return None
        role_arn = cfg.role_arn
        if not role_arn:
            account, partition = _identity(self.session())
            role_arn = f"arn:{partition}:iam::{account}:role/{role_name(request.project)}"
        return job_grant(
            self.session(),
            role_arn,
            command="bedrock-import",
            deployment=request.name,
            vpc=cfg.vpc,
            job="model-import-job",
            accesses=[S3Access(s3_uri, "read")] if outside else [],
        )

    def _remote_files(self, uri: str) -> tuple[list[str], dict | None]:
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        s3 = self.client("s3")
        with aws_call("s3", "ListObjectsV2", uri):
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            names = [o["Key"][len(prefix) :] for page in pages for o in page.get("Contents", [])]
            config = None
            if "config.json" in names:
                body = s3.get_object(Bucket=bucket, Key=f"{prefix}config.json")["Body"].read()
                config = json.loads(body)
        return names, config

    def apply(self, plan: Plan, *, reporter: Reporter | None = None) -> Deployed:
        from llmship.aws.s3 import upload_file

        plan.check()
        reporter = reporter or RecordingReporter()
        spec: ImportSpec = plan.spec
        region, project = plan.region, plan.project
        if spec.local_dir is not None:
            bucket, _, prefix = spec.s3_uri.removeprefix("s3://").partition("/")
            self.store.record_creating(S3_KIND, spec.s3_uri, spec.name, project, region)
            for name in spec.upload_files:
                upload_file(
                    self.client("s3"),
                    spec.local_dir / name,
                    bucket,
                    prefix + name,
                    state_path().parent / "uploads",
                    reporter,
                )
            self.store.set_status(S3_KIND, spec.s3_uri, "UP", region)
        role_arn = spec.role_arn or ensure_role(
            self.session(),
            prefixes=spec.prefixes,
            deployment=spec.name,
            run_id=spec.run_id,
            store=self.store,
        )
        if spec.grant is not None:
            put_grant(
                self.client("iam"), spec.grant, store=self.store, deployment=spec.name,
                project=project,
            )  # fmt: skip
        details = {"role": role_arn, "source": spec.s3_uri}
        self.store.record_creating(
            IMPORT_JOB_KIND, spec.job_name, spec.name, project, region, details
        )
        self.store.record_creating(IMPORTED_KIND, spec.name, spec.name, project, region, details)
        request: dict[str, Any] = {
            "jobName": spec.job_name,
            "importedModelName": spec.name,
            "roleArn": role_arn,
            "modelDataSource": {"s3DataSource": {"s3Uri": spec.s3_uri}},
            "jobTags": spec.tags,
            "importedModelTags": spec.tags,
        }
        if spec.vpc is not None and spec.vpc.subnets:
            request["vpcConfig"] = {
                "subnetIds": list(spec.vpc.subnets),
                "securityGroupIds": list(spec.vpc.security_groups),
            }
        with aws_call("bedrock", "CreateModelImportJob", spec.job_name):
            job_arn = call_with_new_role(
                lambda: self.client("bedrock").create_model_import_job(**request),
                role_arn=role_arn,
                service="bedrock",
                operation="CreateModelImportJob",
                resource=spec.job_name,
                sleep=self.sleep,
            )["jobArn"]
        self.store.set_status(IMPORT_JOB_KIND, spec.job_name, "UP", region, {"arn": job_arn})
        job = self._wait(
            f"model import job {spec.job_name}",
            lambda: self._call(
                "get_model_import_job", "GetModelImportJob", spec.job_name, jobIdentifier=job_arn
            ),
            "Completed",
            reporter,
        )
        model_arn = job["importedModelArn"]
        self.store.set_status(IMPORTED_KIND, spec.name, "UP", region, {"arn": model_arn})
        return Deployed(
            plan.deployment, self.name, model_arn, "Active", None,
            (f"invoke with InvokeModel on {model_arn} (on-demand, cold starts possible)",),
        )  # fmt: skip
