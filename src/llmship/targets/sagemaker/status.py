"""A SageMaker deployment as it is now: its endpoint's state, spend, TTL and idleness,
what still exists of its records (`status --refresh`), and invoking it.

`CHECKS` says how to ask AWS whether a recorded resource still exists; teardown reads it
too, to confirm that a refused delete met a resource already gone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from llmship.aws.errors import aws_call, ignore_not_found
from llmship.aws.uris import s3_parts
from llmship.sagemaker.cost import running_cost
from llmship.state import Kind, Resource
from llmship.target import DeploymentStatus
from llmship.targets.sagemaker import ttl
from llmship.targets.sagemaker.context import SageMakerContext
from llmship.targets.sagemaker.requests import VARIANT


def _s3_listing(r: Resource) -> dict[str, Any]:
    bucket, prefix = s3_parts(r.name)
    return {"Bucket": bucket, "Prefix": prefix, "MaxKeys": 1}


# How `status --refresh` asks whether a recorded resource still exists:
# (service, client method, its arguments).
CHECKS: dict[str, Callable[[Resource], tuple[str, str, dict[str, Any]]]] = {
    Kind.SAGEMAKER_ENDPOINT: lambda r: (
        "sagemaker",
        "describe_endpoint",
        {"EndpointName": r.name},
    ),
    Kind.SAGEMAKER_ENDPOINT_CONFIG: lambda r: (
        "sagemaker",
        "describe_endpoint_config",
        {"EndpointConfigName": r.name},
    ),
    Kind.SAGEMAKER_MODEL: lambda r: ("sagemaker", "describe_model", {"ModelName": r.name}),
    Kind.SAGEMAKER_TRAINING_JOB: lambda r: (
        "sagemaker",
        "describe_training_job",
        {"TrainingJobName": r.name},
    ),
    Kind.S3_ARTIFACT: lambda r: ("s3", "list_objects_v2", _s3_listing(r)),
    Kind.VPC_ENDPOINT: lambda r: ("ec2", "describe_vpc_endpoints", {"VpcEndpointIds": [r.name]}),
}


def describe_endpoint(sm, name: str) -> dict | None:
    """DescribeEndpoint; None when there is no such endpoint."""
    with ignore_not_found("sagemaker", "DescribeEndpoint", name):
        return sm.describe_endpoint(EndpointName=name)
    return None


def status(
    ctx: SageMakerContext,
    deployment: str,
    resources: list[Resource],
    *,
    idle_hours: float | None = None,
) -> DeploymentStatus:
    """The endpoint's live state, instance, price, spend so far, TTL and idleness."""
    endpoint = next((r for r in resources if r.kind == Kind.SAGEMAKER_ENDPOINT), None)
    if endpoint is None:
        kinds = sorted({r.kind for r in resources})
        return DeploymentStatus(
            deployment, ctx.name, "-", "no endpoint", "-", None, None, None, None,
            len(resources), (f"left: {', '.join(kinds)}",),
        )  # fmt: skip
    region = endpoint.region or None
    found = describe_endpoint(ctx.client("sagemaker", region), endpoint.name)
    state = found["EndpointStatus"] if found else "gone"
    notes = [found["FailureReason"]] if found and found.get("FailureReason") else []
    details = endpoint.details
    hourly = details.get("hourly_usd") if found else None
    count = details.get("instance_count") or 0
    instance = (
        f"{count} x {details['instance_type']}"
        if details.get("instance_type")
        else details.get("kind", "")
    )
    left = None
    if found:
        now = datetime.fromtimestamp(ctx.now(), UTC)
        checked = ttl.check(
            ctx.session(region), endpoint.name, resources, endpoint_status=state, now=now
        )
        left = checked.left
        notes += checked.notes
    idle = None
    if idle_hours and found:
        idle = invocations(ctx, endpoint.name, idle_hours, region) == 0
        if idle:
            notes.append(f"no invocations in {idle_hours:g} h: `llmship destroy {deployment}`")
    return DeploymentStatus(
        deployment,
        ctx.name,
        endpoint.name,
        state,
        instance,
        hourly,
        running_cost(hourly, endpoint.created, ctx.now()),
        left,
        idle,
        len(resources),
        tuple(notes),
    )


def invocations(
    ctx: SageMakerContext, endpoint: str, hours: float, region: str | None = None
) -> float:
    """Invocations of the endpoint over the last `hours` (CloudWatch, hourly sums)."""
    end = datetime.fromtimestamp(ctx.now(), UTC)
    with aws_call("cloudwatch", "GetMetricStatistics", endpoint):
        points = ctx.client("cloudwatch", region).get_metric_statistics(
            Namespace="AWS/SageMaker",
            MetricName="Invocations",
            Dimensions=[
                {"Name": "EndpointName", "Value": endpoint},
                {"Name": "VariantName", "Value": VARIANT},
            ],
            StartTime=end - timedelta(hours=hours),
            EndTime=end,
            Period=3600,
            Statistics=["Sum"],
        )["Datapoints"]
    return sum(point["Sum"] for point in points)


def refresh(ctx: SageMakerContext, resources: list[Resource]) -> list[Resource]:
    """Forget the recorded resources that no longer exist in AWS; return those."""
    gone = [r for r in resources if r.kind in CHECKS and not exists(ctx, r)]
    for resource in gone:
        ctx.store.remove(resource.kind, resource.name, resource.region)
    return gone


def exists(ctx: SageMakerContext, resource: Resource) -> bool:
    service, operation, arguments = CHECKS[resource.kind](resource)
    with ignore_not_found(service, operation, resource.name) as outcome:
        result = getattr(ctx.client(service, resource.region or None), operation)(**arguments)
    if outcome.missing:
        return False
    if resource.kind == Kind.S3_ARTIFACT and operation == "list_objects_v2":
        return result.get("KeyCount", 0) > 0
    if resource.kind == Kind.VPC_ENDPOINT:
        return any(e.get("State") != "deleted" for e in result.get("VpcEndpoints", []))
    return True


def invoke(
    ctx: SageMakerContext, deployment: str, body: bytes, content_type: str = "application/json"
) -> bytes:
    """One synchronous invocation of the deployment's endpoint, in its recorded region."""
    from llmship.aws.runtime import invoke as invoke_endpoint

    region = next(
        (r.region for r in ctx.store.resources(deployment) if r.kind == Kind.SAGEMAKER_ENDPOINT),
        None,
    )
    runtime = ctx.client("sagemaker-runtime", region)
    return invoke_endpoint(runtime, deployment, body=body, content_type=content_type).body
