"""`llmship status --discover [--adopt]`: rebuild the state store from the cloud's tags.

The state store is a cache: a lost or stale one (a new laptop, a teammate's deploy, a
process killed before it wrote) must not leave billed resources nobody can destroy.
Everything llmship creates carries the tag llmship:project (and llmship:deployment), so
the resources can be found again:

- the Resource Groups Tagging API lists tagged ARNs of most services (SageMaker, Lambda,
  API Gateway, DynamoDB, Secrets Manager, Bedrock, CloudWatch alarms, S3 buckets, EC2);
- SageMaker's own list calls (+ ListTags) catch what the tagging index has not caught
  up with, and give the real, case-kept names (ARNs hold them in lower case);
- IAM roles (global) by the names llmship gives them: each project's execution role,
  each deployment's TTL role (GetRole + ListRoleTags; no account-wide listing);
- EventBridge Scheduler schedules carry no tags: those of the `llmship` group belong
  to the deployment whose endpoint they delete;
- autoscaling targets are matched to the endpoints found;
- uploaded artifacts live under `llmship/<project>/<deployment>/` in the project bucket.

`adopt` writes what is missing into the state store (status UP, marked adopted), so
`llmship destroy` removes it like anything this machine created.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from llmship.aws.errors import (
    aws_call,
    error_code,
    ignore_not_found,
    is_access_denied,
    is_not_found,
    translate,
)
from llmship.aws.session import client
from llmship.state import TAG_PREFIX, Kind, Resource, StateStore, Status, implied_owner

PROJECT_TAG = f"{TAG_PREFIX}project"
DEPLOYMENT_TAG = f"{TAG_PREFIX}deployment"
# ARN "service" and resource type -> state kind (name: the resource id, else the ARN).
ARN_KINDS: dict[tuple[str, str], tuple[Kind, bool]] = {
    ("sagemaker", "endpoint"): (Kind.SAGEMAKER_ENDPOINT, True),
    ("sagemaker", "endpoint-config"): (Kind.SAGEMAKER_ENDPOINT_CONFIG, True),
    ("sagemaker", "model"): (Kind.SAGEMAKER_MODEL, True),
    ("sagemaker", "training-job"): (Kind.SAGEMAKER_TRAINING_JOB, True),
    ("lambda", "function"): (Kind.LAMBDA_FUNCTION, True),
    ("apigateway", "restapis"): (Kind.REST_API, True),
    ("dynamodb", "table"): (Kind.DYNAMODB_TABLE, True),
    ("secretsmanager", "secret"): (Kind.SECRET, False),
    ("bedrock", "model-customization-job"): (Kind.BEDROCK_CUSTOMIZATION_JOB, False),
    ("bedrock", "custom-model"): (Kind.BEDROCK_CUSTOM_MODEL, False),
    ("bedrock", "provisioned-model"): (Kind.BEDROCK_PROVISIONED_THROUGHPUT, False),
    ("bedrock", "custom-model-deployment"): (Kind.BEDROCK_DEPLOYMENT, False),
    ("bedrock", "imported-model"): (Kind.BEDROCK_IMPORTED_MODEL, False),
    ("bedrock", "model-import-job"): (Kind.BEDROCK_IMPORT_JOB, False),
    ("cloudwatch", "alarm"): (Kind.ALARM, True),
    ("ec2", "vpc-endpoint"): (Kind.VPC_ENDPOINT, True),
    ("s3", ""): (Kind.S3_BUCKET, True),
    ("sqs", ""): (Kind.QUEUE, True),
}
SAGEMAKER_LISTS = (
    (Kind.SAGEMAKER_ENDPOINT, "list_endpoints", "Endpoints", "EndpointName", "EndpointArn"),
    (
        Kind.SAGEMAKER_ENDPOINT_CONFIG,
        "list_endpoint_configs",
        "EndpointConfigs",
        "EndpointConfigName",
        "EndpointConfigArn",
    ),
    (Kind.SAGEMAKER_MODEL, "list_models", "Models", "ModelName", "ModelArn"),
)


@dataclass(frozen=True)
class Found:
    """One llmship-tagged resource in the account, as the state store would record it."""

    kind: str
    name: str
    region: str
    deployment: str
    project: str
    arn: str = ""
    details: dict[str, Any] = field(default_factory=dict, compare=False)


def kind_of_arn(arn: str) -> tuple[str, str] | None:
    """(state kind, name) for an ARN llmship creates, None for any other."""
    parts = arn.split(":", 5)
    if len(parts) < 6 or parts[0] != "arn":
        return None
    service, resource = parts[2], parts[5]
    if service == "apigateway":  # arn:aws:apigateway:region::/restapis/id
        pieces = resource.strip("/").split("/")
        kind_type, ident = (pieces[0], pieces[1]) if len(pieces) >= 2 else ("", "")
    elif service in ("s3", "sqs"):  # arn:aws:s3:::bucket, arn:aws:sqs:region:account:queue
        kind_type, ident = "", resource
    else:
        for separator in ("/", ":"):
            if separator in resource:
                kind_type, ident = resource.split(separator, 1)
                break
        else:
            return None
    entry = ARN_KINDS.get((service, kind_type))
    if entry is None or not ident:
        return None
    kind, by_id = entry
    return kind, ident if by_id else arn


def discover(session, *, project: str | None = None, bucket: str | None = None) -> list[Found]:
    """Every llmship-tagged resource in the session's region (and IAM), of `project` or of
    any project; found once each, in a stable order."""
    region = session.region_name
    found: dict[tuple[str, str], Found] = {}

    def add(item: Found) -> None:
        found.setdefault((item.kind, item.name.lower()), item)

    tagged = _tagged(session, project)
    real_names = _sagemaker_names(session, region, project, tagged, add)
    for arn, tags in tagged.items():
        kind_name = kind_of_arn(arn)
        if kind_name is None:
            continue
        kind, name = kind_name
        name = real_names.get(arn.lower(), name)
        kind_region = "" if kind == Kind.S3_BUCKET else region
        deployment = tags.get(DEPLOYMENT_TAG, "")
        # A TTL's dead-letter queue belongs to the deployment's endpoint, as ttl.py records it.
        details = {"endpoint": deployment} if kind == Kind.QUEUE and deployment else {}
        add(Found(kind, name, kind_region, deployment, tags[PROJECT_TAG], arn, details))
    for item in _roles(session, list(found.values())):
        add(item)
    endpoints = {f.name: f for f in found.values() if f.kind == Kind.SAGEMAKER_ENDPOINT}
    for item in _schedules(session, region, endpoints) + _scaling(session, region, endpoints):
        add(item)
    if bucket:
        deployments = {(f.project, f.deployment) for f in found.values() if f.deployment}
        for item in _artifacts(session, region, bucket, deployments):
            add(item)
    return sorted(found.values(), key=lambda f: (f.project, f.deployment, f.kind, f.name))


def missing_from(store: StateStore, found: list[Found]) -> list[Found]:
    """What was found but the state store does not record (an artifact prefix counts as
    recorded when a recorded artifact lies under it)."""
    recorded = {(r.kind, r.name.lower()) for r in store.resources()}
    artifacts = [r.name for r in store.resources() if r.kind == Kind.S3_ARTIFACT]
    out = []
    for item in found:
        if (item.kind, item.name.lower()) in recorded:
            continue
        if item.kind == Kind.S3_ARTIFACT and any(a.startswith(item.name) for a in artifacts):
            continue
        out.append(item)
    return out


def adopt(store: StateStore, found: list[Found]) -> list[Found]:
    """Record `found` (those not yet recorded) as UP, so `destroy` removes them."""
    adopted = missing_from(store, found)
    owners = _owners(found)
    owners.update({r.deployment: r.owner for r in store.resources() if r.owner})
    for item in adopted:
        details = {"adopted": True, **({"arn": item.arn} if item.arn else {}), **item.details}
        store.owned_by(owners[item.deployment]).adopt(
            item.kind, item.name, item.deployment, item.project, item.region, details
        )
    return adopted


def _owners(found: list[Found]) -> dict[str, str]:
    """Each found deployment's owner, from all its kinds together (tags name no target)."""
    groups: dict[str, list[Resource]] = {}
    for item in found:
        groups.setdefault(item.deployment, []).append(
            Resource(
                item.kind,
                item.name,
                item.region,
                item.deployment,
                item.project,
                Status.UP,
                item.details,
                0.0,
                0.0,
            )
        )
    return {deployment: implied_owner(group) for deployment, group in groups.items()}


# sources -------------------------------------------------------------------------------


def _tagged(session, project: str | None) -> dict[str, dict[str, str]]:
    """ARN -> tags of every resource the tagging API indexes with llmship:project."""
    tag_filter: dict[str, Any] = {"Key": PROJECT_TAG}
    if project:
        tag_filter["Values"] = [project]
    out: dict[str, dict[str, str]] = {}
    with aws_call("resourcegroupstaggingapi", "GetResources", PROJECT_TAG):
        pages = (
            client(session, "resourcegroupstaggingapi")
            .get_paginator("get_resources")
            .paginate(TagFilters=[tag_filter])
        )
        for page in pages:
            for item in page.get("ResourceTagMappingList", []):
                out[item["ResourceARN"]] = {t["Key"]: t["Value"] for t in item.get("Tags", [])}
    return out


def _sagemaker_names(session, region, project, tagged, add) -> dict[str, str]:
    """Lower-cased ARN -> real name of the SageMaker endpoints, configs and models; those
    the tagging index does not list are asked for their tags one by one."""
    sm = client(session, "sagemaker")
    indexed = {arn.lower() for arn in tagged}
    names: dict[str, str] = {}
    for kind, method, key, name_key, arn_key in SAGEMAKER_LISTS:
        with aws_call("sagemaker", method):
            for page in sm.get_paginator(method).paginate():
                for item in page.get(key, []):
                    arn, name = item[arn_key], item[name_key]
                    names[arn.lower()] = name
                    if arn.lower() in indexed:
                        continue
                    tags = _sagemaker_tags(sm, arn)
                    if PROJECT_TAG in tags and project in (None, tags[PROJECT_TAG]):
                        deployment = tags.get(DEPLOYMENT_TAG, "")
                        add(Found(kind, name, region, deployment, tags[PROJECT_TAG], arn))
    return names


def _sagemaker_tags(sm, arn: str) -> dict[str, str]:
    from botocore.exceptions import ClientError

    try:
        pages = sm.get_paginator("list_tags").paginate(ResourceArn=arn)
        return {t["Key"]: t["Value"] for page in pages for t in page.get("Tags", [])}
    except ClientError as exc:  # deleted since the listing, or not ours to read
        if is_not_found(exc, "sagemaker") or is_access_denied(exc):
            return {}
        raise translate(exc, "sagemaker", "ListTags", arn) from None


def _roles(session, found: list[Found]) -> list[Found]:
    """llmship's IAM roles of the projects and deployments found (IAM is global: region
    ''), looked up by the names llmship gives them, so no account-wide listing is needed:
    the execution role of each project and the TTL role of each deployment (kept after
    a TTL deleted its endpoint)."""
    from botocore.exceptions import ClientError

    from llmship.sagemaker.names import default_role_name
    from llmship.targets.sagemaker.ttl import role_name

    iam = client(session, "iam")
    names = {default_role_name(f.project) for f in found if f.project}
    names |= {role_name(f.deployment) for f in found if f.deployment}
    out = []
    for name in sorted(names):
        try:
            arn = iam.get_role(RoleName=name)["Role"]["Arn"]
            tags = {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=name)["Tags"]}
        except ClientError as exc:
            if is_not_found(exc, "iam") or is_access_denied(exc):
                continue
            raise translate(exc, "iam", "GetRole", name) from None
        if PROJECT_TAG in tags:
            deployment = tags.get(DEPLOYMENT_TAG, "")
            out.append(Found(Kind.IAM_ROLE, name, "", deployment, tags[PROJECT_TAG], arn))
    return out


def _schedules(session, region: str, endpoints: dict[str, Found]) -> list[Found]:
    """`deploy --ttl` schedules (untagged): matched to the endpoint they delete."""
    from botocore.exceptions import ClientError

    from llmship.targets.sagemaker.ttl import GROUP

    scheduler = client(session, "scheduler")
    out = []
    with ignore_not_found("scheduler", "ListSchedules", GROUP):  # no group: no schedules
        pages = scheduler.get_paginator("list_schedules").paginate(GroupName=GROUP)
        for page in pages:
            for item in page.get("Schedules", []):
                try:
                    schedule = scheduler.get_schedule(GroupName=GROUP, Name=item["Name"])
                except ClientError as exc:  # another project's (not ours to read) or just deleted
                    if is_not_found(exc, "scheduler") or is_access_denied(exc):
                        continue
                    raise translate(exc, "scheduler", "GetSchedule", item["Name"]) from None
                owner = endpoints.get(_deleted_endpoint(schedule))
                if owner is not None:
                    out.append(
                        Found(
                            Kind.SCHEDULE,
                            f"{GROUP}/{item['Name']}",
                            region,
                            owner.deployment,
                            owner.project,
                            item.get("Arn", ""),
                            {"endpoint": owner.name},
                        )
                    )
    return out


def _deleted_endpoint(schedule: dict) -> str:
    """The EndpointName a TTL schedule's target input names ('' for any other schedule)."""
    try:
        target = json.loads(schedule.get("Target", {}).get("Input") or "{}")
    except ValueError:
        return ""
    return str(target.get("EndpointName", "")) if isinstance(target, dict) else ""


def _scaling(session, region: str, endpoints: dict[str, Found]) -> list[Found]:
    """Autoscaling targets of the endpoints found."""
    from llmship.targets.sagemaker.scaling import NAMESPACE

    out = []
    with aws_call("application-autoscaling", "DescribeScalableTargets"):
        pages = (
            client(session, "application-autoscaling")
            .get_paginator("describe_scalable_targets")
            .paginate(ServiceNamespace=NAMESPACE)
        )
        for page in pages:
            for target in page.get("ScalableTargets", []):
                parts = target["ResourceId"].split("/")
                owner = endpoints.get(parts[1]) if len(parts) > 1 else None
                if owner is not None:
                    out.append(
                        Found(
                            Kind.SCALING_TARGET,
                            target["ResourceId"],
                            region,
                            owner.deployment,
                            owner.project,
                            details={"endpoint": owner.name},
                        )
                    )
    return out


def _artifacts(session, region: str, bucket: str, deployments: set) -> list[Found]:
    """Uploaded artifacts, one per run prefix under each deployment's prefix."""
    from botocore.exceptions import ClientError

    from llmship.sagemaker.names import artifact_prefix

    s3 = client(session, "s3")
    out = []
    for project, deployment in sorted(deployments):
        prefix = artifact_prefix(project, deployment)
        try:
            pages = s3.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix, Delimiter="/"
            )
            runs = [p["Prefix"] for page in pages for p in page.get("CommonPrefixes", [])]
        except ClientError as exc:
            if error_code(exc) == "NoSuchBucket":
                return []
            raise translate(exc, "s3", "ListObjectsV2", f"s3://{bucket}/{prefix}") from None
        for run in runs:
            out.append(Found(Kind.S3_ARTIFACT, f"s3://{bucket}/{run}", region, deployment, project))
    return out
