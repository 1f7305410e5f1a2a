"""Endpoint autoscaling through Application Auto Scaling: min, max, a target, cooldowns.

The variant's instance count is a scalable target; a target-tracking policy keeps a
metric per instance near its target. Real-time endpoints track
SageMakerVariantInvocationsPerInstance (invocations per instance per minute) and keep
at least one instance. Asynchronous endpoints may scale to zero, so they track what
AWS documents for them, ApproximateBacklogSizePerInstance (queued requests per
instance; the target's value is read as that), and add a step policy on a CloudWatch
alarm over HasBacklogWithoutCapacity: without it an endpoint at zero instances waits
until the backlog alone exceeds the target before it starts an instance.

Every call here is an upsert (register, put policy, put alarm), so configuring twice
changes settings without duplicates; removing twice is a no-op. Deregister before
deleting the endpoint: a target left behind keeps failing scaling activities.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmship.aws.errors import aws_call, ignore_not_found
from llmship.aws.session import client
from llmship.errors import DeployError
from llmship.state import Kind, StateStore, Status, tag_list

NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
KEY = "deploy.autoscaling"


@dataclass(frozen=True)
class AutoscalingSettings:
    min_capacity: int
    max_capacity: int
    target_invocations_per_instance: float
    scale_in_cooldown: int = 300
    scale_out_cooldown: int = 60


def resource_id(endpoint_name: str, variant_name: str = "AllTraffic") -> str:
    """Application Auto Scaling's id for an endpoint variant."""
    return f"endpoint/{endpoint_name}/variant/{variant_name}"


def policy_names(endpoint_name: str, asynchronous: bool) -> list[str]:
    """The policies llmship puts on an endpoint: target tracking, then scale-from-zero."""
    if asynchronous:
        return [f"{endpoint_name}-backlog-per-instance", f"{endpoint_name}-scale-from-zero"]
    return [f"{endpoint_name}-invocations-per-instance"]


def alarm_name(endpoint_name: str) -> str:
    """The alarm that starts an instance for a backlog when there are none."""
    return f"llmship-{endpoint_name}-backlog-without-capacity"


def validate(settings: AutoscalingSettings, asynchronous: bool = False) -> None:
    """Refuse settings AWS would refuse, or that cannot serve, before anything is created."""
    floor = 0 if asynchronous else 1
    if settings.min_capacity < floor:
        why = "" if asynchronous else " (only asynchronous endpoints scale to zero)"
        raise DeployError(f"{KEY}.min is {settings.min_capacity}; it must be at least {floor}{why}")
    if settings.max_capacity < max(settings.min_capacity, 1):
        raise DeployError(
            f"{KEY}.max ({settings.max_capacity}) must be at least 1 and at least "
            f"{KEY}.min ({settings.min_capacity})"
        )
    if settings.target_invocations_per_instance <= 0:
        raise DeployError(
            f"{KEY}.target_invocations_per_instance must be above 0 "
            f"(got {settings.target_invocations_per_instance})"
        )
    for field in ("scale_in_cooldown", "scale_out_cooldown"):
        if getattr(settings, field) < 0:
            raise DeployError(f"{KEY}.{field} is a number of seconds, 0 or more")


def configure_autoscaling(
    session,
    *,
    endpoint_name: str,
    settings: AutoscalingSettings,
    variant_name: str = "AllTraffic",
    asynchronous: bool = False,
    store: StateStore,
    deployment: str,
    project: str,
    tags: dict[str, str] | None = None,
) -> list[str]:
    """Register the variant as a scalable target and put its policies (and, for async
    endpoints, the scale-from-zero alarm); returns the names recorded in state."""
    validate(settings, asynchronous)
    tags = {"llmship:project": project, "llmship:deployment": deployment, **(tags or {})}
    region = session.region_name
    scaling = client(session, "application-autoscaling")
    target = resource_id(endpoint_name, variant_name)
    common = {"ServiceNamespace": NAMESPACE, "ResourceId": target, "ScalableDimension": DIMENSION}
    recorded = [target]
    details = {
        "endpoint": endpoint_name,
        "min": settings.min_capacity,
        "max": settings.max_capacity,
    }
    store.record_creating(Kind.SCALING_TARGET, target, deployment, project, region, details)
    with aws_call("application-autoscaling", "RegisterScalableTarget", target):
        scaling.register_scalable_target(
            **common,
            MinCapacity=settings.min_capacity,
            MaxCapacity=settings.max_capacity,
            Tags=tags,
        )
    store.set_status(Kind.SCALING_TARGET, target, Status.UP, region)

    tracking, *step = policy_names(endpoint_name, asynchronous)
    policy = {
        "PolicyName": tracking,
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": float(settings.target_invocations_per_instance),
            **_tracked_metric(endpoint_name, asynchronous),
            "ScaleInCooldown": settings.scale_in_cooldown,
            "ScaleOutCooldown": settings.scale_out_cooldown,
        },
    }
    recorded.append(_put_policy(scaling, common, policy, store, deployment, project, region)[0])
    if not step:
        return recorded

    scale_from_zero = {
        "PolicyName": step[0],
        "PolicyType": "StepScaling",
        "StepScalingPolicyConfiguration": {
            "AdjustmentType": "ChangeInCapacity",
            "MetricAggregationType": "Average",
            "Cooldown": settings.scale_out_cooldown,
            "StepAdjustments": [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}],
        },
    }
    key, policy_arn = _put_policy(
        scaling, common, scale_from_zero, store, deployment, project, region
    )
    recorded.append(key)
    recorded.append(
        _put_alarm(session, endpoint_name, policy_arn, tags, store, deployment, project, region)
    )
    return recorded


def remove_autoscaling(
    session,
    *,
    endpoint_name: str,
    variant_name: str = "AllTraffic",
    store: StateStore | None = None,
) -> None:
    """Delete the alarm, the policies and the scalable target (and their records);
    whatever is already gone is skipped."""
    region = session.region_name
    cloudwatch = client(session, "cloudwatch")
    alarm = alarm_name(endpoint_name)
    with ignore_not_found("cloudwatch", "DeleteAlarms", alarm):
        if cloudwatch.describe_alarms(AlarmNames=[alarm])["MetricAlarms"]:
            cloudwatch.delete_alarms(AlarmNames=[alarm])
    if store is not None:
        store.remove(Kind.ALARM, alarm, region)

    scaling = client(session, "application-autoscaling")
    target = resource_id(endpoint_name, variant_name)
    common = {"ServiceNamespace": NAMESPACE, "ResourceId": target, "ScalableDimension": DIMENSION}
    with aws_call("application-autoscaling", "DescribeScalingPolicies", target):
        policies = scaling.describe_scaling_policies(
            ServiceNamespace=NAMESPACE, ResourceId=target, ScalableDimension=DIMENSION
        )["ScalingPolicies"]
    existing = {p["PolicyName"] for p in policies}
    for name in sorted(existing):
        with ignore_not_found("application-autoscaling", "DeleteScalingPolicy", name):
            scaling.delete_scaling_policy(PolicyName=name, **common)
    if store is not None:
        ours = policy_names(endpoint_name, True) + policy_names(endpoint_name, False)
        for name in existing | set(ours):
            store.remove(Kind.SCALING_POLICY, f"{target}/{name}", region)
    # ObjectNotFoundException: deregistered meanwhile
    with ignore_not_found("application-autoscaling", "DeregisterScalableTarget", target):
        registered = scaling.describe_scalable_targets(
            ServiceNamespace=NAMESPACE, ResourceIds=[target], ScalableDimension=DIMENSION
        )["ScalableTargets"]
        if registered:
            scaling.deregister_scalable_target(**common)
    if store is not None:
        store.remove(Kind.SCALING_TARGET, target, region)


def _tracked_metric(endpoint_name: str, asynchronous: bool) -> dict:
    if not asynchronous:
        return {
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
            }
        }
    return {
        "CustomizedMetricSpecification": {
            "MetricName": "ApproximateBacklogSizePerInstance",
            "Namespace": "AWS/SageMaker",
            "Dimensions": [{"Name": "EndpointName", "Value": endpoint_name}],
            "Statistic": "Average",
        }
    }


def _put_policy(scaling, common, policy, store, deployment, project, region) -> tuple[str, str]:
    key = f"{common['ResourceId']}/{policy['PolicyName']}"
    store.record_creating(
        Kind.SCALING_POLICY, key, deployment, project, region, {"type": policy["PolicyType"]}
    )
    with aws_call("application-autoscaling", "PutScalingPolicy", policy["PolicyName"]):
        arn = scaling.put_scaling_policy(**common, **policy)["PolicyARN"]
    store.set_status(Kind.SCALING_POLICY, key, Status.UP, region, {"arn": arn})
    return key, arn


def _put_alarm(session, endpoint_name, policy_arn, tags, store, deployment, project, region) -> str:
    name = alarm_name(endpoint_name)
    store.record_creating(
        Kind.ALARM, name, deployment, project, region, {"endpoint": endpoint_name}
    )
    with aws_call("cloudwatch", "PutMetricAlarm", name):
        client(session, "cloudwatch").put_metric_alarm(
            AlarmName=name,
            AlarmDescription=f"llmship: start an instance of {endpoint_name} for queued requests",
            Namespace="AWS/SageMaker",
            MetricName="HasBacklogWithoutCapacity",
            Dimensions=[{"Name": "EndpointName", "Value": endpoint_name}],
            Statistic="Average",
            Period=60,
            EvaluationPeriods=2,
            DatapointsToAlarm=2,
            Threshold=1.0,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
            TreatMissingData="missing",
            AlarmActions=[policy_arn],
            Tags=tag_list(tags),
        )
    store.set_status(Kind.ALARM, name, Status.UP, region)
    return name
