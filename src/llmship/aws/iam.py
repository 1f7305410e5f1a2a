"""`llmship aws bootstrap`: the SageMaker execution role, and the policy a deploying user needs.

The execution role is what the endpoint's container runs as. It may read and write the
project bucket (nothing else in S3), write logs only to SageMaker's log groups, pull
container images and publish metrics: least privilege, one inline policy per concern so
each reads on its own. Creating it is idempotent: an existing role of this project is
brought to the intended trust and policies (a no-op when they already match); a role of
the same name that llmship did not create for this project is refused, never rewritten.

The identity policies for the people who run llmship's commands are one managed
policy per capability (deploy, train, bedrock, expose): `capability_policy`, written
in llmship.aws.capabilities and re-exported here; `deployer_policy` is the deploy one.

Every policy llmship writes is also reachable through POLICY_BUILDERS (one entry per
module that writes a role or prints a policy), so one lint test covers them all.

A role IAM has just created is not assumable everywhere at once: for a few seconds,
sometimes a minute, SageMaker (or Bedrock, Scheduler) answers "could not assume role".
`call_with_new_role` retries such a call with bounded backoff, then says what to do.

What a command's settings need beyond these standing policies (a VPC, data in another
bucket, SNS topics, KMS keys) is granted per command and deployment by role_grants.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import unquote

from llmship.aws import capabilities
from llmship.aws.capabilities import CAPABILITIES, capability_policy
from llmship.aws.errors import aws_call, error_code, error_message, ignore_not_found
from llmship.aws.session import client
from llmship.errors import AwsError, DeployError
from llmship.sagemaker.names import default_role_name
from llmship.state import Kind, StateStore, Status, tag_list, tags

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
    name = role_name or default_role_name(project)
    store = (store or StateStore()).owned_by("sagemaker")
    iam = client(session, "iam")
    account, partition = _identity(session)
    policies = execution_policies(partition=partition, account=account, bucket=bucket)
    role_tags = tags(project, BOOTSTRAP, BOOTSTRAP)
    recorded = next(
        (r for r in store.resources() if (r.kind, r.name) == (Kind.IAM_ROLE, name)), None
    )
    role = None
    with ignore_not_found("iam", "GetRole", name):
        role = iam.get_role(RoleName=name)["Role"]
    created = role is None
    if not created:
        check_owner(iam, name, project)
    if created or recorded is None:
        store.record_creating(Kind.IAM_ROLE, name, BOOTSTRAP, project, details={"bucket": bucket})
    if created:
        role = _call(
            iam.create_role,
            "CreateRole",
            name,
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(trust_policy()),
            Description=f"llmship: SageMaker execution role of project {project}",
            Tags=tag_list(role_tags),
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
    if recorded is None or recorded.status != Status.UP or created:
        store.set_status(
            Kind.IAM_ROLE, name, Status.UP, details={"arn": role["Arn"], "bucket": bucket}
        )
    return Bootstrap(role["Arn"], name, created, list(policies))


def deployer_policy(
    *, account: str, region: str, project: str, role_arn: str, bucket: str
) -> dict[str, Any]:
    """The identity policy a user needs to plan, deploy, operate and destroy this
    project's endpoints: the `deploy` capability (see llmship.aws.capabilities)."""
    partition = role_arn.split(":")[1] if role_arn.startswith("arn:") else "aws"
    return capability_policy(
        "deploy",
        partition=partition,
        account=account,
        region=region,
        project=project,
        bucket=bucket,
        role_arn=role_arn,
    )


def _identity(session) -> tuple[str, str]:
    """(account id, partition) of the caller."""
    with aws_call("sts", "GetCallerIdentity"):
        arn = client(session, "sts").get_caller_identity()["Arn"]
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
    with aws_call("iam", "ListRoleTags", name):
        role_tags = {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=name)["Tags"]}
    owner = role_tags.get(capabilities.TAG)
    if owner != project:
        whose = f"llmship project {owner!r}" if owner else "something other than llmship"
        raise DeployError(
            f"IAM role {name} exists and belongs to {whose}, not project {project!r}; llmship "
            f"leaves it as it is: {remedy}"
        )


def _inline_policy(iam, role: str, policy: str) -> dict | None:
    with ignore_not_found("iam", "GetRolePolicy", f"{role}/{policy}"):
        return _document(iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"])
    return None


def _document(document: Any) -> Any:
    """A policy document as a dict: IAM returns it URL-encoded, boto3 usually decodes it."""
    if isinstance(document, str):
        return json.loads(unquote(document))
    return document


def _call(method, operation: str, resource: str, **kwargs) -> dict:
    with aws_call("iam", operation, resource):
        return method(**kwargs)


# A new role not yet assumable ------------------------------------------------------------


ROLE_NOT_ASSUMABLE_CODES = frozenset(
    {
        "ValidationException",
        "AccessDeniedException",
        "InvalidParameterValue",
        "InvalidParameterValueException",
        "InvalidRole",
    }
)


def is_role_not_assumable(exc: Exception) -> bool:
    """True for the answer AWS services give while a new role is not yet usable by them,
    each naming the role and assuming it:
        SageMaker  "Could not assume role arn:... Please ensure that the role exists and
                   allows principal 'sagemaker.amazonaws.com' to assume the role."
        Bedrock    "Could not assume provided IAM role." (CreateModelCustomizationJob,
                   CreateModelImportJob; aws-samples/amazon-bedrock-workshop#367)
        Scheduler  "The execution role you provide must allow AWS EventBridge Scheduler
                   to assume the role." (aws/aws-sdk-js-v3#6494)
        Lambda     InvalidParameterValueException "The role defined for the function
                   cannot be assumed by Lambda." (CreateFunction)"""
    code, message = error_code(exc), error_message(exc).lower()
    return (
        code in ROLE_NOT_ASSUMABLE_CODES
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
                message = error_message(exc)
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
    """One managed policy per capability (`aws bootstrap --print-policy`)."""
    return [
        WrittenPolicy(
            capabilities.policy_name(capability),
            capability_policy(
                capability,
                partition=ctx.partition,
                account=ctx.account,
                region=ctx.region,
                project=ctx.project,
                bucket=ctx.bucket,
                role_arn=ctx.role_arn,
            ),
        )
        for capability in CAPABILITIES
    ]
