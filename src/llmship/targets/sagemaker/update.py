"""A new model version goes out blue/green through UpdateEndpoint, and we check it landed.

SageMaker builds the new (green) fleet beside the old one and shifts traffic all at
once, as a canary (a share first, the rest after a baking period) or linearly (equal
steps, each baked). CloudWatch alarms named in the policy roll the endpoint back when
they fire during the bake. A rollback is silent: the endpoint returns to InService on
its old endpoint config, with no error. So after the update llmship reads the live
endpoint config and reports a rollback when it is not the one it asked for.

An endpoint whose variant is an autoscaling target cannot change instance type in an
update; deregister it first (scaling.remove_autoscaling) and configure it again after.

Canary and linear steps are sized in instances of the new fleet: a canary must be at most
half of it and a linear step 10-50% of it (TrafficRoutingConfig), so neither works on one
instance, nor on a serverless endpoint, which has none. When the fleet size is known the
step goes to SageMaker as an INSTANCE_COUNT computed here (the configured percentage
rounded up to whole instances), so the rule checked is exactly the request sent.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Literal

from llmship.aws.errors import aws_call
from llmship.errors import DeployError
from llmship.progress import RecordingReporter, Reporter

KEY = "deploy.update"
STRATEGIES = {"all-at-once": "ALL_AT_ONCE", "canary": "CANARY", "linear": "LINEAR"}
# What SageMaker accepts (UpdateEndpoint's DeploymentConfig and its guide).
CANARY_PERCENT = (1, 50)
LINEAR_STEP_PERCENT = (10, 50)
WAIT_SECONDS = (0, 3600)
MAX_EXECUTION_SECONDS = (600, 28800)
MAX_ALARMS = 10
# Polls that may still show the old config InService before the update shows as begun.
SETTLE_POLLS = 3


@dataclass(frozen=True)
class DeploymentPolicy:
    strategy: Literal["all-at-once", "canary", "linear"] = "all-at-once"
    canary_percent: int = 10
    linear_step_percent: int = 20
    wait_seconds: int = 300
    alarms: tuple[str, ...] = ()
    termination_wait_seconds: int = 0
    max_execution_seconds: int | None = None


@dataclass(frozen=True)
class UpdateOutcome:
    live_config_name: str
    rolled_back: bool
    status: str
    failure_reason: str | None


def step_instances(percent: int, instance_count: int) -> int:
    """Instances a canary or linear step of `percent` moves: rounded up, at least one."""
    return max(1, math.ceil(instance_count * percent / 100))


def _step_size(policy: DeploymentPolicy, field: str, instance_count: int | None) -> dict:
    """CanarySize / LinearStepSize: whole instances when the fleet is known, else percent."""
    percent = getattr(policy, field)
    if instance_count is None:
        return {"Type": "CAPACITY_PERCENT", "Value": percent}
    if instance_count == 0:
        raise DeployError(
            f"{KEY}.strategy is {policy.strategy}, but a serverless endpoint has no instances "
            f"to shift traffic between; set {KEY}.strategy: all-at-once"
        )
    step = step_instances(percent, instance_count)
    if 2 * step > instance_count:
        limit = "at most half" if policy.strategy == "canary" else "10-50%"
        raise DeployError(
            f"{KEY}.strategy is {policy.strategy} with {KEY}.{field} {percent}%, which is "
            f"{step} of deploy.instance_count {instance_count} instance(s); SageMaker needs "
            f"each step to be {limit} of the new fleet, so {policy.strategy} needs at least "
            f"{2 * step} instances: raise deploy.instance_count, lower {KEY}.{field}, or "
            f"set {KEY}.strategy: all-at-once"
        )
    return {"Type": "INSTANCE_COUNT", "Value": step}


def deployment_config(policy: DeploymentPolicy, instance_count: int | None = None) -> dict:
    """UpdateEndpoint's DeploymentConfig for `policy`; DeployError for what AWS would refuse.
    `instance_count` is the new fleet's size (0: serverless; None: not known)."""
    if policy.strategy not in STRATEGIES:
        raise DeployError(
            f"{KEY}.strategy is {policy.strategy!r}; choose one of: {', '.join(STRATEGIES)}"
        )
    _check_range("wait_seconds", policy.wait_seconds, WAIT_SECONDS)
    _check_range("termination_wait_seconds", policy.termination_wait_seconds, WAIT_SECONDS)
    routing: dict = {
        "Type": STRATEGIES[policy.strategy],
        "WaitIntervalInSeconds": policy.wait_seconds,
    }
    if policy.strategy == "canary":
        _check_range("canary_percent", policy.canary_percent, CANARY_PERCENT)
        routing["CanarySize"] = _step_size(policy, "canary_percent", instance_count)
    if policy.strategy == "linear":
        _check_range("linear_step_percent", policy.linear_step_percent, LINEAR_STEP_PERCENT)
        routing["LinearStepSize"] = _step_size(policy, "linear_step_percent", instance_count)
    blue_green: dict = {
        "TrafficRoutingConfiguration": routing,
        "TerminationWaitInSeconds": policy.termination_wait_seconds,
    }
    if policy.max_execution_seconds is not None:
        _check_range("max_execution_seconds", policy.max_execution_seconds, MAX_EXECUTION_SECONDS)
        waits = policy.wait_seconds + policy.termination_wait_seconds
        if policy.max_execution_seconds <= waits:
            raise DeployError(
                f"{KEY}.max_execution_seconds ({policy.max_execution_seconds}) must exceed the "
                f"waits it contains: wait_seconds + termination_wait_seconds = {waits}"
            )
        blue_green["MaximumExecutionTimeoutInSeconds"] = policy.max_execution_seconds
    config: dict = {"BlueGreenUpdatePolicy": blue_green}
    if policy.alarms:
        if len(policy.alarms) > MAX_ALARMS or not all(a.strip() for a in policy.alarms):
            raise DeployError(
                f"{KEY}.alarms: give 1 to {MAX_ALARMS} CloudWatch alarm names "
                f"(got {list(policy.alarms)})"
            )
        config["AutoRollbackConfiguration"] = {
            "Alarms": [{"AlarmName": name} for name in policy.alarms]
        }
    return config


def start_update(
    sm,
    *,
    endpoint_name: str,
    new_config_name: str,
    policy: DeploymentPolicy,
    instance_count: int | None = None,
) -> None:
    """Ask SageMaker to move `endpoint_name` to `new_config_name`, blue/green."""
    config = deployment_config(policy, instance_count)
    with aws_call("sagemaker", "UpdateEndpoint", endpoint_name):
        sm.update_endpoint(
            EndpointName=endpoint_name,
            EndpointConfigName=new_config_name,
            DeploymentConfig=config,
        )


def wait_for_update(
    sm,
    *,
    endpoint_name: str,
    intended_config_name: str,
    reporter: Reporter | None = None,
    poll_seconds: float = 15,
    timeout_seconds: float = 3600,
    sleep=time.sleep,
) -> UpdateOutcome:
    """Poll until the endpoint is InService or Failed; `rolled_back` when the live config
    is not `intended_config_name`. DeployError when it is still changing at the timeout."""
    reporter = reporter or RecordingReporter()
    waited, seen_change, last_status = 0.0, False, None
    reporter.start(f"updating {endpoint_name}", None)
    try:
        while True:
            with aws_call("sagemaker", "DescribeEndpoint", endpoint_name):
                found = sm.describe_endpoint(EndpointName=endpoint_name)
            status, live = found["EndpointStatus"], found.get("EndpointConfigName", "")
            if status != last_status:
                reporter.message(f"{endpoint_name}: {status} ({live})")
                last_status = status
            reporter.update(int(waited), status=status)
            settled = (
                seen_change
                or live == intended_config_name
                or waited >= (SETTLE_POLLS * poll_seconds)
            )
            if status == "Failed" or (status == "InService" and settled):
                return UpdateOutcome(
                    live_config_name=live,
                    rolled_back=live != intended_config_name,
                    status=status,
                    failure_reason=found.get("FailureReason"),
                )
            seen_change = seen_change or status != "InService"
            if waited >= timeout_seconds:
                raise DeployError(
                    f"endpoint {endpoint_name} is still {status} after {int(waited)} s of "
                    f"updating to {intended_config_name}; the update goes on in AWS: follow it "
                    "with `llmship status` (a canary or linear rollout bakes between steps)"
                )
            sleep(poll_seconds)
            waited += poll_seconds
    finally:
        reporter.finish()


def _check_range(field: str, value: int, bounds: tuple[int, int]) -> None:
    low, high = bounds
    if not low <= value <= high:
        raise DeployError(f"{KEY}.{field} is {value}; SageMaker accepts {low} to {high}")
