"""Operating a deployment: TTL deletion scheduled in AWS, autoscaling, blue/green update.

TTL and autoscaling run against moto in server mode (scheduler, iam, sts,
application-autoscaling, cloudwatch). moto has no UpdateEndpoint, so the update is
tested with botocore's Stubber on a real sagemaker client: the real service model
validates every request llmship sends (UpdateEndpoint, DescribeEndpoint).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import Stubber

from llmship.errors import AwsError, DeployError
from llmship.progress import RecordingReporter
from llmship.state import StateStore
from llmship.targets.sagemaker import scaling, ttl, update
from llmship.targets.sagemaker.scaling import (
    AutoscalingSettings,
    configure_autoscaling,
    remove_autoscaling,
)
from llmship.targets.sagemaker.ttl import cancel_deletion, parse_ttl, schedule_deletion, time_left
from llmship.targets.sagemaker.update import (
    DeploymentPolicy,
    UpdateOutcome,
    deployment_config,
    start_update,
    wait_for_update,
)

TAGS = {"llmship:project": "demo", "llmship:deployment": "dep", "llmship:run": "r1"}
NOW = datetime(2031, 3, 4, 5, 6, 7, 890, tzinfo=UTC)


def kinds(store: StateStore) -> dict[str, str]:
    return {f"{r.kind} {r.name}": r.status for r in store.resources()}


# ---- TTL ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("8h", 8 * 3600), ("30m", 1800), ("2d", 2 * 86400), ("1d12h", 36 * 3600), (" 8H ", 28800)],
)
def test_parse_ttl(text, seconds):
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["", "8", "h", "8x", "-1h", "1.5h", "8h later", "2m"])
def test_parse_ttl_refuses_what_is_not_a_duration(text):
    with pytest.raises(DeployError, match=r"^deploy\.ttl: "):
        parse_ttl(text)


def test_ttl_schedules_delete_endpoint_in_aws(session, store):
    endpoint = "ttl-Endpoint-1"
    made = schedule_deletion(
        session,
        endpoint_name=endpoint,
        ttl_seconds=8 * 3600,
        tags=TAGS,
        store=store,
        deployment="dep",
        project="demo",
        now=NOW,
    )
    assert made.delete_at == datetime(2031, 3, 4, 13, 6, 7, tzinfo=UTC)
    scheduler = session.client("scheduler")
    found = scheduler.get_schedule(GroupName="llmship", Name=made.name)
    assert found["Arn"] == made.arn
    assert found["ScheduleExpression"] == "at(2031-03-04T13:06:07)"
    assert found["ScheduleExpressionTimezone"] == "UTC"
    assert found["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert found["ActionAfterCompletion"] == "DELETE"
    target = found["Target"]
    assert target["Arn"] == "arn:aws:scheduler:::aws-sdk:sagemaker:deleteEndpoint"
    assert json.loads(target["Input"]) == {"EndpointName": endpoint}

    # The role: only Scheduler (of this account) may assume it, and it may only delete this.
    iam = session.client("iam")
    role = iam.get_role(RoleName=ttl.role_name(endpoint))["Role"]
    assert target["RoleArn"] == role["Arn"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}
    assert {t["Key"]: t["Value"] for t in role["Tags"]} == TAGS
    policy = iam.get_role_policy(RoleName=role["RoleName"], PolicyName="delete-endpoint")
    delete, dead_letter = policy["PolicyDocument"]["Statement"]
    assert delete["Action"] == "sagemaker:DeleteEndpoint"
    assert delete["Resource"] == (
        "arn:aws:sagemaker:us-west-2:123456789012:endpoint/ttl-endpoint-1"
    )
    assert dead_letter["Action"] == "sqs:SendMessage"
    assert dead_letter["Resource"] == target["DeadLetterConfig"]["Arn"]
    assert iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"] == ["delete-endpoint"]
    assert iam.list_attached_role_policies(RoleName=role["RoleName"])["AttachedPolicies"] == []

    group = scheduler.get_schedule_group(Name="llmship")
    assert scheduler.list_tags_for_resource(ResourceArn=group["Arn"])["Tags"] == [
        {"Key": "llmship:shared", "Value": "true"}
    ]
    assert kinds(store) == {
        f"iam:role {ttl.role_name(endpoint)}": "UP",
        f"scheduler:schedule llmship/{made.name}": "UP",
        f"sqs:queue {ttl.queue_name(endpoint)}": "UP",
    }
    assert time_left(session, endpoint, now=made.delete_at - timedelta(hours=7)) == timedelta(
        hours=7
    )
    assert time_left(session, endpoint, now=NOW + timedelta(days=1)) == timedelta(0)
    assert time_left(session, "no-such-endpoint") is None


def test_ttl_again_moves_the_time_and_cancel_removes_everything(session, store):
    endpoint = "ttl-twice"
    args = dict(tags=TAGS, store=store, deployment="dep", project="demo", now=NOW)
    schedule_deletion(session, endpoint_name=endpoint, ttl_seconds=3600, **args)
    second = schedule_deletion(session, endpoint_name=endpoint, ttl_seconds=2 * 86400, **args)
    scheduler = session.client("scheduler")
    mine = [
        s
        for s in scheduler.list_schedules(GroupName="llmship")["Schedules"]
        if s["Name"] == ttl.schedule_name(endpoint)
    ]
    assert len(mine) == 1
    assert time_left(session, endpoint, now=second.delete_at) == timedelta(0)
    assert time_left(session, endpoint, now=NOW.replace(microsecond=0)) == timedelta(days=2)
    assert second.delete_at == NOW.replace(microsecond=0) + timedelta(days=2)

    cancel_deletion(session, endpoint, store)
    assert time_left(session, endpoint) is None
    with pytest.raises(session.client("iam").exceptions.NoSuchEntityException):
        session.client("iam").get_role(RoleName=ttl.role_name(endpoint))
    assert store.resources() == []
    cancel_deletion(session, endpoint, store)  # a second run is a no-op


def test_ttl_names_fit_aws_limits_and_stay_distinct():
    long_a, long_b = "a" * 62 + "1", "a" * 62 + "2"
    for make in (ttl.schedule_name, ttl.role_name):
        assert len(make(long_a)) <= 64 and len(make(long_b)) <= 64
        assert make(long_a) != make(long_b)
    assert ttl.schedule_name("short") == "delete-short"


def test_ttl_access_denied_is_an_aws_error(store):
    iam = boto3.client("iam", region_name="us-west-2")
    stub = Stubber(iam)
    stub.add_client_error("get_role", "AccessDenied", "not allowed", 403)
    stub.activate()

    class Session:  # the real flow up to IAM, with IAM refusing
        region_name = "us-west-2"

        def client(self, service, config=None):
            if service == "iam":
                return iam
            return boto3.client(service, region_name="us-west-2", config=config)

        def get_partition_for_region(self, region):
            return "aws"

    with pytest.raises(AwsError, match=r"iam GetRole on llmship-ttl-x failed: AccessDenied"):
        ttl._ensure_role(Session(), "x", "123456789012", "us-west-2", TAGS, store, "dep", "demo")


def test_ttl_waits_for_a_new_role_to_propagate():
    scheduler = boto3.client(
        "scheduler",
        region_name="us-west-2",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    request = {
        "Name": "delete-x",
        "GroupName": "llmship",
        "ScheduleExpression": "at(2031-01-01T00:00:00)",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": {"Arn": ttl.DELETE_ENDPOINT, "RoleArn": "arn:aws:iam::1:role/r", "Input": "{}"},
    }
    arn = "arn:aws:scheduler:us-west-2:123456789012:schedule/llmship/delete-x"
    not_yet = (
        "The execution role you provide must allow AWS EventBridge Scheduler to assume the role."
    )
    slept: list[float] = []
    with Stubber(scheduler) as stub:
        stub.add_client_error("create_schedule", "ValidationException", not_yet, 400)
        stub.add_client_error("create_schedule", "ValidationException", not_yet, 400)
        stub.add_response("create_schedule", {"ScheduleArn": arn}, request)
        assert (
            ttl._put_schedule(scheduler, request, role_just_created=True, sleep=slept.append) == arn
        )
    assert slept == [3, 3]
    # An old role that Scheduler cannot assume is a real error, not a wait.
    with Stubber(scheduler) as stub:
        stub.add_client_error("create_schedule", "ValidationException", not_yet, 400)
        with pytest.raises(AwsError, match="must allow AWS EventBridge Scheduler"):
            ttl._put_schedule(scheduler, request, role_just_created=False, sleep=slept.append)


# ---- autoscaling --------------------------------------------------------------------


def test_realtime_autoscaling_tracks_invocations(session, store):
    settings = AutoscalingSettings(
        min_capacity=1,
        max_capacity=4,
        target_invocations_per_instance=70,
        scale_in_cooldown=600,
        scale_out_cooldown=30,
    )
    recorded = configure_autoscaling(
        session,
        endpoint_name="rt",
        settings=settings,
        store=store,
        deployment="dep",
        project="demo",
        tags=TAGS,
    )
    client = session.client("application-autoscaling")
    (target,) = client.describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=["endpoint/rt/variant/AllTraffic"]
    )["ScalableTargets"]
    assert target["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 4)
    (policy,) = client.describe_scaling_policies(
        ServiceNamespace="sagemaker", ResourceId="endpoint/rt/variant/AllTraffic"
    )["ScalingPolicies"]
    assert policy["PolicyType"] == "TargetTrackingScaling"
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == 70.0
    assert tracking["PredefinedMetricSpecification"] == {
        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
    }
    assert (tracking["ScaleInCooldown"], tracking["ScaleOutCooldown"]) == (600, 30)
    assert recorded == [
        "endpoint/rt/variant/AllTraffic",
        "endpoint/rt/variant/AllTraffic/rt-invocations-per-instance",
    ]
    assert set(kinds(store).values()) == {"UP"}
    assert (
        session.client("cloudwatch").describe_alarms(AlarmNames=[scaling.alarm_name("rt")])[
            "MetricAlarms"
        ]
        == []
    )

    # Configuring again changes the settings in place.
    configure_autoscaling(
        session,
        endpoint_name="rt",
        settings=AutoscalingSettings(2, 6, 50),
        store=store,
        deployment="dep",
        project="demo",
    )
    (target,) = client.describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=["endpoint/rt/variant/AllTraffic"]
    )["ScalableTargets"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (2, 6)
    policies = client.describe_scaling_policies(
        ServiceNamespace="sagemaker", ResourceId="endpoint/rt/variant/AllTraffic"
    )["ScalingPolicies"]
    assert [p["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] for p in policies] == [
        50.0
    ]

    remove_autoscaling(session, endpoint_name="rt", store=store)
    assert (
        client.describe_scalable_targets(
            ServiceNamespace="sagemaker", ResourceIds=["endpoint/rt/variant/AllTraffic"]
        )["ScalableTargets"]
        == []
    )
    assert store.resources() == []
    remove_autoscaling(session, endpoint_name="rt", store=store)  # idempotent


def test_async_autoscaling_scales_to_zero_and_back(session, store):
    recorded = configure_autoscaling(
        session,
        endpoint_name="aq",
        settings=AutoscalingSettings(0, 3, 5, scale_out_cooldown=120),
        asynchronous=True,
        store=store,
        deployment="dep",
        project="demo",
        tags=TAGS,
    )
    client = session.client("application-autoscaling")
    resource = "endpoint/aq/variant/AllTraffic"
    (target,) = client.describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=[resource]
    )["ScalableTargets"]
    assert target["MinCapacity"] == 0
    policies = {
        p["PolicyName"]: p
        for p in client.describe_scaling_policies(
            ServiceNamespace="sagemaker", ResourceId=resource
        )["ScalingPolicies"]
    }
    tracking = policies["aq-backlog-per-instance"]["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == 5.0
    assert tracking["CustomizedMetricSpecification"] == {
        "MetricName": "ApproximateBacklogSizePerInstance",
        "Namespace": "AWS/SageMaker",
        "Dimensions": [{"Name": "EndpointName", "Value": "aq"}],
        "Statistic": "Average",
    }
    step = policies["aq-scale-from-zero"]
    assert step["PolicyType"] == "StepScaling"
    step_config = step["StepScalingPolicyConfiguration"]
    assert step_config["AdjustmentType"] == "ChangeInCapacity"
    assert step_config["Cooldown"] == 120
    assert step_config["StepAdjustments"] == [
        {"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}
    ]

    cloudwatch = session.client("cloudwatch")
    (alarm,) = cloudwatch.describe_alarms(AlarmNames=[scaling.alarm_name("aq")])["MetricAlarms"]
    assert alarm["MetricName"] == "HasBacklogWithoutCapacity"
    assert alarm["Namespace"] == "AWS/SageMaker"
    assert alarm["Dimensions"] == [{"Name": "EndpointName", "Value": "aq"}]
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["Threshold"] == 1.0
    assert alarm["AlarmActions"] == [step["PolicyARN"]]
    tags = cloudwatch.list_tags_for_resource(ResourceARN=alarm["AlarmArn"])["Tags"]
    assert {t["Key"]: t["Value"] for t in tags} == TAGS
    assert recorded[-1] == scaling.alarm_name("aq") and len(recorded) == 4
    assert set(kinds(store).values()) == {"UP"}

    remove_autoscaling(session, endpoint_name="aq", store=store)
    assert cloudwatch.describe_alarms(AlarmNames=[scaling.alarm_name("aq")])["MetricAlarms"] == []
    assert (
        client.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=resource)[
            "ScalingPolicies"
        ]
        == []
    )
    assert store.resources() == []


@pytest.mark.parametrize(
    ("settings", "asynchronous", "message"),
    [
        (AutoscalingSettings(0, 2, 10), False, r"deploy\.autoscaling\.min is 0.*only asynchronous"),
        (AutoscalingSettings(3, 2, 10), False, r"deploy\.autoscaling\.max \(2\)"),
        (AutoscalingSettings(0, 0, 10), True, r"deploy\.autoscaling\.max \(0\) must be at least 1"),
        (AutoscalingSettings(1, 2, 0), False, r"target_invocations_per_instance must be above 0"),
        (AutoscalingSettings(1, 2, 5, scale_in_cooldown=-1), False, r"scale_in_cooldown"),
    ],
)
def test_autoscaling_settings_are_checked_before_any_call(settings, asynchronous, message, store):
    class NoCalls:
        region_name = "us-west-2"

        def client(self, *args, **kwargs):
            raise AssertionError("no AWS call for invalid settings")

    with pytest.raises(DeployError, match=message):
        configure_autoscaling(
            NoCalls(),
            endpoint_name="bad",
            settings=settings,
            asynchronous=asynchronous,
            store=store,
            deployment="dep",
            project="demo",
        )
    assert store.resources() == []


# ---- blue/green update (Stubber: moto has no UpdateEndpoint) -------------------------


def sagemaker_stub():
    sm = boto3.client(
        "sagemaker",
        region_name="us-west-2",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return sm, Stubber(sm)


def described(status: str, config: str, reason: str | None = None) -> dict:
    now = datetime(2031, 1, 1, tzinfo=UTC)
    response = {
        "EndpointName": "ep",
        "EndpointArn": "arn:aws:sagemaker:us-west-2:123456789012:endpoint/ep",
        "EndpointConfigName": config,
        "EndpointStatus": status,
        "CreationTime": now,
        "LastModifiedTime": now,
    }
    if reason:
        response["FailureReason"] = reason
    return response


@pytest.mark.parametrize(
    ("policy", "routing"),
    [
        (
            DeploymentPolicy(),
            {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 300},
        ),
        (
            DeploymentPolicy(strategy="canary", canary_percent=25, wait_seconds=600),
            {
                "Type": "CANARY",
                "WaitIntervalInSeconds": 600,
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 25},
            },
        ),
        (
            DeploymentPolicy(strategy="linear", linear_step_percent=10, wait_seconds=120),
            {
                "Type": "LINEAR",
                "WaitIntervalInSeconds": 120,
                "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 10},
            },
        ),
    ],
)
def test_start_update_sends_each_strategy(policy, routing):
    sm, stub = sagemaker_stub()
    policy = DeploymentPolicy(
        **{
            **policy.__dict__,
            "alarms": ("ep-5xx", "ep-latency"),
            "termination_wait_seconds": 60,
            "max_execution_seconds": 3600,
        }
    )
    stub.add_response(
        "update_endpoint",
        {"EndpointArn": "arn:aws:sagemaker:us-west-2:123456789012:endpoint/ep"},
        {
            "EndpointName": "ep",
            "EndpointConfigName": "ep-20310101000000",
            "DeploymentConfig": {
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": routing,
                    "TerminationWaitInSeconds": 60,
                    "MaximumExecutionTimeoutInSeconds": 3600,
                },
                "AutoRollbackConfiguration": {
                    "Alarms": [{"AlarmName": "ep-5xx"}, {"AlarmName": "ep-latency"}]
                },
            },
        },
    )
    with stub:
        start_update(sm, endpoint_name="ep", new_config_name="ep-20310101000000", policy=policy)
    stub.assert_no_pending_responses()


def test_update_without_alarms_sends_no_rollback_config():
    config = deployment_config(DeploymentPolicy())
    assert "AutoRollbackConfiguration" not in config
    assert "MaximumExecutionTimeoutInSeconds" not in config["BlueGreenUpdatePolicy"]


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (DeploymentPolicy(strategy="canary", canary_percent=60), r"canary_percent is 60"),
        (DeploymentPolicy(strategy="linear", linear_step_percent=5), r"linear_step_percent is 5"),
        (DeploymentPolicy(wait_seconds=4000), r"wait_seconds is 4000; SageMaker accepts 0"),
        (DeploymentPolicy(max_execution_seconds=100), r"max_execution_seconds is 100"),
        (
            DeploymentPolicy(wait_seconds=3000, max_execution_seconds=900),
            r"max_execution_seconds \(900\) must exceed the waits",
        ),
        (DeploymentPolicy(alarms=tuple(f"a{i}" for i in range(11))), r"alarms: give 1 to 10"),
        (DeploymentPolicy(strategy="blue"), r"strategy is 'blue'"),
    ],
)
def test_bad_update_policies_are_refused_before_the_call(policy, message):
    sm, stub = sagemaker_stub()
    with stub, pytest.raises(DeployError, match=r"deploy\.update\." + message):
        start_update(sm, endpoint_name="ep", new_config_name="ep-2", policy=policy)


def waiting(sm, stub, statuses, **kwargs):
    for status in statuses:
        stub.add_response("describe_endpoint", described(*status), {"EndpointName": "ep"})
    slept: list[float] = []
    reporter = RecordingReporter()
    with stub:
        outcome = wait_for_update(
            sm,
            endpoint_name="ep",
            intended_config_name="ep-new",
            reporter=reporter,
            poll_seconds=10,
            sleep=slept.append,
            **kwargs,
        )
    stub.assert_no_pending_responses()
    return outcome, slept, reporter


def test_update_that_lands_is_not_a_rollback():
    sm, stub = sagemaker_stub()
    outcome, slept, reporter = waiting(
        sm, stub, [("Updating", "ep-old"), ("Updating", "ep-old"), ("InService", "ep-new")]
    )
    assert outcome == UpdateOutcome("ep-new", False, "InService", None)
    assert slept == [10, 10]
    messages = [text for kind, text in reporter.events if kind == "message"]
    assert messages == ["ep: Updating (ep-old)", "ep: InService (ep-new)"]
    assert reporter.events[-1] == ("finish", None)


def test_silent_rollback_is_reported():
    sm, stub = sagemaker_stub()
    outcome, _, _ = waiting(
        sm,
        stub,
        [("Updating", "ep-old"), ("RollingBack", "ep-old"), ("InService", "ep-old")],
    )
    assert outcome.rolled_back is True
    assert outcome.live_config_name == "ep-old" and outcome.status == "InService"


def test_old_config_in_service_before_the_update_shows_is_not_yet_a_rollback():
    sm, stub = sagemaker_stub()
    outcome, slept, _ = waiting(
        sm, stub, [("InService", "ep-old"), ("Updating", "ep-old"), ("InService", "ep-new")]
    )
    assert outcome.rolled_back is False and slept == [10, 10]
    # An update that never shows is a rollback once the settling polls are spent.
    sm, stub = sagemaker_stub()
    outcome, _, _ = waiting(sm, stub, [("InService", "ep-old")] * 4)
    assert outcome.rolled_back is True


def test_failed_update_carries_the_failure_reason():
    sm, stub = sagemaker_stub()
    reason = "The primary container for production variant AllTraffic did not pass the ping"
    outcome, _, _ = waiting(sm, stub, [("Updating", "ep-old"), ("Failed", "ep-old", reason)])
    assert outcome == UpdateOutcome("ep-old", True, "Failed", reason)


def test_update_past_the_timeout_is_a_clear_error():
    sm, stub = sagemaker_stub()
    for _ in range(4):
        stub.add_response(
            "describe_endpoint", described("Updating", "ep-old"), {"EndpointName": "ep"}
        )
    slept: list[float] = []
    with (
        stub,
        pytest.raises(DeployError, match=r"ep is still Updating after 30 s .*`llmship status`"),
    ):
        wait_for_update(
            sm,
            endpoint_name="ep",
            intended_config_name="ep-new",
            poll_seconds=10,
            timeout_seconds=30,
            sleep=slept.append,
        )
    assert slept == [10, 10, 10]


def test_update_on_a_missing_endpoint_is_an_aws_error():
    sm, stub = sagemaker_stub()
    stub.add_client_error(
        "update_endpoint", "ValidationException", 'Could not find endpoint "ep".', 400
    )
    with stub, pytest.raises(AwsError, match=r"sagemaker UpdateEndpoint on ep failed: Validation"):
        start_update(sm, endpoint_name="ep", new_config_name="ep-2", policy=DeploymentPolicy())
    assert update.STRATEGIES["canary"] == "CANARY"
