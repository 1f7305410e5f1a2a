"""SageMaker and EventBridge Scheduler rules moto does not enforce, checked by llmship.

moto updates nothing (it has no UpdateEndpoint), takes a canary on one instance, and
never fires a schedule. AWS refuses some changes of endpoint kind and some canary/linear
sizes only at UpdateEndpoint, after the new model and config exist; a TTL deletion that
fails for good leaves a schedule that deletes itself. These tests deploy on moto (server
mode), then check that the plan refuses, before anything is created, what AWS documents
it refuses, and that a failed TTL deletion stays visible. Each cites its source.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta

import boto3
import pytest
from botocore.stub import Stubber

from llmship.aws.s3 import ensure_bucket
from llmship.config.loader import load_config_dict
from llmship.errors import AwsError, DeployError
from llmship.target import request_for
from llmship.targets.sagemaker import ttl, update
from llmship.targets.sagemaker.kind_change import KindChange, check_kind_change, live_kind
from llmship.targets.sagemaker.target import ENDPOINT_KIND, SageMakerTarget
from llmship.targets.sagemaker.update import DeploymentPolicy, deployment_config

REGION = "us-west-2"
ROLE = "arn:aws:iam::123456789012:role/llmship-sagemaker"
TAGS = {"llmship:project": "demo", "llmship:deployment": "dep", "llmship:run": "r1"}


@pytest.fixture(autouse=True)
def quota(monkeypatch):
    """moto has no Service Quotas listing; every instance count is within quota here."""
    from llmship.targets.sagemaker import quotas

    def check(session, instance_type, count, usage="endpoint"):
        return quotas.QuotaCheck(True, instance_type, "L-1", 10.0, count, "within quota")

    monkeypatch.setattr(quotas, "check_instance_quota", check)


@pytest.fixture()
def bucket(aws_env):
    name = f"llmship-rules-{time.time_ns()}"
    ensure_bucket(boto3.client("s3", region_name=REGION), name, REGION, {})
    return name


def loaded(tmp_path, bucket: str, **deploy):
    tree = {
        "project": {"name": "demo"},
        "model": {"name_or_path": "tiny", "max_length": 256},
        "data": {"source": "d.jsonl"},
        "deploy": {"target": "sagemaker", "model_data": f"s3://{bucket}/m.tar.gz", **deploy},
        "aws": {"region": REGION, "bucket": bucket, "role_arn": ROLE},
    }
    return load_config_dict(tree, base_dir=tmp_path, env={})


def target(store, config, **options) -> SageMakerTarget:
    options.setdefault("session", boto3.Session(region_name=REGION))
    options.setdefault("sleep", lambda s: None)
    options.setdefault("poll_seconds", 0.01)
    return SageMakerTarget(store, config.config.aws, **options)


def unique(prefix: str) -> str:
    return f"{prefix}-{time.time_ns() % 10**9}"


def sm():
    return boto3.client("sagemaker", region_name=REGION)


def counts() -> tuple[int, int]:
    return (
        len(sm().list_models(MaxResults=100)["Models"]),
        len(sm().list_endpoint_configs(MaxResults=100)["EndpointConfigs"]),
    )


REALTIME = {"kind": "realtime", "instance_type": "ml.m5.xlarge"}
SERVERLESS = {"kind": "serverless", "serverless": {"memory_mb": 2048}}
ASYNC = {"kind": "async", "instance_type": "ml.m5.xlarge"}


def deployed(store, tmp_path, bucket, **deploy):
    """A live endpoint of the given kind (moto), and its name."""
    name = unique(deploy["kind"][:4])
    config = loaded(tmp_path, bucket, name=name, **deploy)
    chosen = target(store, config)
    chosen.apply(chosen.plan(request_for(config, None)))
    return chosen, name


def refused_before_anything(chosen, store, config, monkeypatch) -> str:
    """The plan's problems; applying it creates nothing and never calls UpdateEndpoint."""
    started: list[dict] = []
    monkeypatch.setattr(update, "start_update", lambda sm, **kw: started.append(kw))
    before, recorded = counts(), store.resources()
    plan = chosen.plan(request_for(config, None))
    with pytest.raises(DeployError, match="cannot be created as planned"):
        chosen.apply(plan)
    assert counts() == before and store.resources() == recorded and started == []
    return "\n".join(plan.problems)


# ---- item 5: changes of endpoint kind ----------------------------------------------------


def test_realtime_to_serverless_is_refused_before_anything_is_created(
    store, bucket, tmp_path, monkeypatch
):
    """AWS: "Updating a real-time inference endpoint to either an on-demand serverless
    endpoint or a serverless endpoint with Provisioned Concurrency is currently not
    supported." (docs.aws.amazon.com/sagemaker/latest/dg/serverless-endpoints-update.html;
    the Serverless Inference feature exclusions say the same of converting an
    instance-based endpoint). An async endpoint is instance-based too."""
    for live in (REALTIME, ASYNC):
        chosen, name = deployed(store, tmp_path, bucket, **live)
        config = loaded(tmp_path, bucket, name=name, **SERVERLESS)
        problems = refused_before_anything(chosen, store, config, monkeypatch)
        assert "deploy.kind" in problems and "serverless" in problems
        assert f"llmship destroy {name}" in problems and "deploy.name" in problems
        chosen.destroy(name)


def test_serverless_to_realtime_goes_ahead_with_a_warning(store, bucket, tmp_path):
    """AWS: a serverless endpoint can be updated to real-time, but the update cannot be
    rolled back to serverless (Serverless Inference feature exclusions,
    docs.aws.amazon.com/sagemaker/latest/dg/serverless-endpoints.html)."""
    chosen, name = deployed(store, tmp_path, bucket, **SERVERLESS)
    config = loaded(tmp_path, bucket, name=name, **REALTIME)
    plan = chosen.plan(request_for(config, None))
    assert plan.problems == []
    assert any("cannot turn it back into a serverless" in w for w in plan.warnings)
    assert plan.actions[-1].verb == "change"
    chosen.destroy(name)


def test_changes_to_and_from_async_are_refused(store, bucket, tmp_path, monkeypatch):
    """UpdateEndpoint on an async endpoint with a config without AsyncInferenceConfig
    answers "ValidationException: The AsyncInferenceConfig parameter cannot be removed
    from this endpoint ..." (a real response quoted in aws/sagemaker-python-sdk#3124);
    "Update an Asynchronous Endpoint" (docs.aws.amazon.com/sagemaker/latest/dg/
    async-inference-update-endpoint.html) updates async endpoints with async configs only,
    and UpdateEndpoint offers no way to make an existing endpoint asynchronous."""
    chosen, name = deployed(store, tmp_path, bucket, **ASYNC)
    problems = refused_before_anything(
        chosen, store, loaded(tmp_path, bucket, name=name, **REALTIME), monkeypatch
    )
    assert "is asynchronous" in problems and "AsyncInferenceConfig cannot be removed" in problems
    chosen.destroy(name)

    chosen, name = deployed(store, tmp_path, bucket, **REALTIME)
    problems = refused_before_anything(
        chosen, store, loaded(tmp_path, bucket, name=name, **ASYNC), monkeypatch
    )
    assert "cannot make an existing endpoint asynchronous" in problems
    chosen.destroy(name)


def test_live_kind_reads_describe_endpoint_when_the_config_is_gone():
    """DescribeEndpoint's own fields (botocore's sagemaker model: ProductionVariants[].
    CurrentServerlessConfig, AsyncInferenceConfig) tell the kind when the live endpoint
    config was deleted, which UpdateEndpoint's documentation warns can happen."""
    serverless = {"ProductionVariants": [{"CurrentServerlessConfig": {"MemorySizeInMB": 2048}}]}
    asynchronous = {"AsyncInferenceConfig": {"OutputConfig": {"S3OutputPath": "s3://b/o/"}}}
    assert live_kind(serverless, None) == "serverless"
    assert live_kind(asynchronous, None) == "async"
    assert live_kind({"ProductionVariants": [{"CurrentInstanceCount": 1}]}, None) == "realtime"
    assert check_kind_change("ep", "realtime", "realtime") == KindChange()


# ---- item 8: canary and linear sizes ------------------------------------------------------


def test_canary_or_linear_on_one_instance_is_refused_in_the_plan(
    store, bucket, tmp_path, monkeypatch
):
    """TrafficRoutingConfig (docs.aws.amazon.com/sagemaker/latest/APIReference/
    API_TrafficRoutingConfig.html): CanarySize "must be less than or equal to 50% of the
    variant's total instance count", LinearStepSize "must be 10-50%"; a step is at least
    one instance (CapacitySize Value: minimum 1), so one instance cannot hold either."""
    chosen, name = deployed(store, tmp_path, bucket, **REALTIME)
    for strategy, key in (("canary", "canary_percent"), ("linear", "linear_step_percent")):
        config = loaded(tmp_path, bucket, name=name, update={"strategy": strategy}, **REALTIME)
        problems = refused_before_anything(chosen, store, config, monkeypatch)
        assert f"deploy.update.strategy is {strategy}" in problems
        assert f"deploy.update.{key}" in problems and "deploy.instance_count 1" in problems
        assert "all-at-once" in problems
    chosen.destroy(name)


@pytest.mark.parametrize(
    ("policy", "count", "size"),
    [
        (DeploymentPolicy(strategy="canary", canary_percent=10), 2, 1),
        (DeploymentPolicy(strategy="canary", canary_percent=25), 8, 2),
        (DeploymentPolicy(strategy="canary", canary_percent=10), 3, 1),  # 10% of 3: 1
        (DeploymentPolicy(strategy="linear", linear_step_percent=10), 10, 1),
        (DeploymentPolicy(strategy="linear", linear_step_percent=50), 4, 2),
    ],
)
def test_steps_go_to_sagemaker_in_whole_instances(policy, count, size):
    """CapacitySize (API_CapacitySize.html): INSTANCE_COUNT or CAPACITY_PERCENT; llmship
    rounds the configured percent up to whole instances and sends that count, so the
    50% rule it checks is the one SageMaker applies."""
    routing = deployment_config(policy, count)["BlueGreenUpdatePolicy"][
        "TrafficRoutingConfiguration"
    ]
    field = "CanarySize" if policy.strategy == "canary" else "LinearStepSize"
    assert routing[field] == {"Type": "INSTANCE_COUNT", "Value": size}


@pytest.mark.parametrize(
    ("policy", "count", "message"),
    [
        (DeploymentPolicy(strategy="canary", canary_percent=50), 3, r"2 of .* 3 .* at least 4"),
        (DeploymentPolicy(strategy="linear", linear_step_percent=20), 1, r"at least 2"),
        (DeploymentPolicy(strategy="canary"), 0, r"serverless endpoint has no instances"),
    ],
)
def test_steps_no_fleet_can_hold_are_refused(policy, count, message):
    """Same rules (API_TrafficRoutingConfig.html); a serverless variant has no instance
    count for a canary to be a share of."""
    with pytest.raises(DeployError, match=r"^deploy\.update\.strategy is .*" + message):
        deployment_config(policy, count)


# ---- item 12: a TTL deletion that fails leaves a trace --------------------------------------


def test_ttl_schedule_has_a_tagged_recorded_dead_letter_queue_that_destroy_deletes(
    store, bucket, tmp_path
):
    """EventBridge Scheduler "Configuring a schedule's dead-letter queue"
    (docs.aws.amazon.com/scheduler/latest/UserGuide/configuring-schedule-dlq.html): a
    standard SQS queue (no FIFO) named in the target's DeadLetterConfig, and the
    schedule's execution role allowed sqs:SendMessage on it."""
    chosen, name = deployed(store, tmp_path, bucket, ttl="8h", **REALTIME)
    again = chosen.plan(
        request_for(loaded(tmp_path, bucket, name=name, ttl="8h", **REALTIME), None)
    )
    assert ("create", ttl.QUEUE_KIND, ttl.queue_name(name)) in [
        (a.verb, a.kind, a.name) for a in again.actions
    ]
    session = boto3.Session(region_name=REGION)
    schedule = session.client("scheduler").get_schedule(
        GroupName=ttl.GROUP, Name=ttl.schedule_name(name)
    )
    queue_arn = schedule["Target"]["DeadLetterConfig"]["Arn"]
    assert queue_arn == f"arn:aws:sqs:{REGION}:123456789012:{ttl.queue_name(name)}"
    sqs = session.client("sqs")
    url = sqs.get_queue_url(QueueName=ttl.queue_name(name))["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["QueueArn"] == queue_arn and "FifoQueue" not in attributes
    assert attributes["MessageRetentionPeriod"] == str(14 * 86400)
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {
        "llmship:project": "demo",
        "llmship:deployment": name,
        "llmship:run": "none",
    }
    (recorded,) = [r for r in store.resources(name) if r.kind == ttl.QUEUE_KIND]
    assert (recorded.name, recorded.status, recorded.details["arn"]) == (
        ttl.queue_name(name),
        "UP",
        queue_arn,
    )
    policy = session.client("iam").get_role_policy(
        RoleName=ttl.role_name(name), PolicyName=ttl.POLICY_NAME
    )["PolicyDocument"]
    assert {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": queue_arn} in policy[
        "Statement"
    ]

    chosen.destroy(name)
    assert store.resources(name) == []
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.get_queue_url(QueueName=ttl.queue_name(name))


def test_destroy_removes_the_ttl_of_an_endpoint_the_ttl_already_deleted(store, bucket, tmp_path):
    """The TTL did its job: the endpoint is gone and `status --refresh` forgot it; the
    role and the dead-letter queue (billed nothing, but left behind) still go with
    destroy."""
    chosen, name = deployed(store, tmp_path, bucket, ttl="8h", **REALTIME)
    sm().delete_endpoint(EndpointName=name)  # what the schedule does when it fires
    assert {r.kind for r in chosen.refresh(store.resources(name))} == {ENDPOINT_KIND}
    deleted = chosen.destroy(name)
    assert f"{ttl.QUEUE_KIND} {ttl.queue_name(name)}" in deleted
    assert store.resources(name) == []
    sqs = boto3.client("sqs", region_name=REGION)
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.get_queue_url(QueueName=ttl.queue_name(name))


def dead_letter_event(name: str) -> dict:
    """A dead-letter event as Scheduler sends it: the target's input as the body and the
    message attributes the "Configuring a schedule's dead-letter queue" page lists
    (ERROR_CODE, ERROR_MESSAGE, EXHAUSTED_RETRY_CONDITION, RETRY_ATTEMPTS, SCHEDULE_ARN,
    TARGET_ARN, ...). The error is IAM's documented AccessDenied wording
    (docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html)."""
    denied = (
        f"User: arn:aws:sts::123456789012:assumed-role/{ttl.role_name(name)}/scheduler is "
        "not authorized to perform: sagemaker:DeleteEndpoint on resource: "
        f"arn:aws:sagemaker:{REGION}:123456789012:endpoint/{name.lower()} because no "
        "identity-based policy allows the sagemaker:DeleteEndpoint action"
    )
    values = {
        "ERROR_CODE": "AccessDeniedException",
        "ERROR_MESSAGE": denied,
        "EXHAUSTED_RETRY_CONDITION": "MaximumEventAgeInSeconds",
        "RETRY_ATTEMPTS": "185",
        "SCHEDULED_TIME": "2031-03-04T13:06:07Z",
        "SCHEDULE_ARN": f"arn:aws:scheduler:{REGION}:123456789012:schedule/llmship/delete-x",
        "TARGET_ARN": ttl.DELETE_ENDPOINT,
    }
    return {
        "MessageBody": json.dumps({"EndpointName": name}),
        "MessageAttributes": {
            key: {"DataType": "String", "StringValue": value} for key, value in values.items()
        },
    }


def test_status_reports_an_overdue_ttl_and_its_dead_letters(store, bucket, tmp_path):
    """With ActionAfterCompletion DELETE the schedule deletes itself after its last try
    (CreateSchedule, docs.aws.amazon.com/scheduler/latest/APIReference/
    API_CreateSchedule.html), so only the recorded time tells a deletion was due; the
    dead-letter queue holds why it failed. status peeks (VisibilityTimeout 0) and leaves
    the message for the next look."""
    chosen, name = deployed(store, tmp_path, bucket, ttl="8h", **REALTIME)
    session = boto3.Session(region_name=REGION)
    # The deletion fired, failed for good, and the schedule removed itself.
    session.client("scheduler").delete_schedule(GroupName=ttl.GROUP, Name=ttl.schedule_name(name))
    created = next(r for r in store.resources(name) if r.kind == ENDPOINT_KIND).created
    later = target(store, loaded(tmp_path, bucket, name=name), now=lambda: created + 9 * 3600)

    row = later.status(name, store.resources(name))
    assert row.state == "InService" and row.ttl_left == timedelta(0)
    (overdue,) = [n for n in row.notes if "TTL deletion was due" in n]
    assert f"endpoint {name} still exists (InService)" in overdue and "llmship destroy" in overdue

    sqs = session.client("sqs")
    url = sqs.get_queue_url(QueueName=ttl.queue_name(name))["QueueUrl"]
    sqs.send_message(QueueUrl=url, **dead_letter_event(name))
    for _ in range(2):  # the second look still finds it: nothing was consumed
        notes = "\n".join(later.status(name, store.resources(name)).notes)
        assert "scheduled deletion failed (2031-03-04T13:06:07Z, 185 retries)" in notes
        assert "AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/" in notes
        assert f"1 dead letter(s) kept in SQS queue {ttl.queue_name(name)}" in notes
    chosen.destroy(name)


def test_a_queue_name_deleted_under_a_minute_ago_is_waited_for(store):
    """CreateQueue: "You must wait 60 seconds after deleting a queue before you can create
    another queue with the same name" (QueueDeletedRecently in botocore's sqs model; the
    JSON protocol's query-compatible code is AWS.SimpleQueueService.QueueDeletedRecently).
    A destroy followed by a deploy --ttl meets it."""
    sqs = boto3.client("sqs", region_name=REGION, aws_access_key_id="k", aws_secret_access_key="s")

    class Session:
        region_name = REGION

        def client(self, service, config=None):
            assert service == "sqs"
            return sqs

        def get_partition_for_region(self, region):
            return "aws"

    url = f"https://sqs.{REGION}.amazonaws.com/123456789012/{ttl.queue_name('ep')}"
    slept: list[float] = []
    with Stubber(sqs) as stub:
        for _ in range(2):
            stub.add_client_error(
                "create_queue",
                "AWS.SimpleQueueService.QueueDeletedRecently",
                "You must wait 60 seconds after deleting a queue before you can create "
                "another queue with the same name.",
                400,
            )
        stub.add_response("create_queue", {"QueueUrl": url})
        arn = ttl._ensure_queue(Session(), "ep", "1", TAGS, store, "dep", "demo", slept.append)
    assert arn == f"arn:aws:sqs:{REGION}:1:{ttl.queue_name('ep')}"
    assert slept == [ttl.QUEUE_RECREATE_WAIT_S] * 2
    with Stubber(sqs) as stub:  # any other refusal is an error at once
        stub.add_client_error("create_queue", "QueueNameExists", "A queue with this name", 400)
        with pytest.raises(AwsError, match=r"sqs CreateQueue on llmship-ttl-dlq-ep failed"):
            ttl._ensure_queue(Session(), "ep", "1", TAGS, store, "dep", "demo", slept.append)
