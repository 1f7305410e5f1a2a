"""What every Bedrock-hosted deployment shares, whichever target made it.

A deployment of the `bedrock` target (a custom model behind on-demand deployment or
provisioned throughput) and one of `bedrock-import` (Custom Model Import) have the
same status, refresh, invoke and destroy: what a deployment runs is read from its
recorded kinds, so both targets build on `BedrockHosted` and the CLI finds the model
to call with `hosting_of`. Status shows what provisioned throughput has cost so far.
Destroy goes in dependency order: a running customization job is stopped first, then
provisioned throughput and deployments, the custom and imported models, the import
job's record, and last the service role when no other deployment still uses it; a
resource already gone counts as deleted, so a rerun finishes what a failed one left.
"""

from __future__ import annotations

import json
import time

from llmship.aws.errors import aws_call, ignore_not_found
from llmship.aws.role_grants import revoke_grants
from llmship.aws.session import client, make_session
from llmship.aws.uris import s3_parts
from llmship.bedrock.role import ROLE_KIND, delete_role
from llmship.config.schema import AwsConfig
from llmship.errors import DeployError
from llmship.progress import Reporter
from llmship.sagemaker.cost import running_cost
from llmship.state import Kind, Resource, StateStore
from llmship.target import DeploymentStatus

PT_KIND = Kind.BEDROCK_PROVISIONED_THROUGHPUT
DEPLOYMENT_KIND = Kind.BEDROCK_DEPLOYMENT
IMPORT_JOB_KIND = Kind.BEDROCK_IMPORT_JOB
IMPORTED_KIND = Kind.BEDROCK_IMPORTED_MODEL
HOSTING_KINDS = (PT_KIND, DEPLOYMENT_KIND, IMPORTED_KIND)
PRICING = "https://aws.amazon.com/bedrock/pricing/"


def hosting_of(store: StateStore, deployment: str) -> Resource:
    """The resource a deployment answers through (its ARN is the runtime modelId)."""
    for resource in store.resources(deployment):
        if resource.kind in HOSTING_KINDS and resource.details.get("arn"):
            return resource
    raise DeployError(
        f"{deployment} has no Bedrock model to invoke (no provisioned throughput, deployment "
        "or imported model recorded); `llmship status` lists deployments"
    )


def bedrock_tags(values: dict[str, str]) -> list[dict[str, str]]:
    """Tags as Bedrock's APIs take them: [{"key": ..., "value": ...}], sorted by key."""
    return [{"key": key, "value": value} for key, value in sorted(values.items())]


def role_name_in(resource: Resource, role: str) -> bool:
    """Whether a recorded resource was made with (and still needs) the role `role`."""
    return resource.kind.startswith("bedrock:") and str(resource.details.get("role", "")).endswith(
        f"/{role}"
    )


class BedrockHosted:
    """Sessions, clients, waiting, status, refresh, invoke and destroy of a Bedrock target;
    a subclass names itself and adds plan and apply."""

    name: str

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
        self.store, self.aws = store.owned_by(self.name), aws
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
        jobs = (Kind.BEDROCK_CUSTOMIZATION_JOB, IMPORT_JOB_KIND)
        job = next((r for r in resources if r.kind in jobs), None)
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
            Kind.BEDROCK_CUSTOMIZATION_JOB: (
                "get_model_customization_job",
                {"jobIdentifier": resource.name},
            ),
            Kind.BEDROCK_CUSTOM_MODEL: ("get_custom_model", {"modelIdentifier": resource.name}),
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
        job_kind, model_kind = Kind.BEDROCK_CUSTOMIZATION_JOB, Kind.BEDROCK_CUSTOM_MODEL
        for job in [r for r in resources if r.kind == job_kind]:
            found = self._get(job)
            if found is not None and found.get("status") == "InProgress":
                self._delete(job, "stop_model_customization_job", jobIdentifier=job.name)
                deleted.append(f"{job_kind} {job.name} (stopped)")
        steps = (
            (PT_KIND, "delete_provisioned_model_throughput", "provisionedModelId"),
            (DEPLOYMENT_KIND, "delete_custom_model_deployment", "customModelDeploymentIdentifier"),
            (model_kind, "delete_custom_model", "modelIdentifier"),
            (IMPORTED_KIND, "delete_imported_model", "modelIdentifier"),
        )
        for kind, method, key in steps:
            for resource in [r for r in resources if r.kind == kind]:
                identifier = resource.name if kind == model_kind else resource.details.get("arn")
                if identifier:  # no ARN: the create never returned, nothing to delete
                    self._delete(resource, method, **{key: identifier})
                self.store.remove(resource.kind, resource.name, resource.region)
                deleted.append(f"{kind} {resource.name}")
        for resource in [r for r in resources if r.kind in (job_kind, IMPORT_JOB_KIND)]:
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
        for resource in [r for r in resources if r.kind == Kind.S3_ARTIFACT]:
            bucket, prefix = s3_parts(resource.name)
            with ignore_not_found("s3", "DeleteObjects", resource.name):
                pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
                keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
                for start in range(0, len(keys), 1000):
                    s3.delete_objects(
                        Bucket=bucket,
                        Delete={"Objects": [{"Key": k} for k in keys[start : start + 1000]]},
                    )
            self.store.remove(resource.kind, resource.name, resource.region)
            deleted.append(f"{Kind.S3_ARTIFACT} {resource.name}")
        return deleted
