"""`deploy --ttl`: the endpoint deletes itself, scheduled in AWS rather than on the laptop.

A one-time EventBridge Scheduler schedule, `at(...)` in UTC, calls SageMaker's
DeleteEndpoint through Scheduler's universal target, so a forgotten endpoint stops
billing even when nobody runs llmship again. The schedule assumes a role of its own,
trusted by scheduler.amazonaws.com (for this account only) and allowed nothing but
sagemaker:DeleteEndpoint on this one endpoint. The schedule deletes itself after it
fires (ActionAfterCompletion DELETE); the role stays until `cancel_deletion` (which
`llmship destroy` calls) removes it.

Schedules carry no tags in EventBridge Scheduler, so the schedule is found again by
its name, derived from the endpoint's, and is recorded in the state store. All
schedules live in one schedule group, `llmship`, shared by every deployment in the
account and region; it costs nothing and is never deleted by one deployment.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from llmship.aws.iam import PolicyContext, WrittenPolicy, register_policies
from llmship.aws.session import client, translate
from llmship.errors import DeployError
from llmship.state import StateStore

GROUP = "llmship"
DELETE_ENDPOINT = "arn:aws:scheduler:::aws-sdk:sagemaker:deleteEndpoint"
POLICY_NAME = "delete-endpoint"
SCHEDULE_KIND = "scheduler:schedule"
ROLE_KIND = "iam:role"
# Shorter than an endpoint takes to come up: the schedule would fire mid-creation.
MIN_TTL_SECONDS = 5 * 60
UNITS = {"m": 60, "h": 3600, "d": 86400}
_TTL = re.compile(r"(\d+)\s*([mhd])")
_AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")
# A new IAM role takes a few seconds before Scheduler may assume it.
ROLE_PROPAGATION_TRIES = 10


@dataclass(frozen=True)
class Schedule:
    name: str
    arn: str
    delete_at: datetime


def parse_ttl(text: str) -> int:
    """Seconds in a TTL such as "30m", "8h", "2d" or "1d12h"."""
    compact = text.strip().lower().replace(" ", "")
    parts = _TTL.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise DeployError(
            f"deploy.ttl: {text!r} is not a duration; write a number and a unit "
            "(m, h or d), e.g. 30m, 8h, 2d or 1d12h"
        )
    seconds = sum(int(number) * UNITS[unit] for number, unit in parts)
    if seconds < MIN_TTL_SECONDS:
        raise DeployError(
            f"deploy.ttl: {text!r} is shorter than {MIN_TTL_SECONDS // 60} minutes, less "
            "than an endpoint takes to start; give a longer time"
        )
    return seconds


def bounded_name(prefix: str, name: str, limit: int = 64) -> str:
    """`prefix-name`, cut to `limit` characters with a hash keeping distinct names apart."""
    whole = f"{prefix}-{name}"
    if len(whole) <= limit:
        return whole
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{whole[: limit - 9]}-{digest}"


def schedule_name(endpoint_name: str) -> str:
    """The schedule that deletes `endpoint_name` (Scheduler names: at most 64 chars)."""
    return bounded_name("delete", endpoint_name)


def role_name(endpoint_name: str) -> str:
    """The role that schedule assumes (IAM role names: at most 64 chars)."""
    return bounded_name("llmship-ttl", endpoint_name)


def schedule_deletion(
    session,
    *,
    endpoint_name: str,
    ttl_seconds: int,
    tags: dict[str, str],
    store: StateStore,
    deployment: str,
    project: str,
    now: datetime | None = None,
    sleep=time.sleep,
) -> Schedule:
    """Schedule DeleteEndpoint for `endpoint_name` in `ttl_seconds`; a second call moves
    the time (the schedule and its role are created once)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    delete_at = (now + timedelta(seconds=ttl_seconds)).replace(microsecond=0)
    region = session.region_name
    account = _account(session)
    role_arn, created = _ensure_role(
        session, endpoint_name, account, region, tags, store, deployment, project
    )
    scheduler = client(session, "scheduler")
    _ensure_group(scheduler)
    name = schedule_name(endpoint_name)
    key = f"{GROUP}/{name}"
    details = {"endpoint": endpoint_name, "delete_at": delete_at.isoformat(), "role": role_arn}
    store.record_creating(SCHEDULE_KIND, key, deployment, project, region, details)
    request = {
        "Name": name,
        "GroupName": GROUP,
        "ScheduleExpression": f"at({delete_at.strftime('%Y-%m-%dT%H:%M:%S')})",
        "ScheduleExpressionTimezone": "UTC",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "ActionAfterCompletion": "DELETE",
        "State": "ENABLED",
        "Description": f"llmship: delete endpoint {endpoint_name} (deploy --ttl)",
        "Target": {
            "Arn": DELETE_ENDPOINT,
            "RoleArn": role_arn,
            "Input": json.dumps({"EndpointName": endpoint_name}),
            "RetryPolicy": {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400},
        },
    }
    arn = _put_schedule(scheduler, request, role_just_created=created, sleep=sleep)
    store.set_status(SCHEDULE_KIND, key, "UP", region, {"arn": arn})
    return Schedule(name=name, arn=arn, delete_at=delete_at)


def time_left(session, endpoint_name: str, now: datetime | None = None) -> timedelta | None:
    """Time until the scheduled deletion (zero once due), or None when none is scheduled."""
    from botocore.exceptions import ClientError

    name = schedule_name(endpoint_name)
    try:
        found = client(session, "scheduler").get_schedule(GroupName=GROUP, Name=name)
    except ClientError as exc:
        if _code(exc) == "ResourceNotFoundException":
            return None
        raise translate(exc, "scheduler", "GetSchedule", name) from None
    match = _AT.match(found.get("ScheduleExpression", ""))
    if match is None:
        return None
    zone = ZoneInfo(found.get("ScheduleExpressionTimezone") or "UTC")
    delete_at = datetime.fromisoformat(match.group(1)).replace(tzinfo=zone)
    return max(delete_at - (now or datetime.now(UTC)), timedelta(0))


def cancel_deletion(session, endpoint_name: str, store: StateStore | None = None) -> None:
    """Delete the schedule and its role (and their records); nothing there is no error."""
    from botocore.exceptions import ClientError

    region = session.region_name
    name = schedule_name(endpoint_name)
    try:
        client(session, "scheduler").delete_schedule(GroupName=GROUP, Name=name)
    except ClientError as exc:
        if _code(exc) != "ResourceNotFoundException":
            raise translate(exc, "scheduler", "DeleteSchedule", name) from None
    if store is not None:
        store.remove(SCHEDULE_KIND, f"{GROUP}/{name}", region)
    iam = client(session, "iam")
    role = role_name(endpoint_name)
    for operation, call in (
        ("DeleteRolePolicy", lambda: iam.delete_role_policy(RoleName=role, PolicyName=POLICY_NAME)),
        ("DeleteRole", lambda: iam.delete_role(RoleName=role)),
    ):
        try:
            call()
        except ClientError as exc:
            if _code(exc) != "NoSuchEntity":
                raise translate(exc, "iam", operation, role) from None
    if store is not None:
        store.remove(ROLE_KIND, role)


def _code(exc) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def _account(session) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return client(session, "sts").get_caller_identity()["Account"]
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, "sts", "GetCallerIdentity") from None


def trust_policy(account: str) -> dict:
    """Only EventBridge Scheduler, acting for this account, may assume the deleting role."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "scheduler.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": account}},
            }
        ],
    }


def delete_policy(partition: str, region: str, account: str, endpoint_name: str) -> dict:
    """DeleteEndpoint on this one endpoint, nothing else."""
    # SageMaker writes endpoint names in ARNs in lower case.
    endpoint_arn = f"arn:{partition}:sagemaker:{region}:{account}:endpoint/{endpoint_name.lower()}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "sagemaker:DeleteEndpoint", "Resource": endpoint_arn}
        ],
    }


@register_policies("ttl-role")
def _ttl_policies(ctx: PolicyContext) -> list[WrittenPolicy]:
    return [
        WrittenPolicy("trust", trust_policy(ctx.account), "trust"),
        WrittenPolicy(
            POLICY_NAME, delete_policy(ctx.partition, ctx.region, ctx.account, ctx.deployment)
        ),
    ]


def _ensure_role(
    session, endpoint_name, account, region, tags, store, deployment, project
) -> tuple[str, bool]:
    """The deleting role, created if missing; its policy is (re)written either way."""
    from botocore.exceptions import ClientError

    iam = client(session, "iam")
    name = role_name(endpoint_name)
    partition = session.get_partition_for_region(region)
    trust = trust_policy(account)
    policy = delete_policy(partition, region, account, endpoint_name)
    store.record_creating(ROLE_KIND, name, deployment, project, details={"endpoint": endpoint_name})
    created = False
    try:
        arn = iam.get_role(RoleName=name)["Role"]["Arn"]
    except ClientError as exc:
        if _code(exc) != "NoSuchEntity":
            raise translate(exc, "iam", "GetRole", name) from None
        try:
            arn = iam.create_role(
                RoleName=name,
                AssumeRolePolicyDocument=json.dumps(trust),
                Description=f"llmship: lets EventBridge Scheduler delete endpoint {endpoint_name}",
                Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
            )["Role"]["Arn"]
        except ClientError as exc2:
            raise translate(exc2, "iam", "CreateRole", name) from None
        created = True
    try:
        iam.put_role_policy(
            RoleName=name, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(policy)
        )
    except ClientError as exc:
        raise translate(exc, "iam", "PutRolePolicy", name) from None
    store.set_status(ROLE_KIND, name, "UP", details={"arn": arn})
    return arn, created


def _ensure_group(scheduler) -> None:
    """The shared `llmship` schedule group (tagged as shared, never owned by one deployment)."""
    from botocore.exceptions import ClientError

    try:
        scheduler.get_schedule_group(Name=GROUP)
        return
    except ClientError as exc:
        if _code(exc) != "ResourceNotFoundException":
            raise translate(exc, "scheduler", "GetScheduleGroup", GROUP) from None
    try:
        scheduler.create_schedule_group(
            Name=GROUP, Tags=[{"Key": "llmship:shared", "Value": "true"}]
        )
    except ClientError as exc:
        if _code(exc) != "ConflictException":  # made meanwhile by another deploy
            raise translate(exc, "scheduler", "CreateScheduleGroup", GROUP) from None


def _put_schedule(scheduler, request: dict, *, role_just_created: bool, sleep) -> str:
    """Create the schedule, or update it when it exists; waits out a new role's propagation."""
    from botocore.exceptions import ClientError

    tries = ROLE_PROPAGATION_TRIES if role_just_created else 1
    for attempt in range(1, tries + 1):
        try:
            return scheduler.create_schedule(**request)["ScheduleArn"]
        except ClientError as exc:
            if _code(exc) == "ConflictException":
                break
            role_not_ready = _code(exc) == "ValidationException" and "role" in str(exc).lower()
            if role_not_ready and attempt < tries:
                sleep(3)
                continue
            raise translate(exc, "scheduler", "CreateSchedule", request["Name"]) from None
    try:
        return scheduler.update_schedule(**request)["ScheduleArn"]
    except ClientError as exc:
        raise translate(exc, "scheduler", "UpdateSchedule", request["Name"]) from None
