"""The service role Bedrock assumes for customization and import jobs.

Only bedrock.amazonaws.com may assume it, and only on behalf of this account's
model-customization and model-import jobs (aws:SourceAccount and aws:SourceArn: the
confused-deputy guard AWS documents). It may read the project's Bedrock input prefix
(training data, models to import) and write its output prefix (metrics, artifacts),
nothing else. One role per project, named llmship-<project>-bedrock: created tagged
and recorded on first use, reused (and brought to these documents) after; a role of
that name llmship did not make for this project is refused, never rewritten.

A job run in a VPC, or importing a model kept outside the input prefix, needs more:
`job_grant` builds that job's own inline policy (Bedrock's VPC statements, read on
exactly that data; see llmship.aws.role_grants), put before the job and removed by
`destroy` of its deployment.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llmship.aws.errors import ignore_not_found
from llmship.aws.iam import (
    VERSION,
    PolicyContext,
    WrittenPolicy,
    _call,
    _document,
    _identity,
    _inline_policy,
    check_owner,
    register_policies,
)
from llmship.aws.role_grants import (
    BedrockJob,
    RoleGrant,
    S3Access,
    arn_parts,
    bedrock_vpc_statements,
    plan_grant,
    policy_name,
)
from llmship.aws.session import client
from llmship.state import Kind, StateStore, Status, tag_list, tags

ROLE_KIND = Kind.IAM_ROLE
POLICY_NAME = "llmship-bedrock-s3"


@dataclass(frozen=True)
class Prefixes:
    """Where a project's Bedrock jobs read and write in the bucket."""

    bucket: str
    project: str

    @property
    def input(self) -> str:
        return f"llmship/{self.project}/bedrock/input/"

    @property
    def output(self) -> str:
        return f"llmship/{self.project}/bedrock/output/"

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


def role_name(project: str) -> str:
    return f"llmship-{project}-bedrock"


def trust_policy(*, partition: str, account: str, region: str) -> dict[str, Any]:
    """bedrock.amazonaws.com, for this account's customization and import jobs only."""
    jobs = f"arn:{partition}:bedrock:{region}:{account}"
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "bedrock.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": account},
                    "ArnEquals": {
                        "aws:SourceArn": [
                            f"{jobs}:model-customization-job/*",
                            f"{jobs}:model-import-job/*",
                        ]
                    },
                },
            }
        ],
    }


def access_policy(*, partition: str, prefixes: Prefixes) -> dict[str, Any]:
    """Read the input prefix, write the output prefix, list only those two."""
    bucket = f"arn:{partition}:s3:::{prefixes.bucket}"
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "ListProjectPrefixes",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": bucket,
                "Condition": {
                    "StringLike": {"s3:prefix": [f"{prefixes.input}*", f"{prefixes.output}*"]}
                },
            },
            {
                "Sid": "ReadInput",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": f"{bucket}/{prefixes.input}*",
            },
            {
                "Sid": "WriteOutput",
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:GetObject"],
                "Resource": f"{bucket}/{prefixes.output}*",
            },
        ],
    }


def ensure_role(
    session, *, prefixes: Prefixes, deployment: str, run_id: str, store: StateStore
) -> str:
    """The role's ARN: created (tagged, recorded) or reused and brought up to date."""
    name = role_name(prefixes.project)
    iam = client(session, "iam")
    account, partition = _identity(session)
    trust = trust_policy(partition=partition, account=account, region=session.region_name)
    access = access_policy(partition=partition, prefixes=prefixes)
    role = None
    with ignore_not_found("iam", "GetRole", name):
        role = iam.get_role(RoleName=name)["Role"]
    recorded = any((r.kind, r.name) == (ROLE_KIND, name) for r in store.resources())
    if role is not None:
        check_owner(
            iam, name, prefixes.project, "set bedrock.role_arn to a role Bedrock may assume"
        )
    details = {"service": "bedrock", "bucket": prefixes.bucket}
    if role is None or not recorded:
        store.record_creating(ROLE_KIND, name, deployment, prefixes.project, details=details)
    if role is None:
        role = _call(
            iam.create_role,
            "CreateRole",
            name,
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(trust),
            Description=f"llmship: Bedrock service role of project {prefixes.project}",
            Tags=tag_list(tags(prefixes.project, deployment, run_id)),
        )["Role"]
    elif _document(role.get("AssumeRolePolicyDocument")) != trust:
        _call(
            iam.update_assume_role_policy,
            "UpdateAssumeRolePolicy",
            name,
            RoleName=name,
            PolicyDocument=json.dumps(trust),
        )
    if _inline_policy(iam, name, POLICY_NAME) != access:
        _call(
            iam.put_role_policy,
            "PutRolePolicy",
            name,
            RoleName=name,
            PolicyName=POLICY_NAME,
            PolicyDocument=json.dumps(access),
        )
    store.set_status(ROLE_KIND, name, Status.UP, details={**details, "arn": role["Arn"]})
    return role["Arn"]


def delete_role(iam, name: str) -> None:
    """Its inline policies, then the role; a role already gone counts as deleted."""
    with ignore_not_found("iam", "DeleteRole", name):
        for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            iam.delete_role_policy(RoleName=name, PolicyName=policy)
        iam.delete_role(RoleName=name)


def job_grant(
    session,
    role_arn: str,
    *,
    command: str,
    deployment: str,
    vpc,
    job: BedrockJob,
    accesses: Sequence[S3Access] = (),
) -> RoleGrant | None:
    """What one job needs from the role beyond its project prefixes: the VPC permissions
    of Bedrock's VPC page for `job` when a VPC is set, and reading data kept elsewhere
    (None: nothing). Read-only; the caller puts it with put_grant."""
    statements = None
    if vpc is not None and vpc.subnets:
        partition, _, account = arn_parts(role_arn)
        statements = bedrock_vpc_statements(
            partition=partition,
            region=session.region_name,
            account=account,
            job=job,
            subnets=vpc.subnets,
            security_groups=vpc.security_groups,
        )
    return plan_grant(
        session,
        role_arn=role_arn,
        name=policy_name(command, deployment),
        vpc_statements=statements,
        vpc_summary=f"VPC network interfaces in {', '.join(vpc.subnets)}" if statements else "",
        accesses=accesses,
    )


def outside_prefixes(uri: str, prefixes: Prefixes) -> bool:
    """Whether the role's standing policy cannot read `uri` (not under the input prefix)."""
    return not uri.startswith(prefixes.uri(prefixes.input))


@register_policies("bedrock-service-role")
def _bedrock_role_policies(ctx: PolicyContext) -> list[WrittenPolicy]:
    """The documents ensure_role writes, for the IAM lint."""
    return [
        WrittenPolicy(
            "trust",
            trust_policy(partition=ctx.partition, account=ctx.account, region=ctx.region),
            "trust",
        ),
        WrittenPolicy(
            "access",
            access_policy(partition=ctx.partition, prefixes=Prefixes(ctx.bucket, ctx.project)),
        ),
    ]
