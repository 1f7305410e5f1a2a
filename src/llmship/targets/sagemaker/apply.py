"""Applying a SageMaker plan: create or update, wait for InService, then TTL and scaling.

A deploy makes a new model and endpoint config (`<deployment>-<UTC stamp>`), then
creates the endpoint (named the deployment) or, when it exists, moves it to the new
config blue/green through update.py and checks the live config is the intended one.
Each resource is tagged and recorded in the state store as CREATING before its create
call and UP after it, so `destroy` can always clean up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from llmship.aws.errors import aws_call
from llmship.aws.uris import s3_parts
from llmship.errors import DeployError
from llmship.progress import RecordingReporter, Reporter
from llmship.sagemaker.names import endpoint_log_group
from llmship.state import Kind, Status, state_path
from llmship.target import Deployed, Plan
from llmship.targets.sagemaker import update
from llmship.targets.sagemaker.context import SageMakerContext
from llmship.targets.sagemaker.requests import VARIANT, endpoint_request
from llmship.targets.sagemaker.spec import SageMakerSpec, artifact_files, check_tgi_files


def apply(ctx: SageMakerContext, plan: Plan, *, reporter: Reporter | None = None) -> Deployed:
    """Create (or update) what `plan` lists, wait for InService, then TTL and scaling."""
    plan.check()
    spec: SageMakerSpec = plan.spec
    reporter = reporter or RecordingReporter()
    common = {"deployment": plan.deployment, "project": plan.project, "region": plan.region}
    prepare_role_and_network(ctx, plan, reporter)
    ship_artifact(ctx, spec, reporter, common)
    create_model_and_config(ctx, spec, common)
    details = {
        "config": spec.config_name,
        "model": spec.model_name,
        "kind": plan.kind,
        "instance_type": spec.instance_type,
        "instance_count": spec.instance_count,
        "hourly_usd": spec.hourly_usd,
    }
    if spec.updating:
        update_endpoint(ctx, spec, plan, reporter, details)
    else:
        create_endpoint(ctx, spec, reporter, details, common)
    messages = schedule_deletion(ctx, spec, plan) + configure_autoscaling(ctx, spec, plan)
    return Deployed(
        plan.deployment,
        ctx.name,
        spec.endpoint_name,
        "InService",
        spec.hourly_usd,
        tuple(messages),
    )


def prepare_role_and_network(ctx: SageMakerContext, plan: Plan, reporter: Reporter) -> None:
    """The execution role's grant (before anything uses the role) and the S3 gateway
    endpoint the plan said the subnets need."""
    spec: SageMakerSpec = plan.spec
    if spec.role_grant is not None:
        from llmship.aws.role_grants import put_grant

        put_grant(
            ctx.client("iam"),
            spec.role_grant,
            store=ctx.store,
            deployment=plan.deployment,
            project=plan.project,
            details={"endpoint": spec.endpoint_name, "endpoint_region": plan.region},
        )
    if spec.create_s3_endpoint:
        from llmship.targets.sagemaker.network import create_s3_endpoint

        endpoint_id = create_s3_endpoint(
            ctx.client("ec2"),
            plan.network,
            plan.region,
            tags=spec.tag_values,
            store=ctx.store,
            deployment=plan.deployment,
            project=plan.project,
        )
        reporter.message(f"created S3 gateway endpoint {endpoint_id}")


def ship_artifact(
    ctx: SageMakerContext, spec: SageMakerSpec, reporter: Reporter, common: dict[str, str]
) -> None:
    """Build the run's artifact if missing, check it for TGI, upload it; or check the
    S3 prefix given for TGI."""
    if spec.local_artifact is not None:
        build(spec, reporter)
        if spec.check_tgi:
            check_tgi_files(artifact_files(spec.local_artifact), str(spec.local_artifact))
        upload(ctx, spec, reporter, **common)
    elif spec.check_tgi and spec.upload_uri is None:
        check_remote_tgi(ctx, spec)


def create_model_and_config(
    ctx: SageMakerContext, spec: SageMakerSpec, common: dict[str, str]
) -> None:
    sm = ctx.client("sagemaker")
    create(
        ctx, Kind.SAGEMAKER_MODEL, spec.model_name, "CreateModel", sm.create_model,
        spec.model_request, {"container": spec.container}, **common,
    )  # fmt: skip
    create(
        ctx,
        Kind.SAGEMAKER_ENDPOINT_CONFIG,
        spec.config_name,
        "CreateEndpointConfig",
        sm.create_endpoint_config,
        spec.config_request,
        {"model": spec.model_name},
        **common,
    )


def create_endpoint(
    ctx: SageMakerContext,
    spec: SageMakerSpec,
    reporter: Reporter,
    details: dict[str, Any],
    common: dict[str, str],
) -> None:
    """A new endpoint on the new config, waited for until InService."""
    sm = ctx.client("sagemaker")
    logs = ctx.client("logs")
    create(
        ctx,
        Kind.SAGEMAKER_ENDPOINT,
        spec.endpoint_name,
        "CreateEndpoint",
        sm.create_endpoint,
        endpoint_request(spec.endpoint_name, spec.config_name, spec.tags),
        details,
        **common,
    )
    wait_for_endpoint(
        sm,
        spec.endpoint_name,
        logs=logs,
        reporter=reporter,
        poll_seconds=ctx.poll_seconds,
        timeout_seconds=ctx.timeout_seconds,
        sleep=ctx.sleep,
        clock=ctx.clock,
    )


def update_endpoint(
    ctx: SageMakerContext,
    spec: SageMakerSpec,
    plan: Plan,
    reporter: Reporter,
    details: dict[str, Any],
) -> None:
    """Blue/green to the new config; a silent rollback is an error, said loudly."""
    sm = ctx.client("sagemaker")
    had_scaling = any(
        r.kind in (Kind.SCALING_TARGET, Kind.SCALING_POLICY)
        for r in ctx.store.resources(plan.deployment)
    )
    if had_scaling:  # a scaling target cannot change instance type in an update
        from llmship.targets.sagemaker.scaling import remove_autoscaling

        remove_autoscaling(ctx.session(), endpoint_name=spec.endpoint_name, store=ctx.store)
    update.start_update(
        sm,
        endpoint_name=spec.endpoint_name,
        new_config_name=spec.config_name,
        policy=spec.policy,
        instance_count=spec.instance_count,
    )
    outcome = update.wait_for_update(
        sm,
        endpoint_name=spec.endpoint_name,
        intended_config_name=spec.config_name,
        reporter=reporter,
        poll_seconds=ctx.poll_seconds,
        timeout_seconds=ctx.timeout_seconds,
        sleep=ctx.sleep,
    )
    if outcome.rolled_back or outcome.live_config_name != spec.config_name:
        reason = f" ({outcome.failure_reason})" if outcome.failure_reason else ""
        lines = log_tail(ctx.client("logs"), spec.endpoint_name)
        raise DeployError(
            f"ROLLED BACK: endpoint {spec.endpoint_name} is {outcome.status} on "
            f"{outcome.live_config_name}, not the new {spec.config_name}{reason}; the new "
            "model never took traffic. Check the alarms and the container's logs"
            + lines
            + "; `llmship destroy` removes the unused model and config with the rest"
        )
    if outcome.status != "InService":
        raise DeployError(
            f"endpoint {spec.endpoint_name} is {outcome.status} after the update"
            + (f": {outcome.failure_reason}" if outcome.failure_reason else "")
        )
    ctx.store.set_status(
        Kind.SAGEMAKER_ENDPOINT, spec.endpoint_name, Status.UP, plan.region, details
    )


def schedule_deletion(ctx: SageMakerContext, spec: SageMakerSpec, plan: Plan) -> list[str]:
    """deploy.ttl: the endpoint's deletion, scheduled in AWS."""
    if not spec.ttl_seconds:
        return []
    from llmship.targets.sagemaker.ttl import schedule_deletion as schedule

    scheduled = schedule(
        ctx.session(),
        endpoint_name=spec.endpoint_name,
        ttl_seconds=spec.ttl_seconds,
        tags=spec.tag_values,
        store=ctx.store,
        deployment=plan.deployment,
        project=plan.project,
    )
    return [f"deletion scheduled at {scheduled.delete_at:%Y-%m-%d %H:%M} UTC"]


def configure_autoscaling(ctx: SageMakerContext, spec: SageMakerSpec, plan: Plan) -> list[str]:
    """deploy.autoscaling: the variant's scalable target and its policies."""
    if spec.autoscaling is None:
        return []
    from llmship.targets.sagemaker.scaling import configure_autoscaling as configure

    configure(
        ctx.session(),
        endpoint_name=spec.endpoint_name,
        settings=spec.autoscaling,
        variant_name=VARIANT,
        asynchronous=plan.kind == "async",
        store=ctx.store,
        deployment=plan.deployment,
        project=plan.project,
    )
    return [f"autoscaling {spec.autoscaling.min_capacity}-{spec.autoscaling.max_capacity}"]


def create(
    ctx: SageMakerContext,
    kind: str,
    name: str,
    operation: str,
    call: Callable[..., Any],
    body: dict[str, Any],
    details: dict[str, Any],
    *,
    deployment: str,
    project: str,
    region: str,
) -> None:
    """Record CREATING, call, mark UP; the record stays if the call fails midway.
    A call passing an execution role waits out that role's IAM propagation."""
    from llmship.aws.iam import call_with_new_role

    ctx.store.record_creating(kind, name, deployment, project, region, details)
    with aws_call("sagemaker", operation, name):
        if body.get("ExecutionRoleArn"):
            call_with_new_role(
                lambda: call(**body),
                role_arn=body["ExecutionRoleArn"],
                service="sagemaker",
                operation=operation,
                resource=name,
                sleep=ctx.sleep,
            )
        else:
            call(**body)
    ctx.store.set_status(kind, name, Status.UP, region)


def build(spec: SageMakerSpec, reporter: Reporter) -> None:
    """Package the run (its artifact is missing) as deploy would have packaged it."""
    from llmship.package.build import build_artifact

    if spec.local_artifact.exists():
        return
    run_root = spec.local_artifact.parent.parent
    reporter.message(f"packaging {run_root} for transformers {spec.transformers_version}")
    build_artifact(run_root, spec.local_artifact, spec.artifact_format, spec.transformers_version)


def upload(
    ctx: SageMakerContext,
    spec: SageMakerSpec,
    reporter: Reporter,
    *,
    deployment: str,
    project: str,
    region: str,
) -> None:
    """The artifact (a tar.gz, or a directory file by file) to its recorded S3 URI;
    interrupted uploads resume."""
    from llmship.aws.s3 import upload_file

    s3 = ctx.client("s3")
    bucket, key = s3_parts(spec.upload_uri)
    resume = state_path().parent / "uploads"
    ctx.store.record_creating(Kind.S3_ARTIFACT, spec.upload_uri, deployment, project, region)
    if spec.local_artifact.is_file():
        upload_file(s3, spec.local_artifact, bucket, key, resume, reporter)
    else:
        for path in sorted(p for p in spec.local_artifact.rglob("*") if p.is_file()):
            relative = path.relative_to(spec.local_artifact).as_posix()
            upload_file(s3, path, bucket, f"{key}{relative}", resume, reporter)
    ctx.store.set_status(Kind.S3_ARTIFACT, spec.upload_uri, Status.UP, region)


def check_remote_tgi(ctx: SageMakerContext, spec: SageMakerSpec) -> None:
    """TGI's files at the root of an uncompressed S3 prefix (a tar.gz is not listed:
    that would mean downloading it)."""
    source = spec.model_request["PrimaryContainer"].get("ModelDataSource")
    if source is None:
        return
    uri = source["S3DataSource"]["S3Uri"]
    bucket, prefix = s3_parts(uri)
    with aws_call("s3", "ListObjectsV2", uri):
        pages = (
            ctx.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        )
        names = [o["Key"][len(prefix) :] for page in pages for o in page.get("Contents", [])]
    check_tgi_files(names, uri)


def log_tail(logs, endpoint: str, limit: int = 20) -> str:
    """The endpoint container's last log lines, for an error message."""
    from llmship.aws.logs import last_lines

    lines = last_lines(logs, endpoint_log_group(endpoint), limit=limit)
    if not lines:
        return f" (no container logs in {endpoint_log_group(endpoint)} yet)"
    return f"; last lines of {endpoint_log_group(endpoint)}:\n    " + "\n    ".join(lines)


def wait_for_endpoint(
    sm,
    name: str,
    *,
    logs=None,
    reporter: Reporter | None = None,
    poll_seconds: float = 30.0,
    timeout_seconds: float = 3600.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict:
    """Poll until `name` is InService; on Failed, a DeployError with SageMaker's
    FailureReason and the container's last log lines."""
    reporter = reporter or RecordingReporter()
    started = clock()
    reporter.start(f"waiting for {name}", None)
    last = None
    try:
        while True:
            with aws_call("sagemaker", "DescribeEndpoint", name):
                found = sm.describe_endpoint(EndpointName=name)
            status = found["EndpointStatus"]
            waited = clock() - started
            if status != last:
                reporter.message(f"{name}: {status} after {waited:.0f} s")
                last = status
            reporter.update(int(waited), status=status)
            if status == "InService":
                return found
            if status in ("Failed", "OutOfService", "Deleting"):
                reason = found.get("FailureReason") or "no reason given"
                tail = log_tail(logs, name) if logs is not None else ""
                raise DeployError(
                    f"endpoint {name} is {status}: {reason}{tail}\nFix the cause, then "
                    f"`llmship destroy {name}` and deploy again"
                )
            if waited >= timeout_seconds:
                raise DeployError(
                    f"endpoint {name} is still {status} after {waited:.0f} s; it goes on in "
                    "AWS: follow it with `llmship status`, or `llmship destroy` it"
                )
            sleep(poll_seconds)
    finally:
        reporter.finish()
