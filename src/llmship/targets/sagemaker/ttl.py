"""`deploy --ttl`: the endpoint deletes itself, scheduled in AWS rather than on the laptop.

A one-time EventBridge Scheduler schedule, `at(...)` in UTC, calls SageMaker's
DeleteEndpoint through Scheduler's universal target, so a forgotten endpoint stops
billing even when nobody runs llmship again. The schedule assumes a role of its own,
trusted by scheduler.amazonaws.com (for this account only) and allowed nothing but
sagemaker:DeleteEndpoint on this one endpoint (and sqs:SendMessage to its dead-letter
queue). The schedule deletes itself after it fires (ActionAfterCompletion DELETE); the
role stays until `cancel_deletion` (which `llmship destroy` calls) removes it.

A deletion can fail for good (the endpoint was Updating through every retry, the role
lost its permission): the schedule then still deletes itself and would leave no trace.
So it has a dead-letter queue, a standard SQS queue of its own (tagged, recorded,
destroyed with the deployment, messages kept 14 days), where Scheduler puts the failed
invocation with its error ("Configuring a schedule's dead-letter queue" in the
EventBridge Scheduler guide). `check` reports a deletion time that has passed while the
endpoint still exists, and peeks at the queue without consuming its messages.

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

from llmship.aws.errors import aws_call, error_code, ignore_not_found, translate
from llmship.aws.iam import PolicyContext, WrittenPolicy, register_policies
from llmship.aws.session import client
from llmship.errors import DeployError
from llmship.state import TAG_PREFIX, Kind, Resource, StateStore, Status, tag_list

GROUP = "llmship"
DELETE_ENDPOINT = "arn:aws:scheduler:::aws-sdk:sagemaker:deleteEndpoint"
POLICY_NAME = "delete-endpoint"
# The names tests and `status --discover` import.
QUEUE_KIND = Kind.QUEUE
# SQS's longest retention: a failed deletion stays readable for two weeks.
DLQ_RETENTION_SECONDS = 14 * 86400
# CreateQueue of a name deleted less than 60 s ago fails (a destroy, then a deploy --ttl).
QUEUE_DELETED_RECENTLY = ("QueueDeletedRecently", "AWS.SimpleQueueService.QueueDeletedRecently")
QUEUE_RECREATE_TRIES, QUEUE_RECREATE_WAIT_S = 8, 10
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
    dead_letter_queue: str = ""  # its ARN


@dataclass(frozen=True)
class DeadLetter:
    """One failed invocation Scheduler left in the dead-letter queue (message attributes
    as the EventBridge Scheduler guide documents them)."""

    error_code: str
    error_message: str
    retry_attempts: str
    scheduled_time: str


@dataclass(frozen=True)
class TtlCheck:
    """What `status` shows of a TTL: time left (None: none scheduled) and what went wrong."""

    left: timedelta | None
    notes: tuple[str, ...] = ()


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


def queue_name(endpoint_name: str) -> str:
    """The schedule's dead-letter queue (SQS queue names: at most 80 chars)."""
    return bounded_name("llmship-ttl-dlq", endpoint_name, limit=80)


def queue_arn(partition: str, region: str, account: str, endpoint_name: str) -> str:
    return f"arn:{partition}:sqs:{region}:{account}:{queue_name(endpoint_name)}"


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
    dead_letters = _ensure_queue(
        session, endpoint_name, account, tags, store, deployment, project, sleep
    )
    role_arn, created = _ensure_role(
        session, endpoint_name, account, region, tags, store, deployment, project
    )
    scheduler = client(session, "scheduler")
    _ensure_group(scheduler)
    name = schedule_name(endpoint_name)
    key = f"{GROUP}/{name}"
    details = {"endpoint": endpoint_name, "delete_at": delete_at.isoformat(), "role": role_arn}
    store.record_creating(Kind.SCHEDULE, key, deployment, project, region, details)
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
            "DeadLetterConfig": {"Arn": dead_letters},
        },
    }
    arn = _put_schedule(scheduler, request, role_just_created=created, sleep=sleep)
    store.set_status(Kind.SCHEDULE, key, Status.UP, region, {"arn": arn})
    return Schedule(name=name, arn=arn, delete_at=delete_at, dead_letter_queue=dead_letters)


def time_left(session, endpoint_name: str, now: datetime | None = None) -> timedelta | None:
    """Time until the scheduled deletion (zero once due), or None when none is scheduled."""
    name, found = schedule_name(endpoint_name), {}
    with ignore_not_found("scheduler", "GetSchedule", name):
        found = client(session, "scheduler").get_schedule(GroupName=GROUP, Name=name)
    match = _AT.match(found.get("ScheduleExpression", ""))
    if match is None:
        return None
    zone = ZoneInfo(found.get("ScheduleExpressionTimezone") or "UTC")
    delete_at = datetime.fromisoformat(match.group(1)).replace(tzinfo=zone)
    return max(delete_at - (now or datetime.now(UTC)), timedelta(0))


def check(
    session,
    endpoint_name: str,
    resources: list[Resource],
    *,
    endpoint_status: str,
    now: datetime | None = None,
) -> TtlCheck:
    """The TTL as `status` shows it: time left, a deletion time passed while the endpoint
    still exists (the schedule is gone by then: the time is the one recorded), and the
    dead letters of failed deletions."""
    now = now or datetime.now(UTC)
    left = time_left(session, endpoint_name, now)
    notes = []
    due = _recorded_delete_at(resources, endpoint_name)
    if due is not None and due <= now and endpoint_status != "Deleting":
        notes.append(
            f"its TTL deletion was due at {due:%Y-%m-%d %H:%M} UTC, but endpoint "
            f"{endpoint_name} still exists ({endpoint_status}); Scheduler retries for up to "
            "24 h: `llmship destroy` deletes it now"
        )
        left = timedelta(0)
    ttl_made = any(r.kind in (Kind.SCHEDULE, Kind.QUEUE) for r in resources)
    letters = dead_letters(session, endpoint_name) if ttl_made else []
    for letter in letters[:3]:
        notes.append(
            f"scheduled deletion failed ({letter.scheduled_time or 'time unknown'}, "
            f"{letter.retry_attempts or '?'} retries): {letter.error_code}: "
            f"{letter.error_message}"
        )
    if letters:
        notes.append(
            f"{len(letters)} dead letter(s) kept in SQS queue {queue_name(endpoint_name)}; "
            "`llmship destroy` deletes the endpoint and the queue"
        )
    return TtlCheck(left, tuple(notes))


def dead_letters(session, endpoint_name: str) -> list[DeadLetter]:
    """The failed invocations waiting in the schedule's dead-letter queue, peeked: a
    visibility timeout of 0 leaves every message where it is for the next look."""
    sqs, name, url = client(session, "sqs"), queue_name(endpoint_name), None
    with ignore_not_found("sqs", "GetQueueUrl", name):  # none: a TTL made before queues
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    if url is None:
        return []
    with aws_call("sqs", "GetQueueAttributes", name):
        waiting = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
    if int(waiting.get("ApproximateNumberOfMessages", "0")) == 0:
        return []
    with aws_call("sqs", "ReceiveMessage", name):  # a long poll asks every SQS server
        messages = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=0,
            WaitTimeSeconds=1,
            MessageAttributeNames=["All"],
        ).get("Messages", [])

    def attribute(message: dict, key: str) -> str:
        return message.get("MessageAttributes", {}).get(key, {}).get("StringValue", "")

    return [
        DeadLetter(
            error_code=attribute(m, "ERROR_CODE") or "unknown error",
            error_message=attribute(m, "ERROR_MESSAGE"),
            retry_attempts=attribute(m, "RETRY_ATTEMPTS"),
            scheduled_time=attribute(m, "SCHEDULED_TIME"),
        )
        for m in messages
    ]


def _recorded_delete_at(resources: list[Resource], endpoint_name: str) -> datetime | None:
    for resource in resources:
        if resource.kind == Kind.SCHEDULE and resource.details.get("endpoint") == endpoint_name:
            recorded = resource.details.get("delete_at")
            return datetime.fromisoformat(recorded) if recorded else None
    return None


def cancel_deletion(session, endpoint_name: str, store: StateStore | None = None) -> None:
    """Delete the schedule, its role and its dead-letter queue (and their records);
    nothing there is no error."""
    region = session.region_name
    name = schedule_name(endpoint_name)
    with ignore_not_found("scheduler", "DeleteSchedule", name):
        client(session, "scheduler").delete_schedule(GroupName=GROUP, Name=name)
    if store is not None:
        store.remove(Kind.SCHEDULE, f"{GROUP}/{name}", region)
    iam = client(session, "iam")
    role = role_name(endpoint_name)
    for operation, call in (
        ("DeleteRolePolicy", lambda: iam.delete_role_policy(RoleName=role, PolicyName=POLICY_NAME)),
        ("DeleteRole", lambda: iam.delete_role(RoleName=role)),
    ):
        with ignore_not_found("iam", operation, role):
            call()
    if store is not None:
        store.remove(Kind.IAM_ROLE, role)
    sqs, queue, url = client(session, "sqs"), queue_name(endpoint_name), None
    with ignore_not_found("sqs", "GetQueueUrl", queue):
        url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    if url is not None:
        with ignore_not_found("sqs", "DeleteQueue", queue):
            sqs.delete_queue(QueueUrl=url)
    if store is not None:
        store.remove(Kind.QUEUE, queue, region)


def _account(session) -> str:
    with aws_call("sts", "GetCallerIdentity"):
        return client(session, "sts").get_caller_identity()["Account"]


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
    """DeleteEndpoint on this one endpoint and SendMessage to its dead-letter queue (what
    Scheduler needs to deliver a failed invocation there), nothing else."""
    # SageMaker writes endpoint names in ARNs in lower case.
    endpoint_arn = f"arn:{partition}:sagemaker:{region}:{account}:endpoint/{endpoint_name.lower()}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "sagemaker:DeleteEndpoint", "Resource": endpoint_arn},
            {
                "Effect": "Allow",
                "Action": "sqs:SendMessage",
                "Resource": queue_arn(partition, region, account, endpoint_name),
            },
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
    iam = client(session, "iam")
    name = role_name(endpoint_name)
    partition = session.get_partition_for_region(region)
    trust = trust_policy(account)
    policy = delete_policy(partition, region, account, endpoint_name)
    store.record_creating(
        Kind.IAM_ROLE, name, deployment, project, details={"endpoint": endpoint_name}
    )
    arn = None
    with ignore_not_found("iam", "GetRole", name):
        arn = iam.get_role(RoleName=name)["Role"]["Arn"]
    created = arn is None
    if created:
        with aws_call("iam", "CreateRole", name):
            arn = iam.create_role(
                RoleName=name,
                AssumeRolePolicyDocument=json.dumps(trust),
                Description=f"llmship: lets EventBridge Scheduler delete endpoint {endpoint_name}",
                Tags=tag_list(tags),
            )["Role"]["Arn"]
    with aws_call("iam", "PutRolePolicy", name):
        iam.put_role_policy(
            RoleName=name, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(policy)
        )
    store.set_status(Kind.IAM_ROLE, name, Status.UP, details={"arn": arn})
    return arn, created


def _ensure_queue(session, endpoint_name, account, tags, store, deployment, project, sleep) -> str:
    """The schedule's dead-letter queue (a standard queue: Scheduler takes no FIFO queue),
    created if missing; its ARN. A name deleted under a minute ago is waited for."""
    from botocore.exceptions import BotoCoreError, ClientError

    region = session.region_name
    name = queue_name(endpoint_name)
    arn = queue_arn(session.get_partition_for_region(region), region, account, endpoint_name)
    details = {"endpoint": endpoint_name}
    store.record_creating(Kind.QUEUE, name, deployment, project, region, details)
    sqs = client(session, "sqs")
    for attempt in range(1, QUEUE_RECREATE_TRIES + 1):
        try:
            url = sqs.create_queue(
                QueueName=name,
                Attributes={"MessageRetentionPeriod": str(DLQ_RETENTION_SECONDS)},
                tags=tags,
            )["QueueUrl"]
            break
        except (ClientError, BotoCoreError) as exc:
            if error_code(exc) not in QUEUE_DELETED_RECENTLY or attempt == QUEUE_RECREATE_TRIES:
                raise translate(exc, "sqs", "CreateQueue", name) from None
            sleep(QUEUE_RECREATE_WAIT_S)
    store.set_status(Kind.QUEUE, name, Status.UP, region, {"url": url, "arn": arn})
    return arn


def _ensure_group(scheduler) -> None:
    """The shared `llmship` schedule group (tagged as shared, never owned by one deployment)."""
    from botocore.exceptions import ClientError

    with ignore_not_found("scheduler", "GetScheduleGroup", GROUP):
        scheduler.get_schedule_group(Name=GROUP)
        return
    try:
        scheduler.create_schedule_group(Name=GROUP, Tags=tag_list({f"{TAG_PREFIX}shared": "true"}))
    except ClientError as exc:
        if error_code(exc) != "ConflictException":  # made meanwhile by another deploy
            raise translate(exc, "scheduler", "CreateScheduleGroup", GROUP) from None


def _put_schedule(scheduler, request: dict, *, role_just_created: bool, sleep) -> str:
    """Create the schedule, or update it when it exists; waits out a new role's propagation."""
    from botocore.exceptions import ClientError

    tries = ROLE_PROPAGATION_TRIES if role_just_created else 1
    for attempt in range(1, tries + 1):
        try:
            return scheduler.create_schedule(**request)["ScheduleArn"]
        except ClientError as exc:
            if error_code(exc) == "ConflictException":
                break
            role_not_ready = error_code(exc) == "ValidationException" and "role" in str(exc).lower()
            if role_not_ready and attempt < tries:
                sleep(3)
                continue
            raise translate(exc, "scheduler", "CreateSchedule", request["Name"]) from None
    with aws_call("scheduler", "UpdateSchedule", request["Name"]):
        return scheduler.update_schedule(**request)["ScheduleArn"]
