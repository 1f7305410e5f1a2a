"""One table of what each SageMaker endpoint kind allows; it drives validation and the plan.

An invalid combination (a serverless endpoint on a GPU, in a VPC, or serving a model
package) is refused here, before anything is created, naming the config key to change.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmship.config.schema import SERVERLESS_MEMORY_MB, DeployConfig
from llmship.errors import DeployError

MB = 1024 * 1024
GB = 1024 * MB
MAX_ENVIRONMENT = 100


@dataclass(frozen=True)
class KindLimits:
    """What one endpoint kind accepts."""

    kind: str
    max_payload_bytes: int
    timeout_s: int
    payload: str  # how a request reaches the model
    billing: str
    instances: bool  # runs on instances you choose (and pay for by the hour)
    gpu: bool
    vpc: bool
    model_packages: bool
    data_capture: bool
    max_variants: int
    memory_mb: tuple[int, ...] = ()
    max_concurrency: int | None = None

    def summary(self) -> str:
        size = (
            f"{self.max_payload_bytes // GB} GB"
            if self.max_payload_bytes >= GB
            else (f"{self.max_payload_bytes // MB} MB")
        )
        return f"{self.kind}: {size} per request ({self.payload}), up to {self.timeout_s} s"


LIMITS: dict[str, KindLimits] = {
    "realtime": KindLimits(
        kind="realtime", max_payload_bytes=6 * MB, timeout_s=60, payload="request body",
        billing="per instance-hour", instances=True, gpu=True, vpc=True, model_packages=True,
        data_capture=True, max_variants=10,
    ),
    "serverless": KindLimits(
        kind="serverless", max_payload_bytes=4 * MB, timeout_s=60, payload="request body",
        billing="per request and GB-second", instances=False, gpu=False, vpc=False,
        model_packages=False, data_capture=False, max_variants=1,
        memory_mb=SERVERLESS_MEMORY_MB, max_concurrency=200,
    ),
    "async": KindLimits(
        kind="async", max_payload_bytes=1 * GB, timeout_s=3600, payload="S3 object",
        billing="per instance-hour", instances=True, gpu=True, vpc=True, model_packages=True,
        data_capture=True, max_variants=10,
    ),
}  # fmt: skip


def limits_for(kind: str) -> KindLimits:
    if kind not in LIMITS:
        raise DeployError(f"deploy.kind: unknown kind {kind!r}; one of {', '.join(LIMITS)}")
    return LIMITS[kind]


def check(deploy: DeployConfig, *, gpus: int, environment: dict[str, str]) -> KindLimits:
    """The kind's limits, or a DeployError for every setting it does not allow.

    `gpus` is the chosen instance's GPU count (0 for CPU instances and serverless);
    `environment` the container environment as it will be sent (ours and the user's)."""
    limits = limits_for(deploy.kind)
    problems = []
    if gpus and not limits.gpu:
        problems.append(
            f"deploy.instance_type: {deploy.kind} endpoints have no GPUs; choose a CPU "
            "instance, or deploy.kind: realtime"
        )
    if deploy.vpc.subnets and not limits.vpc:
        problems.append(
            f"deploy.vpc: {deploy.kind} endpoints cannot run in a VPC; remove deploy.vpc "
            "or use deploy.kind: realtime"
        )
    if deploy.model_package_arn and not limits.model_packages:
        problems.append(
            f"deploy.model_package_arn: {deploy.kind} endpoints cannot serve model packages; "
            "use deploy.kind: realtime"
        )
    if limits.memory_mb and deploy.serverless.memory_mb not in limits.memory_mb:
        problems.append(
            f"deploy.serverless.memory_mb: {deploy.serverless.memory_mb} is not one of "
            f"{', '.join(map(str, limits.memory_mb))}"
        )
    if not limits.instances and deploy.instance_type:
        problems.append(
            f"deploy.instance_type: {deploy.kind} endpoints choose their own capacity; "
            "remove instance_type (size it with deploy.serverless.memory_mb)"
        )
    if deploy.autoscaling.enabled and not limits.instances:
        problems.append(
            f"deploy.autoscaling: {deploy.kind} endpoints scale by themselves; set "
            "deploy.autoscaling.enabled: false"
        )
    if deploy.autoscaling.enabled and deploy.autoscaling.min == 0 and deploy.kind != "async":
        problems.append(
            "deploy.autoscaling.min: only async endpoints scale to zero; set it to 1 or more"
        )
    if len(environment) > MAX_ENVIRONMENT:
        problems.append(
            f"deploy.environment: the container would get {len(environment)} variables; "
            f"SageMaker allows at most {MAX_ENVIRONMENT}"
        )
    if problems:
        raise DeployError(
            f"these settings cannot deploy as a {deploy.kind} endpoint:\n  - "
            + "\n  - ".join(problems)
        )
    return limits
