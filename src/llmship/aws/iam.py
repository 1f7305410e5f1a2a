"""`llmship aws bootstrap`: the SageMaker execution role, and the policy a deploying user needs.

The execution role is what the endpoint's container runs as. It may read and write the
project bucket (nothing else in S3), write logs only to SageMaker's log groups, pull
container images and publish metrics: least privilege, one inline policy per concern so
each reads on its own. Creating it is idempotent: an existing role of this project is
brought to the intended trust and policies (a no-op when they already match); a role of
the same name that llmship did not create for this project is refused, never rewritten.

`deployer_policy` is the identity policy for whoever runs `llmship deploy`: PassRole on
that one role for SageMaker only, SageMaker actions on the project's names only
(`<project>-*`, as deployments are named), and what plan, TTL, autoscaling, status and
destroy call. Attach it as a customer managed policy (it is larger than an inline user
policy may be).

Every policy llmship writes is also reachable through POLICY_BUILDERS (one entry per
module that writes a role or prints a policy), so one lint test covers them all.

A role IAM has just created is not assumable everywhere at once: for a few seconds,
sometimes a minute, SageMaker (or Bedrock, Scheduler) answers "could not assume role".
`call_with_new_role` retries such a call with bounded backoff, then says what to do.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import unquote

from llmship.aws.session import client, translate
from llmship.errors import AwsError, DeployError
from llmship.state import StateStore

ROLE_KIND = "iam:role"
# The role belongs to the project, not to one deployment or run.
BOOTSTRAP = "bootstrap"
VERSION = "2012-10-17"
T = TypeVar("T")
# IAM usually propagates within seconds; a minute or more means a real problem.
ROLE_RETRY_TRIES = 7
ROLE_RETRY_FIRST_DELAY_S = 2.0
ROLE_RETRY_MAX_DELAY_S = 20.0


@dataclass(frozen=True)
class Bootstrap:
    role_arn: str
    role_name: str
    created: bool
    policy_names: list[str]


def default_role_name(project: str) -> str:
    """`llmship-<project>-sagemaker` (project names are at most 32 chars: fits IAM's 64)."""
    return f"llmship-{project}-sagemaker"


def trust_policy() -> dict[str, Any]:
    """Only SageMaker may assume the execution role."""
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sagemaker.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }


def execution_policies(*, partition: str, account: str, bucket: str) -> dict[str, dict]:
    """The execution role's inline policies by name."""
    s3 = f"arn:{partition}:s3:::{bucket}"
    logs = f"arn:{partition}:logs:*:{account}:log-group:/aws/sagemaker/*"

    def doc(*statements: dict) -> dict:
        return {"Version": VERSION, "Statement": list(statements)}

    return {
        "llmship-s3": doc(
            {
                "Sid": "ProjectBucket",
                "Effect": "Allow",
                "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                "Resource": s3,
            },
            {
                "Sid": "ProjectObjects",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
                "Resource": f"{s3}/*",
            },
        ),
        "llmship-logs": doc(
            {
                "Sid": "SageMakerLogGroups",
                "Effect": "Allow",
                "Action": [
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "logs:DescribeLogStreams",
                ],
                "Resource": [logs, f"{logs}:log-stream:*"],
            }
        ),
        "llmship-ecr": doc(
            {
                "Sid": "EcrLogin",
                "Effect": "Allow",
                "Action": "ecr:GetAuthorizationToken",
                "Resource": "*",
            },
            {
                "Sid": "EcrPull",
                "Effect": "Allow",
                "Action": [
                    "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer",
                    "ecr:BatchCheckLayerAvailability",
                ],
                "Resource": f"arn:{partition}:ecr:*:*:repository/*",
            },
        ),
        "llmship-metrics": doc(
            {
                "Sid": "Metrics",
                "Effect": "Allow",
                "Action": "cloudwatch:PutMetricData",
                "Resource": "*",
            }
        ),
    }


def bootstrap(
    session,
    *,
    project: str,
    bucket: str,
    role_name: str | None = None,
    store: StateStore | None = None,
) -> Bootstrap:
    """Create the project's SageMaker execution role, or bring it up to date (idempotent)."""
    from botocore.exceptions import ClientError

    name = role_name or default_role_name(project)
    store = store or StateStore()
    iam = client(session, "iam")
    account, partition = _identity(session)
    policies = execution_policies(partition=partition, account=account, bucket=bucket)
    tags = {"llmship:project": project, "llmship:deployment": BOOTSTRAP, "llmship:run": BOOTSTRAP}
    recorded = next((r for r in store.resources() if (r.kind, r.name) == (ROLE_KIND, name)), None)
    try:
        role = iam.get_role(RoleName=name)["Role"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "NoSuchEntity":
            raise translate(exc, "iam", "GetRole", name) from None
        role = None
    created = role is None
    if not created:
        check_owner(iam, name, project)
    if created or recorded is None:
        store.record_creating(ROLE_KIND, name, BOOTSTRAP, project, details={"bucket": bucket})
    if created:
        role = _call(
            iam.create_role,
            "CreateRole",
            name,
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(trust_policy()),
            Description=f"llmship: SageMaker execution role of project {project}",
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )["Role"]
    elif _document(role.get("AssumeRolePolicyDocument")) != trust_policy():
        _call(
            iam.update_assume_role_policy,
            "UpdateAssumeRolePolicy",
            name,
            RoleName=name,
            PolicyDocument=json.dumps(trust_policy()),
        )
    for policy_name, document in policies.items():
        if created or _inline_policy(iam, name, policy_name) != document:
            _call(
                iam.put_role_policy,
                "PutRolePolicy",
                name,
                RoleName=name,
                PolicyName=policy_name,
                PolicyDocument=json.dumps(document),
            )
    if recorded is None or recorded.status != "UP" or created:
        store.set_status(ROLE_KIND, name, "UP", details={"arn": role["Arn"], "bucket": bucket})
    return Bootstrap(role["Arn"], name, created, list(policies))


def deployer_policy(
    *, account: str, region: str, project: str, role_arn: str, bucket: str
) -> dict[str, Any]:
    """The identity policy a user needs to plan, deploy, operate and destroy this project."""
    partition = role_arn.split(":")[1] if role_arn.startswith("arn:") else "aws"
    # SageMaker writes resource names in its ARNs in lower case.
    names = f"{project.lower()}-*"
    sagemaker = f"arn:{partition}:sagemaker:{region}:{account}"
    s3 = f"arn:{partition}:s3:::{bucket}"
    logs = f"arn:{partition}:logs:{region}:{account}:log-group:/aws/sagemaker/Endpoints/{names}"
    ttl_roles = f"arn:{partition}:iam::{account}:role/llmship-ttl-{project}-*"
    scheduler = f"arn:{partition}:scheduler:{region}:{account}"
    alarms = f"arn:{partition}:cloudwatch:{region}:{account}:alarm:"
    scaling_role = (
        f"arn:{partition}:iam::{account}:role/aws-service-role/sagemaker.application-autoscaling."
        "amazonaws.com/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
    )

    def allow(sid: str, actions: list[str], resources: str | list[str], **condition) -> dict:
        statement = {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}
        if condition:
            statement["Condition"] = condition
        return statement

    return {
        "Version": VERSION,
        "Statement": [
            allow(
                "PassExecutionRole",
                ["iam:PassRole"],
                role_arn,
                StringEquals={"iam:PassedToService": "sagemaker.amazonaws.com"},
            ),
            allow(
                "ReadExecutionRole",  # status --discover finds it by name and tags
                ["iam:GetRole", "iam:ListRoleTags"],
                role_arn,
            ),
            allow(
                "ProjectSageMakerResources",
                # Named, not Create*/Delete*: a wildcard grants every future action too.
                [
                    "sagemaker:CreateModel",
                    "sagemaker:CreateEndpointConfig",
                    "sagemaker:CreateEndpoint",
                    "sagemaker:DescribeModel",
                    "sagemaker:DescribeEndpointConfig",
                    "sagemaker:DescribeEndpoint",
                    "sagemaker:DeleteModel",
                    "sagemaker:DeleteEndpointConfig",
                    "sagemaker:DeleteEndpoint",
                    "sagemaker:UpdateEndpoint",
                    "sagemaker:UpdateEndpointWeightsAndCapacities",
                    "sagemaker:InvokeEndpoint*",
                    "sagemaker:AddTags",
                    "sagemaker:ListTags",
                ],
                [
                    f"{sagemaker}:{kind}/{names}"
                    for kind in ("endpoint", "endpoint-config", "model")
                ],
            ),
            allow(
                "Listings",  # status --discover; these calls have no resource scope
                [
                    "sagemaker:ListEndpoints",
                    "sagemaker:ListEndpointConfigs",
                    "sagemaker:ListModels",
                    "tag:GetResources",
                    "scheduler:ListSchedules",
                ],
                "*",
            ),
            allow(
                "ModelPackages",  # any account's: Marketplace packages are sold from others
                ["sagemaker:DescribeModelPackage"],
                f"arn:{partition}:sagemaker:{region}:*:model-package/*",
            ),
            allow(
                "ProjectBucket",
                [
                    "s3:ListBucket",
                    "s3:GetBucketLocation",
                    "s3:CreateBucket",
                    "s3:PutBucketPublicAccessBlock",
                    "s3:PutEncryptionConfiguration",
                    "s3:PutBucketTagging",
                ],
                s3,
            ),
            allow(
                "ProjectObjects",
                [
                    "s3:GetObject",
                    "s3:PutObject",
                    "s3:DeleteObject",
                    "s3:AbortMultipartUpload",
                    "s3:ListMultipartUploadParts",
                ],
                f"{s3}/*",
            ),
            allow(
                "Autoscaling",
                [
                    "application-autoscaling:RegisterScalableTarget",
                    "application-autoscaling:DeregisterScalableTarget",
                    "application-autoscaling:PutScalingPolicy",
                    "application-autoscaling:DeleteScalingPolicy",
                ],
                f"arn:{partition}:application-autoscaling:{region}:{account}:scalable-target/*",
            ),
            allow(
                "AutoscalingReads",
                [
                    "application-autoscaling:DescribeScalableTargets",
                    "application-autoscaling:DescribeScalingPolicies",
                ],
                "*",
            ),
            allow(
                "AutoscalingServiceRole",
                ["iam:CreateServiceLinkedRole"],
                scaling_role,
                StringLike={
                    "iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"
                },
            ),
            allow(
                "ProjectAlarms",
                [
                    "cloudwatch:PutMetricAlarm",
                    "cloudwatch:DeleteAlarms",
                    "cloudwatch:DescribeAlarms",
                ],
                [f"{alarms}llmship-{project}-*", f"{alarms}TargetTracking-endpoint/{names}"],
            ),
            allow(
                "MetricsRead",
                ["cloudwatch:GetMetricStatistics", "cloudwatch:GetMetricData"],
                "*",
            ),
            allow(
                "TtlSchedules",
                [
                    "scheduler:CreateSchedule",
                    "scheduler:UpdateSchedule",
                    "scheduler:GetSchedule",
                    "scheduler:DeleteSchedule",
                    "scheduler:CreateScheduleGroup",
                    "scheduler:GetScheduleGroup",
                    "scheduler:TagResource",
                ],
                [
                    f"{scheduler}:schedule/llmship/delete-{project}-*",
                    f"{scheduler}:schedule-group/llmship",
                ],
            ),
            allow(
                "TtlRoles",
                [
                    "iam:GetRole",
                    "iam:ListRoleTags",
                    "iam:CreateRole",
                    "iam:TagRole",
                    "iam:PutRolePolicy",
                    "iam:DeleteRolePolicy",
                    "iam:DeleteRole",
                ],
                ttl_roles,
            ),
            allow(
                "PassTtlRoles",
                ["iam:PassRole"],
                ttl_roles,
                StringEquals={"iam:PassedToService": "scheduler.amazonaws.com"},
            ),
            allow(
                "Quotas",
                [
                    "servicequotas:ListServiceQuotas",
                    "servicequotas:ListAWSDefaultServiceQuotas",
                    "servicequotas:GetServiceQuota",
                ],
                "*",
            ),
            allow(
                "EndpointLogs",
                [
                    "logs:DescribeLogStreams",
                    "logs:GetLogEvents",
                    "logs:FilterLogEvents",
                    "logs:DeleteLogGroup",
                ],
                [logs, f"{logs}:*"],
            ),
            allow(
                "VpcChecks",
                [
                    "ec2:DescribeSubnets",
                    "ec2:DescribeSecurityGroups",
                    "ec2:DescribeRouteTables",
                    "ec2:DescribeVpcEndpoints",
                ],
                "*",
            ),
            allow(
                "ProjectS3GatewayEndpoint",
                ["ec2:CreateVpcEndpoint", "ec2:CreateTags"],
                f"arn:{partition}:ec2:{region}:{account}:*",
                StringEquals={"aws:RequestTag/llmship:project": project},
            ),
            allow(
                "DeleteProjectS3GatewayEndpoint",
                ["ec2:DeleteVpcEndpoints"],
                f"arn:{partition}:ec2:{region}:{account}:vpc-endpoint/*",
                StringEquals={"aws:ResourceTag/llmship:project": project},
            ),
        ],
    }


def _identity(session) -> tuple[str, str]:
    """(account id, partition) of the caller."""
    from botocore.exceptions import ClientError

    try:
        arn = client(session, "sts").get_caller_identity()["Arn"]
    except ClientError as exc:
        raise translate(exc, "sts", "GetCallerIdentity") from None
    parts = arn.split(":")
    return parts[4], parts[1]


def check_owner(
    iam,
    name: str,
    project: str,
    remedy: str = "pass another role name (--role-name), or set aws.role_arn to that role if "
    "it is meant for SageMaker",
) -> None:
    """Refuse to rewrite a role that llmship did not create for this project."""
    from botocore.exceptions import ClientError

    try:
        tags = {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=name)["Tags"]}
    except ClientError as exc:
        raise translate(exc, "iam", "ListRoleTags", name) from None
    if tags.get("llmship:project") != project:
        owner = tags.get("llmship:project")
        whose = f"llmship project {owner!r}" if owner else "something other than llmship"
        raise DeployError(
            f"IAM role {name} exists and belongs to {whose}, not project {project!r}; llmship "
            f"leaves it as it is: {remedy}"
        )


def _inline_policy(iam, role: str, policy: str) -> dict | None:
    from botocore.exceptions import ClientError

    try:
        found = iam.get_role_policy(RoleName=role, PolicyName=policy)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchEntity":
            return None
        raise translate(exc, "iam", "GetRolePolicy", f"{role}/{policy}") from None
    return _document(found["PolicyDocument"])


def _document(document: Any) -> Any:
    """A policy document as a dict: IAM returns it URL-encoded, boto3 usually decodes it."""
    if isinstance(document, str):
        return json.loads(unquote(document))
    return document


def _call(method, operation: str, resource: str, **kwargs) -> dict:
    from botocore.exceptions import ClientError

    try:
        return method(**kwargs)
    except ClientError as exc:
        raise translate(exc, "iam", operation, resource) from None


# A new role not yet assumable ------------------------------------------------------------


def is_role_not_assumable(exc: Exception) -> bool:
    """True for the answer AWS services give while a new role is not yet usable by them
    (SageMaker: "ValidationException: Could not assume role ...", Bedrock and Scheduler
    say much the same)."""
    error = getattr(exc, "response", {}).get("Error", {})
    code, message = error.get("Code", ""), error.get("Message", "").lower()
    return (
        code
        in ("ValidationException", "AccessDeniedException", "InvalidParameterValue", "InvalidRole")
        and "role" in message
        and ("assum" in message or "trust" in message)
    )


def call_with_new_role(
    call: Callable[[], T],
    *,
    role_arn: str,
    service: str,
    operation: str,
    resource: str = "",
    tries: int = ROLE_RETRY_TRIES,
    first_delay_s: float = ROLE_RETRY_FIRST_DELAY_S,
    max_delay_s: float = ROLE_RETRY_MAX_DELAY_S,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """`call()`, retried with doubling delays (bounded) while `service` cannot yet assume
    `role_arn`; any other ClientError is raised unchanged for the caller to translate.

    When the role stays unusable, an AwsError names the role, the call and what to do.
    """
    from botocore.exceptions import ClientError

    delay, waited = first_delay_s, 0.0
    for attempt in range(1, tries + 1):
        try:
            return call()
        except ClientError as exc:
            if not is_role_not_assumable(exc):
                raise
            if attempt == tries:
                message = exc.response.get("Error", {}).get("Message", "")
                where = f" on {resource}" if resource else ""
                raise AwsError(
                    f"{service} {operation}{where}: {service}.amazonaws.com could not assume "
                    f"the role {role_arn} after {tries} tries over {waited:.0f} s ({message}). "
                    "If the role was just created, IAM is still propagating it: run the "
                    "command again in a minute. Otherwise check that the role exists and "
                    f"that its trust policy allows the principal {service}.amazonaws.com "
                    "(`llmship aws bootstrap` writes such a role), and that aws.role_arn "
                    "names it"
                ) from None
            sleep(delay)
            waited += delay
            delay = min(delay * 2, max_delay_s)
    raise AssertionError("unreachable")  # the loop returns or raises


# Every policy llmship writes, for one lint ----------------------------------------------


@dataclass(frozen=True)
class PolicyContext:
    """Example values the builders fill their ARNs with (the lint needs no AWS)."""

    partition: str = "aws"
    account: str = "123456789012"
    region: str = "us-west-2"
    project: str = "demo"
    bucket: str = "demo-llmship-artifacts"
    deployment: str = "demo-20260101-120000"

    @property
    def role_arn(self) -> str:
        return f"arn:{self.partition}:iam::{self.account}:role/{default_role_name(self.project)}"


@dataclass(frozen=True)
class WrittenPolicy:
    """One policy document llmship writes: an identity policy or a role's trust policy."""

    name: str
    document: dict[str, Any]
    kind: Literal["identity", "trust"] = "identity"


PolicyBuilder = Callable[[PolicyContext], list[WrittenPolicy]]
POLICY_BUILDERS: dict[str, PolicyBuilder] = {}


def register_policies(name: str) -> Callable[[PolicyBuilder], PolicyBuilder]:
    """Decorator: add a module's policy builder to POLICY_BUILDERS under `name`."""

    def add(builder: PolicyBuilder) -> PolicyBuilder:
        POLICY_BUILDERS[name] = builder
        return builder

    return add


@register_policies("sagemaker-execution-role")
def _execution_role_policies(ctx: PolicyContext) -> list[WrittenPolicy]:
    policies = execution_policies(partition=ctx.partition, account=ctx.account, bucket=ctx.bucket)
    return [WrittenPolicy("trust", trust_policy(), "trust")] + [
        WrittenPolicy(name, document) for name, document in policies.items()
    ]


@register_policies("deployer")
def _deployer_policies(ctx: PolicyContext) -> list[WrittenPolicy]:
    document = deployer_policy(
        account=ctx.account,
        region=ctx.region,
        project=ctx.project,
        role_arn=ctx.role_arn,
        bucket=ctx.bucket,
    )
    return [WrittenPolicy("deployer", document)]
