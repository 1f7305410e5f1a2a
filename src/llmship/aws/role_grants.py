"""What one command's settings need from a service role beyond its standing policies.

The SageMaker execution role reads and writes the project bucket, the Bedrock role its
project prefixes; nothing else. A setting that points elsewhere would fail minutes into
a job or an endpoint's start, so the command that uses it grants exactly that, as one
inline policy on the role per command and deployment (`llmship-<command>-<deployment>`),
recorded in the state store (kind iam:role-policy) so `destroy` removes it:

- a VPC: the EC2 network-interface permissions each service's VPC page lists (SageMaker:
  "Give SageMaker AI access to resources in your Amazon VPC"; Bedrock: "Protect model
  customization jobs using a VPC" and "Protect custom model import jobs using a VPC",
  scoped by the tags Bedrock puts on the interfaces it creates);
- S3 data outside the role's own bucket or prefix: read on exactly those objects or
  prefixes, write on exactly those output prefixes;
- SNS topics an async endpoint notifies: sns:Publish on exactly those topics;
- the KMS keys that encrypt such objects, buckets or topics: use of exactly those keys.

An identity policy is not always enough: another account's bucket, key or topic must
also allow the role in its own policy. The plan inspects each with read-only calls and
names the resource and the statement its owner must add; where llmship may not look
(AccessDenied), it says what it could not check.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from llmship.aws.errors import (
    aws_call,
    error_code,
    is_access_denied,
    is_not_found,
    translate,
)
from llmship.aws.iam import VERSION, PolicyContext, WrittenPolicy, register_policies
from llmship.aws.session import client
from llmship.aws.uris import s3_parts
from llmship.state import Kind, StateStore, Status

Mode = Literal["read", "write", "read-write"]
BedrockJob = Literal["model-customization-job", "model-import-job"]
BEDROCK_JOB_TAG = {
    "model-customization-job": "BedrockModelCustomizationJobArn",
    "model-import-job": "BedrockModelImportJobArn",
}
# SageMaker's VPC page: Resource "*" for all nine actions.
SAGEMAKER_VPC_ACTIONS = (
    "ec2:CreateNetworkInterface",
    "ec2:CreateNetworkInterfacePermission",
    "ec2:DeleteNetworkInterface",
    "ec2:DeleteNetworkInterfacePermission",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeVpcs",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
)
# Those of them IAM can scope to a resource (the Service Authorization Reference).
SAGEMAKER_VPC_SCOPED = (
    "ec2:CreateNetworkInterface",
    "ec2:CreateNetworkInterfacePermission",
    "ec2:DeleteNetworkInterface",
)
EC2_DESCRIBE = (
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeVpcs",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
)
READ_ACTIONS = ("s3:GetObject",)
WRITE_ACTIONS = ("s3:PutObject", "s3:AbortMultipartUpload")
KMS_READ = ("kms:Decrypt",)
KMS_WRITE = ("kms:GenerateDataKey", "kms:Decrypt")  # multipart uploads decrypt too
# What a publisher to an encrypted topic needs (SNS: "Encryption at rest", key management).
KMS_PUBLISH = ("kms:GenerateDataKey*", "kms:Decrypt")
AWS_MANAGED_ALIAS = "alias/aws/"
# GetBucketEncryption on a bucket without a default-encryption configuration (S3 API
# reference, GetBucketEncryption / error codes).
NO_ENCRYPTION_CONFIG = "ServerSideEncryptionConfigurationNotFoundError"


@dataclass(frozen=True)
class S3Access:
    """One S3 location a role must reach: an object, or a prefix ending in '/'."""

    uri: str
    mode: Mode

    @property
    def bucket(self) -> str:
        return s3_parts(self.uri)[0]

    @property
    def key(self) -> str:
        """The object key, or the prefix (ending in '/', or '' for the whole bucket)."""
        key = s3_parts(self.uri)[1]
        if not key or key.endswith("/") or (self.mode == "read" and is_object(key)):
            return key
        return f"{key}/"

    @property
    def is_prefix(self) -> bool:
        return not self.key or self.key.endswith("/")


def is_object(key: str) -> bool:
    """A key naming one object to read (a model.tar.gz), not a prefix."""
    return key.endswith((".tar.gz", ".tgz", ".tar"))


@dataclass
class RoleGrant:
    """The inline policy one command puts on a role, and what the plan says about it."""

    role_arn: str
    policy_name: str
    statements: list[dict] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def role_name(self) -> str:
        return self.role_arn.rsplit("/", 1)[-1]

    @property
    def record(self) -> str:
        """The state store's name for it: `<role>/<policy>`."""
        return f"{self.role_name}/{self.policy_name}"

    @property
    def document(self) -> dict:
        return {"Version": VERSION, "Statement": self.statements}

    def describe(self) -> str:
        return "; ".join(self.summary)


def policy_name(command: str, deployment: str) -> str:
    """`llmship-<command>-<deployment>` (IAM allows 128 characters)."""
    return f"llmship-{command}-{deployment}"[:128]


def arn_parts(arn: str) -> tuple[str, str, str]:
    """(partition, region, account) of an ARN."""
    parts = arn.split(":")
    return parts[1], parts[3], parts[4]


# Statements ----------------------------------------------------------------------------


def sagemaker_vpc_statements(
    *,
    partition: str,
    region: str,
    account: str,
    subnets: Sequence[str],
    security_groups: Sequence[str],
) -> list[dict]:
    """The nine EC2 actions SageMaker's VPC page lists for the execution role. The page
    grants them on "*"; those that take a resource are scoped here to this account and
    region's interfaces, and interfaces are created only in the configured subnets and
    security groups (SageMaker creates them nowhere else)."""
    ec2 = f"arn:{partition}:ec2:{region}:{account}"
    interfaces = f"{ec2}:network-interface/*"
    unscoped = [a for a in SAGEMAKER_VPC_ACTIONS if a not in SAGEMAKER_VPC_SCOPED]
    return [
        _allow("SageMakerVpcDescribe", unscoped, ["*"]),
        _allow(
            "SageMakerVpcCreateInterfaces",
            ("ec2:CreateNetworkInterface",),
            [interfaces]
            + [f"{ec2}:subnet/{s}" for s in subnets]
            + [f"{ec2}:security-group/{g}" for g in security_groups],
        ),
        _allow(
            "SageMakerVpcManageInterfaces",
            ("ec2:CreateNetworkInterfacePermission", "ec2:DeleteNetworkInterface"),
            [interfaces],
        ),
    ]


def bedrock_vpc_statements(
    *,
    partition: str,
    region: str,
    account: str,
    job: BedrockJob,
    subnets: Sequence[str],
    security_groups: Sequence[str],
) -> list[dict]:
    """The Bedrock role's VPC permissions as Bedrock's VPC page for `job` writes them:
    interfaces only with Bedrock's tags, only in the given subnets and security groups.
    Two changes that grant nothing more: the job-ARN tag is compared with StringLike (a
    tag is a string; the page's ArnEquals matches it the same way), and the actions
    that take a resource are on this account's interfaces rather than "*"."""
    ec2 = f"arn:{partition}:ec2:{region}:{account}"
    tag = BEDROCK_JOB_TAG[job]
    jobs = f"arn:{partition}:bedrock:{region}:{account}:{job}/*"
    interfaces = f"{ec2}:network-interface/*"
    subnet_arns = [f"{ec2}:subnet/{s}" for s in subnets]
    managed = {
        "ArnEquals": {"ec2:Subnet": subnet_arns},
        "StringLike": {f"ec2:ResourceTag/{tag}": [jobs]},
        "StringEquals": {"ec2:ResourceTag/BedrockManaged": "true"},
    }
    return [
        {"Sid": "BedrockVpcDescribe", "Effect": "Allow", "Action": list(EC2_DESCRIBE),
         "Resource": "*"},
        {
            "Sid": "BedrockVpcCreateTaggedInterface",
            "Effect": "Allow",
            "Action": "ec2:CreateNetworkInterface",
            "Resource": interfaces,
            "Condition": {
                "StringEquals": {"aws:RequestTag/BedrockManaged": ["true"]},
                "StringLike": {f"aws:RequestTag/{tag}": [jobs]},
            },
        },
        {
            "Sid": "BedrockVpcSubnetsAndGroups",
            "Effect": "Allow",
            "Action": "ec2:CreateNetworkInterface",
            "Resource": subnet_arns + [f"{ec2}:security-group/{g}" for g in security_groups],
        },
        {
            "Sid": "BedrockVpcManageInterfaces",
            "Effect": "Allow",
            "Action": ["ec2:CreateNetworkInterfacePermission", "ec2:DeleteNetworkInterface"],
            "Resource": interfaces,
            "Condition": managed,
        },
        {
            "Sid": "BedrockVpcDeletePermissions",
            "Effect": "Allow",
            "Action": "ec2:DeleteNetworkInterfacePermission",
            "Resource": "*",
            "Condition": managed,
        },
        {
            "Sid": "BedrockVpcTagInterfaces",
            "Effect": "Allow",
            "Action": "ec2:CreateTags",
            "Resource": interfaces,
            "Condition": {
                "StringEquals": {"ec2:CreateAction": ["CreateNetworkInterface"]},
                "ForAllValues:StringEquals": {"aws:TagKeys": ["BedrockManaged", tag]},
            },
        },
    ]  # fmt: skip


def s3_statements(partition: str, accesses: Iterable[S3Access]) -> list[dict]:
    """Read, write or both on exactly these objects and prefixes; ListBucket only on
    the prefixes read (SageMaker and Bedrock list a prefix before they download it)."""
    s3 = f"arn:{partition}:s3:::"
    reads, writes, lists = [], [], {}
    for access in accesses:
        resource = f"{s3}{access.bucket}/{access.key}" + ("*" if access.is_prefix else "")
        if access.mode in ("read", "read-write"):
            reads.append(resource)
            if access.is_prefix:
                lists.setdefault(access.bucket, []).append(f"{access.key}*")
        if access.mode in ("write", "read-write"):
            writes.append(resource)
    statements = []
    if reads:
        statements.append(_allow("ReadOutsideData", READ_ACTIONS, reads))
    if writes:
        statements.append(_allow("WriteOutsideData", WRITE_ACTIONS, writes))
    for number, (bucket, prefixes) in enumerate(sorted(lists.items()), 1):
        statement = _allow(f"ListOutsideData{number}", ("s3:ListBucket",), [f"{s3}{bucket}"])
        statement["Condition"] = {"StringLike": {"s3:prefix": sorted(set(prefixes))}}
        statements.append(statement)
    return statements


def sns_statements(topics: Iterable[str]) -> list[dict]:
    """sns:Publish on exactly the topics an async endpoint notifies."""
    found = sorted(set(topics))
    return [_allow("PublishNotifications", ("sns:Publish",), found)] if found else []


def kms_statements(keys: dict[str, set[str]]) -> list[dict]:
    """Use of exactly these KMS keys (key ARN -> actions)."""
    by_actions: dict[tuple[str, ...], list[str]] = {}
    for key, actions in sorted(keys.items()):
        by_actions.setdefault(tuple(sorted(actions)), []).append(key)
    return [
        _allow(f"UseKmsKeys{number}", actions, arns)
        for number, (actions, arns) in enumerate(sorted(by_actions.items()), 1)
    ]


def _allow(sid: str, actions: Sequence[str], resources: list[str]) -> dict:
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": list(actions) if len(actions) > 1 else actions[0],
        "Resource": resources if len(resources) > 1 else resources[0],
    }


# Planning: read-only checks ------------------------------------------------------------


def plan_grant(
    session,
    *,
    role_arn: str,
    name: str,
    vpc_statements: list[dict] | None = None,
    vpc_summary: str = "",
    accesses: Sequence[S3Access] = (),
    topics: Sequence[str] = (),
) -> RoleGrant | None:
    """The grant a command needs (None: nothing), with what the plan must say about
    other accounts' buckets, keys and topics. Only read calls."""
    if not (vpc_statements or accesses or topics):
        return None
    partition, _, account = arn_parts(role_arn)
    grant = RoleGrant(role_arn, name)
    keys: dict[str, set[str]] = {}
    if vpc_statements:
        grant.statements += vpc_statements
        grant.summary.append(vpc_summary or "VPC network interfaces")
    if accesses:
        s3 = client(session, "s3")
        for access in accesses:
            _inspect_s3(s3, session, access, account, grant, keys)
        grant.statements += s3_statements(partition, accesses)
    if topics:
        sns = client(session, "sns")
        for topic in sorted(set(topics)):
            _inspect_topic(sns, session, topic, account, grant, keys)
        grant.statements += sns_statements(topics)
        grant.summary.append(f"publish to {', '.join(sorted(set(topics)))}")
    grant.statements += kms_statements(keys)
    if keys:
        grant.summary.append(f"use KMS key(s) {', '.join(sorted(keys))}")
    return grant


def execution_role_grant(
    session,
    role_arn: str,
    *,
    command: str,
    deployment: str,
    bucket: str | None,
    vpc=None,
    data: Sequence[tuple[str | None, Mode]] = (),
    topics: Sequence[str | None] = (),
) -> RoleGrant | None:
    """What a SageMaker job or endpoint needs from the execution role beyond the project
    bucket (`bucket`): SageMaker's VPC permissions when `vpc` has subnets, the `data`
    locations (URI, mode) in other buckets, and the SNS `topics` (None: nothing)."""
    statements = None
    if vpc is not None and vpc.subnets:
        partition, _, account = arn_parts(role_arn)
        statements = sagemaker_vpc_statements(
            partition=partition,
            region=session.region_name,
            account=account,
            subnets=vpc.subnets,
            security_groups=vpc.security_groups,
        )
    accesses = [
        S3Access(uri, mode) for uri, mode in data if uri and S3Access(uri, mode).bucket != bucket
    ]
    return plan_grant(
        session,
        role_arn=role_arn,
        name=policy_name(command, deployment),
        vpc_statements=statements,
        vpc_summary=f"VPC network interfaces in {', '.join(vpc.subnets)}" if statements else "",
        accesses=list(dict.fromkeys(accesses)),
        topics=[t for t in topics if t],
    )


def _verbs(access: S3Access) -> str:
    return {"read": "read", "write": "write", "read-write": "read and write"}[access.mode]


def _bucket_actions(access: S3Access) -> str:
    actions = {"read": READ_ACTIONS, "write": WRITE_ACTIONS}.get(
        access.mode, READ_ACTIONS + WRITE_ACTIONS
    )
    listing = " and s3:ListBucket" if access.mode != "write" and access.is_prefix else ""
    return f"{', '.join(actions)}{listing}"


def _inspect_s3(s3, session, access: S3Access, account: str, grant: RoleGrant, keys) -> None:
    """Whose bucket it is, and which KMS key encrypts what the role reads or writes."""
    grant.summary.append(f"{_verbs(access)} {access.uri}")
    owner = _bucket_owner(s3, access.bucket, account)
    if owner == "missing":
        grant.problems.append(
            f"bucket {access.bucket} (of {access.uri}) does not exist; create it or fix the URI"
        )
        return
    principal = f"the role {grant.role_arn}"
    if owner == "other":
        grant.warnings.append(
            f"bucket {access.bucket} belongs to another AWS account: its bucket policy must "
            f"allow {principal} {_bucket_actions(access)} on {access.uri}"
        )
    elif owner == "unknown":
        grant.warnings.append(
            f"llmship may not inspect bucket {access.bucket} (access denied): {principal} is "
            f"granted {_verbs(access)} on {access.uri}; if the bucket belongs to another "
            f"account, its bucket policy must allow {_bucket_actions(access)} too, and a KMS "
            "key encrypting it must allow the role in its key policy"
        )
        return
    key = _object_key_id(s3, access) if access.mode != "write" else None
    if access.mode != "read":
        key = key or _bucket_key_id(s3, access.bucket)
    if key:
        actions = KMS_READ if access.mode == "read" else KMS_WRITE
        _add_key(session, key, actions, account, f"{access.uri} is encrypted with", grant, keys)


def _bucket_owner(s3, bucket: str, account: str) -> str:
    """'own', 'other', 'unknown' (access denied) or 'missing': HeadBucket with
    ExpectedBucketOwner answers 403 when another account owns the bucket."""
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=account)
        return "own"
    except ClientError as exc:
        if is_not_found(exc, "s3"):
            return "missing"
        if not is_access_denied(exc):
            raise translate(exc, "s3", "HeadBucket", bucket) from None
    try:
        s3.head_bucket(Bucket=bucket)
        return "other"
    except ClientError as exc:
        if is_access_denied(exc):
            return "unknown"
        raise translate(exc, "s3", "HeadBucket", bucket) from None


def _object_key_id(s3, access: S3Access) -> str | None:
    """The KMS key of the object read (of a prefix: its first object), if any."""
    from botocore.exceptions import ClientError

    try:
        key = access.key
        if access.is_prefix:
            listed = s3.list_objects_v2(Bucket=access.bucket, Prefix=key, MaxKeys=1)
            found = listed.get("Contents", [])
            if not found:
                return None
            key = found[0]["Key"]
        head = s3.head_object(Bucket=access.bucket, Key=key)
    except ClientError as exc:
        if is_not_found(exc, "s3") or is_access_denied(exc):
            return None
        raise translate(exc, "s3", "HeadObject", access.uri) from None
    if str(head.get("ServerSideEncryption", "")).startswith("aws:kms"):
        return head.get("SSEKMSKeyId")
    return None


def _bucket_key_id(s3, bucket: str) -> str | None:
    """The KMS key a bucket encrypts new objects with by default, if any."""
    from botocore.exceptions import ClientError

    try:
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"][
            "Rules"
        ]
    except ClientError as exc:
        if is_access_denied(exc) or error_code(exc) == NO_ENCRYPTION_CONFIG:
            return None
        raise translate(exc, "s3", "GetBucketEncryption", bucket) from None
    for rule in rules:
        default = rule.get("ApplyServerSideEncryptionByDefault", {})
        if str(default.get("SSEAlgorithm", "")).startswith("aws:kms"):
            return default.get("KMSMasterKeyID") or None
    return None


def _inspect_topic(sns, session, topic: str, account: str, grant: RoleGrant, keys) -> None:
    from botocore.exceptions import ClientError

    if arn_parts(topic)[2] != account:
        grant.warnings.append(
            f"SNS topic {topic} belongs to another AWS account: its access policy must allow "
            f"the role {grant.role_arn} sns:Publish"
        )
    try:
        attributes = sns.get_topic_attributes(TopicArn=topic)["Attributes"]
    except ClientError as exc:
        if is_not_found(exc, "sns"):
            grant.problems.append(f"SNS topic {topic} does not exist; create it or fix the ARN")
        elif is_access_denied(exc):
            grant.warnings.append(
                f"llmship may not read SNS topic {topic}'s attributes (access denied): if it "
                f"is encrypted with a customer managed KMS key, the role {grant.role_arn} "
                f"also needs {', '.join(KMS_PUBLISH)} on that key"
            )
        else:
            raise translate(exc, "sns", "GetTopicAttributes", topic) from None
        return
    key = attributes.get("KmsMasterKeyId")
    if key:
        what = f"topic {topic} is encrypted with"
        _add_key(session, key, KMS_PUBLISH, account, what, grant, keys)


def _add_key(session, key: str, actions, account: str, what: str, grant: RoleGrant, keys) -> None:
    """Grant `actions` on the key; name it when its own policy must change too."""
    if key.startswith(AWS_MANAGED_ALIAS):
        return  # an AWS managed key already lets the account's principals use it via its service
    arn = _key_arn(session, key)
    if arn is None:
        grant.warnings.append(
            f"{what} KMS key {key}, which llmship could not resolve (kms DescribeKey was "
            f"refused): the role {grant.role_arn} needs {', '.join(actions)} on it"
        )
        return
    keys.setdefault(arn, set()).update(actions)
    if arn_parts(arn)[2] != account:
        grant.warnings.append(
            f"{what} KMS key {arn} of another AWS account: its key policy must allow the "
            f"role {grant.role_arn} {', '.join(actions)}"
        )


def _key_arn(session, key: str) -> str | None:
    """A key's ARN from what S3 or SNS report (an ARN, a key id or an alias)."""
    from botocore.exceptions import ClientError

    if key.startswith("arn:") and ":key/" in key:
        return key
    try:
        return client(session, "kms").describe_key(KeyId=key)["KeyMetadata"]["Arn"]
    except ClientError as exc:
        if is_access_denied(exc) or is_not_found(exc, "kms"):
            return None
        raise translate(exc, "kms", "DescribeKey", key) from None


# Applying and removing -----------------------------------------------------------------


def put_grant(
    iam,
    grant: RoleGrant,
    *,
    store: StateStore,
    deployment: str,
    project: str,
    details: dict[str, str] | None = None,
) -> str:
    """Put the inline policy on the role, recorded first so destroy finds it; its record.
    `details` name what the grant serves (an endpoint: destroy revokes it once gone)."""
    store.record_creating(Kind.IAM_ROLE_POLICY, grant.record, deployment, project, "", details)
    with aws_call("iam", "PutRolePolicy", grant.record):
        iam.put_role_policy(
            RoleName=grant.role_name,
            PolicyName=grant.policy_name,
            PolicyDocument=json.dumps(grant.document, separators=(",", ":")),
        )
    details = {"role": grant.role_name, "policy": grant.policy_name}
    store.set_status(Kind.IAM_ROLE_POLICY, grant.record, Status.UP, "", details)
    return grant.record


def revoke_grants(iam, store: StateStore, deployment: str) -> list[str]:
    """Delete every inline policy recorded for `deployment`; what was removed."""
    from llmship.aws.secrets import revoke_read

    removed = []
    for grant in [r for r in store.resources(deployment) if r.kind == Kind.IAM_ROLE_POLICY]:
        revoke_read(iam, grant.name)
        store.remove(grant.kind, grant.name, grant.region)
        removed.append(f"{Kind.IAM_ROLE_POLICY} {grant.name}")
    return removed


# For the IAM lint ----------------------------------------------------------------------

KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"


@register_policies("role-grants")
def _grant_policies(ctx: PolicyContext) -> list[WrittenPolicy]:
    """Each kind of grant, as the commands write them."""
    topic = f"arn:{ctx.partition}:sns:{ctx.region}:{ctx.account}:{ctx.project}-done"
    key = f"arn:{ctx.partition}:kms:{ctx.region}:{ctx.account}:key/{KEY_ID}"
    subnets, groups = ["subnet-0123456789abcdef0"], ["sg-0123456789abcdef0"]
    deploy = (
        sagemaker_vpc_statements(
            partition=ctx.partition,
            region=ctx.region,
            account=ctx.account,
            subnets=subnets,
            security_groups=groups,
        )
        + s3_statements(
            ctx.partition,
            [
                S3Access("s3://other-models/llama/model.tar.gz", "read"),
                S3Access("s3://other-models/shared/", "read"),
                S3Access("s3://other-results/async/", "write"),
                S3Access("s3://other-results/checkpoints/", "read-write"),
            ],
        )
        + sns_statements([topic])
        + kms_statements({key: set(KMS_WRITE + KMS_PUBLISH)})
    )
    policies = [WrittenPolicy("sagemaker", {"Version": VERSION, "Statement": deploy})]
    for job in BEDROCK_JOB_TAG:
        statements = bedrock_vpc_statements(
            partition=ctx.partition,
            region=ctx.region,
            account=ctx.account,
            job=job,  # type: ignore[arg-type]
            subnets=subnets,
            security_groups=groups,
        )
        document = {"Version": VERSION, "Statement": statements}
        policies.append(WrittenPolicy(f"bedrock-{job}", document))
    return policies
