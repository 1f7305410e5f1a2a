"""`destroy` of a SageMaker deployment: everything it recorded, in dependency order.

The endpoint goes first (its TTL schedule and autoscaling before it), then its configs
and models, the training jobs, secrets and role grants, the VPC endpoint, and with
`purge` the uploaded artifacts and the endpoint's log group. "Not found" counts as
deleted, and each state row goes only once its resource is gone, so a rerun finishes
what an interrupted destroy left.
"""

from __future__ import annotations

import logging

from llmship.aws.errors import ignore_not_found
from llmship.aws.uris import s3_parts
from llmship.sagemaker.names import endpoint_log_group
from llmship.state import Kind, Resource, Status
from llmship.targets.sagemaker import ttl
from llmship.targets.sagemaker.context import SageMakerContext
from llmship.targets.sagemaker.network import delete_s3_endpoint
from llmship.targets.sagemaker.scaling import remove_autoscaling
from llmship.targets.sagemaker.status import CHECKS
from llmship.train.sagemaker_job import stop_jobs

log = logging.getLogger("llmship.deploy")

# The versions of an endpoint, deleted after it: (kind, delete method, operation, key).
VERSIONS = (
    (
        Kind.SAGEMAKER_ENDPOINT_CONFIG,
        "delete_endpoint_config",
        "DeleteEndpointConfig",
        "EndpointConfigName",
    ),
    (Kind.SAGEMAKER_MODEL, "delete_model", "DeleteModel", "ModelName"),
)


def destroy(ctx: SageMakerContext, deployment: str, *, purge: bool = False) -> list[str]:
    """Delete what `deployment` owns, in dependency order; NotFound counts as deleted.
    Each state row goes only once its resource is gone, so a rerun finishes the rest."""
    resources = ctx.store.resources(deployment)
    deleted = delete_endpoints(ctx, resources)
    deleted += end_ttl_without_endpoint(ctx, resources)
    deleted += delete_versions(ctx, resources)
    deleted += stop_jobs(ctx.store, resources, lambda region: ctx.client("sagemaker", region))
    deleted += delete_secrets(ctx, resources)
    deleted += revoke_grants(ctx, resources)
    deleted += delete_vpc_endpoints(ctx, deployment, resources)
    if purge:
        deleted += delete_artifacts(ctx, resources)
        deleted += delete_log_groups(ctx, deployment, resources)
    return deleted


def delete_endpoints(ctx: SageMakerContext, resources: list[Resource]) -> list[str]:
    """Each endpoint, after its TTL schedule and autoscaling."""
    deleted = []
    for endpoint in [r for r in resources if r.kind == Kind.SAGEMAKER_ENDPOINT]:
        session = ctx.session(endpoint.region or None)
        ttl.cancel_deletion(session, endpoint.name, ctx.store)
        remove_autoscaling(session, endpoint_name=endpoint.name, store=ctx.store)
        delete(ctx, endpoint, "delete_endpoint", "DeleteEndpoint", EndpointName=endpoint.name)
        deleted.append(f"{Kind.SAGEMAKER_ENDPOINT} {endpoint.name}")
    return deleted


def end_ttl_without_endpoint(ctx: SageMakerContext, resources: list[Resource]) -> list[str]:
    """A TTL whose endpoint is no longer recorded (the TTL deleted it, then `status
    --refresh` forgot it) still has a role and a dead-letter queue to delete."""
    recorded = {r.name for r in resources if r.kind == Kind.SAGEMAKER_ENDPOINT}
    left = set()
    for r in resources:
        endpoint = r.details.get("endpoint")
        if r.kind in (Kind.SCHEDULE, Kind.QUEUE) and endpoint and endpoint not in recorded:
            left.add((endpoint, r.region))
    for endpoint, region in sorted(left):
        ttl.cancel_deletion(ctx.session(region or None), endpoint, ctx.store)
    return [f"{Kind.QUEUE} {ttl.queue_name(endpoint)}" for endpoint, _ in sorted(left)]


def delete_versions(ctx: SageMakerContext, resources: list[Resource]) -> list[str]:
    """The endpoint configs, then the models (a config names its model)."""
    deleted = []
    for kind, method, operation, key in VERSIONS:
        for resource in [r for r in resources if r.kind == kind]:
            delete(ctx, resource, method, operation, **{key: resource.name})
            deleted.append(f"{kind} {resource.name}")
    return deleted


def delete_secrets(ctx: SageMakerContext, resources: list[Resource]) -> list[str]:
    """The secrets a training job read (HF_TOKEN)."""
    from llmship.aws.secrets import delete_secret

    deleted = []
    for secret in [r for r in resources if r.kind == Kind.SECRET]:
        delete_secret(ctx.client("secretsmanager", secret.region or None), secret.name)
        ctx.store.remove(secret.kind, secret.name, secret.region)
        deleted.append(f"{Kind.SECRET} {secret.name}")
    return deleted


def revoke_grants(ctx: SageMakerContext, resources: list[Resource]) -> list[str]:
    """The execution role's grants; a deploy's only once its endpoint is gone."""
    from llmship.aws.secrets import revoke_read

    deleted = []
    for grant in [r for r in resources if r.kind == Kind.IAM_ROLE_POLICY]:
        if not endpoint_gone(ctx, grant):
            continue
        revoke_read(ctx.client("iam"), grant.name)
        ctx.store.remove(grant.kind, grant.name, grant.region)
        deleted.append(f"{Kind.IAM_ROLE_POLICY} {grant.name}")
    return deleted


def endpoint_gone(ctx: SageMakerContext, grant: Resource) -> bool:
    """Whether the endpoint a grant was put for is gone (True for a grant of none).
    DeleteEndpoint only starts the deletion, and SageMaker removes the endpoint's
    network interfaces with the execution role's EC2 permissions: the grant goes only
    after DescribeEndpoint says not found. Polled up to delete_timeout_seconds; then
    the grant's record is kept, with why, for the next destroy to finish."""
    endpoint = grant.details.get("endpoint")
    if not endpoint:
        return True
    sm = ctx.client("sagemaker", grant.details.get("endpoint_region") or None)
    started = ctx.clock()
    while True:
        with ignore_not_found("sagemaker", "DescribeEndpoint", endpoint) as outcome:
            status = sm.describe_endpoint(EndpointName=endpoint)["EndpointStatus"]
        if outcome.missing:
            return True
        waited = ctx.clock() - started
        if waited >= ctx.delete_timeout_seconds:
            break
        ctx.sleep(ctx.poll_seconds)
    reason = (
        f"endpoint {endpoint} is still {status} after {waited:.0f} s; SageMaker needs "
        f"the execution role's grant {grant.name} to remove the endpoint's network "
        f"interfaces, so it is kept: run `llmship destroy {grant.deployment}` again once "
        "the endpoint is gone"
    )
    ctx.store.set_status(grant.kind, grant.name, grant.status, grant.region, {"kept": reason})
    log.warning(reason)
    return False


def delete_vpc_endpoints(
    ctx: SageMakerContext, deployment: str, resources: list[Resource]
) -> list[str]:
    """The S3 gateway endpoints the deploy added to the subnets' route tables."""
    deleted = []
    for resource in [r for r in resources if r.kind == Kind.VPC_ENDPOINT]:
        ec2 = ctx.client("ec2", resource.region or None)
        delete_s3_endpoint(ec2, resource.name, deployment)
        ctx.store.remove(resource.kind, resource.name, resource.region)
        deleted.append(f"{Kind.VPC_ENDPOINT} {resource.name}")
    return deleted


def delete(
    ctx: SageMakerContext, resource: Resource, method: str, operation: str, **arguments
) -> None:
    """Delete one resource; gone counts as done, and so does a refusal (AccessDenied)
    when its Describe says it is gone: a policy scoped by aws:ResourceTag cannot read
    the tags of a resource that no longer exists (the TTL or a console delete)."""
    ctx.store.set_status(resource.kind, resource.name, Status.DELETING, resource.region)
    service, describe, described = CHECKS[resource.kind](resource)
    region = resource.region or None
    with ignore_not_found(
        "sagemaker",
        operation,
        resource.name,
        confirm=lambda: getattr(ctx.client(service, region), describe)(**described),
    ):
        getattr(ctx.client("sagemaker", region), method)(**arguments)
    ctx.store.remove(resource.kind, resource.name, resource.region)


def delete_artifacts(ctx: SageMakerContext, resources: list[Resource]) -> list[str]:
    """`purge`: the uploaded artifacts, and the parts of an interrupted upload."""
    from llmship.aws.s3 import abort_uploads

    deleted = []
    for resource in [r for r in resources if r.kind == Kind.S3_ARTIFACT]:
        s3 = ctx.client("s3", resource.region or None)
        bucket, key = s3_parts(resource.name)
        with ignore_not_found("s3", "DeleteObjects", resource.name):
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
            keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
            for start in range(0, len(keys), 1000):
                s3.delete_objects(
                    Bucket=bucket,
                    Delete={"Objects": [{"Key": k} for k in keys[start : start + 1000]]},
                )
            abort_uploads(s3, bucket, key)  # parts of an interrupted upload bill too
        ctx.store.remove(resource.kind, resource.name, resource.region)
        deleted.append(f"{Kind.S3_ARTIFACT} {resource.name}")
    return deleted


def delete_log_groups(
    ctx: SageMakerContext, deployment: str, resources: list[Resource]
) -> list[str]:
    """`purge`: the endpoint's log group, in each region it ran in."""
    from llmship.aws.logs import delete_log_group

    deleted = []
    regions = {r.region for r in resources if r.kind == Kind.SAGEMAKER_ENDPOINT} or {
        r.region for r in resources
    }
    for region in regions or {""}:
        group = endpoint_log_group(deployment)
        if delete_log_group(ctx.client("logs", region or None), group):
            deleted.append(f"logs:log-group {group}")
    return deleted
