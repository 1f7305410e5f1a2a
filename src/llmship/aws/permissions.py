"""Which IAM permissions each AWS call llmship makes needs: the permission map.

An IAM action is not an operation name (ListObjectsV2 is s3:ListBucket, UploadPart is
s3:PutObject, Converse is bedrock:InvokeModel, every API Gateway call is
apigateway:<HTTP method>), one call may need several (a create with tags also needs the
service's tagging action; a call that passes a role needs iam:PassRole on it), and
each is authorized against the resource ARN IAM builds from the request. This module
holds that knowledge once: `needs()` turns one call (botocore service and operation
name, its parameters) into the (action, resource ARN, condition keys) IAM evaluates,
with ARN formats from AWS's Service Authorization Reference. The capability policies
(`llmship.aws.iam.capability_policy`) are checked against it by the test suite, and
`llmship aws check` simulates exactly these needs.

Where the ARN holds an id the request does not carry (a Bedrock job named by its
name, an autoscaling target, a VPC endpoint being created), the id is written `*`:
a policy must then allow that resource type as a whole for the call to pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import urlparse

from llmship.aws.capabilities import TAG

# Calls IAM never denies, and those granted to another identity than the one running
# the command: both are outside the capability policies.
NO_PERMISSION = frozenset({"sts:GetCallerIdentity"})
SOURCE_IDENTITY = frozenset({"sts:AssumeRole"})  # the identity that assumes aws.assume_role_arn


@dataclass(frozen=True)
class Need:
    """One permission IAM evaluates for a call: an action on a resource, with the
    request's condition keys (what `aws check` passes as ContextEntries)."""

    action: str
    resource: str
    conditions: dict[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class _Call:
    service: str
    operation: str
    params: Mapping[str, Any]
    partition: str
    region: str
    account: str
    project: str | None

    def get(self, *path: str, default: Any = None) -> Any:
        value: Any = self.params
        for key in path:
            if not isinstance(value, Mapping) or key not in value:
                return default
            value = value[key]
        return value

    def arn(self, service: str, resource: str, *, region: str | None = None, account=None) -> str:
        region = self.region if region is None else region
        account = self.account if account is None else account
        return f"arn:{self.partition}:{service}:{region}:{account}:{resource}"

    def global_arn(self, service: str, resource: str, account: str = "") -> str:
        return f"arn:{self.partition}:{service}::{account}:{resource}"


Builder = Callable[[_Call], list[Need]]


@dataclass(frozen=True)
class _Rule:
    actions: tuple[str, ...]  # every action the operation may need
    build: Builder


_RULES: dict[tuple[str, str], _Rule] = {}


def actions_for(service: str, operation: str) -> tuple[str, ...]:
    """Every IAM action `operation` of botocore service `service` may need (conditional
    ones included); KeyError when llmship's map does not know the call."""
    return _rule(service, operation).actions


def needs(
    service: str,
    operation: str,
    params: Mapping[str, Any] | None = None,
    *,
    partition: str = "aws",
    region: str,
    account: str,
    project: str | None = None,
) -> list[Need]:
    """The permissions IAM checks for this call with these parameters. With `project`,
    calls on existing resources carry aws:ResourceTag/llmship:project (llmship only
    acts on what it tagged), so a tag-scoped statement can be judged too."""
    call = _Call(service, operation, params or {}, partition, region, account, project)
    found = _rule(service, operation).build(call)
    if project is None:
        return found
    out = []
    for need in found:
        if not any(k.startswith("aws:RequestTag/") for k in need.conditions) and _taggable(
            need.resource
        ):
            need = Need(
                need.action,
                need.resource,
                {**need.conditions, f"aws:ResourceTag/{TAG}": project},
            )
        out.append(need)
    return out


def known_operations() -> list[tuple[str, str]]:
    """Every (service, operation) in the map."""
    _load_apigateway()
    return sorted(_RULES)


def granting_statement(
    need: Need | str,
    project: str | None = None,
    *,
    resource: str | None = None,
    role_arn: str | None = None,
) -> str | None:
    """`<capability policy name> / <Sid>` of the printed policy statement that grants
    `need`, for error messages and `aws check`; None when none does.

    With a resource ARN (a Need's, or `resource=`) the statement is the one the
    evaluator says allows that action on that resource with the need's conditions, in
    the policies of `project` (any project when not known) and execution role
    `role_arn` (default: the project's own; the project defaults to the need's
    llmship:project tag): an action alone may be granted by several statements, each
    on other resources. Knowing only the action (a resource that is
    no ARN), it is the first statement that lists the action."""
    from llmship.aws.capabilities import CAPABILITIES, policy_name, statement_actions
    from llmship.aws.policy_eval import allows

    if isinstance(need, str):
        need = Need(need, resource or "")
    tagged = [need.conditions.get(f"aws:{k}Tag/{TAG}") for k in ("Request", "Resource")]
    project = project or next((p for p in tagged if isinstance(p, str)), None)
    if need.resource == "*" or need.resource.startswith("arn:"):
        policies = _printed_policies(need.resource, project, role_arn)
        return allows(policies, need).statement
    for capability in CAPABILITIES:
        for sid, actions in statement_actions(capability):
            if any(_action_matches(pattern, need.action) for pattern in actions):
                return f"{policy_name(capability, project)} / {sid}"
    return None


@cache
def _printed_policies(resource: str, project: str | None, role_arn: str | None) -> dict:
    """Every capability's policy for `project` (`*`: any), named as printed, with the
    partition, account and region of `resource` (`*` where it names none)."""
    from llmship.aws.capabilities import CAPABILITIES, capability_policy, policy_name
    from llmship.sagemaker.names import default_role_name

    parts = resource.split(":", 5) if resource.startswith("arn:") else []
    partition = parts[1] if parts else "aws"
    region = (parts[3] if parts else "") or "*"
    account = (parts[4] if parts else "") or "*"
    role_arn = role_arn or f"arn:{partition}:iam::{account}:role/" + default_role_name(
        project or "*"
    )
    return {
        policy_name(capability, project): capability_policy(
            capability,
            partition=partition,
            account=account,
            region=region,
            project=project or "*",
            bucket="*",
            role_arn=role_arn,
        )
        for capability in CAPABILITIES
    }


def _action_matches(pattern: str, action: str) -> bool:
    from fnmatch import fnmatchcase

    return fnmatchcase(action.lower(), pattern.lower())


def _rule(service: str, operation: str) -> _Rule:
    if service == "apigateway":
        _load_apigateway()
    try:
        return _RULES[(service, operation)]
    except KeyError:
        raise KeyError(
            f"{service} {operation} is not in llmship's permission map "
            "(llmship.aws.permissions): add the IAM actions it needs"
        ) from None


def _taggable(resource: str) -> bool:
    """Resources llmship tags with llmship:project (not S3 objects, logs or "*")."""
    if resource == "*" or "*" in resource.rsplit(":", 1)[-1].split("/", 1)[0]:
        return False
    service = resource.split(":")[2] if resource.count(":") >= 5 else ""
    return service in {
        "sagemaker",
        "bedrock",
        "iam",
        "secretsmanager",
        "lambda",
        "dynamodb",
        "sqs",
        "cloudwatch",
        "scheduler",
        "ec2",
    } and not any(other in resource for other in ("foundation-model/", "model-package/"))


# ---- building blocks ------------------------------------------------------------------


def _add(
    service: str,
    operations: str | Iterable[str],
    actions: str | Iterable[str],
    resources: Callable[[_Call], list[str]],
    *,
    tags: Callable[[_Call], dict[str, str]] | None = None,
    tag_action: str | None = None,
    tag_resource: Callable[[_Call], str] | None = None,
    passes: tuple[Callable[[_Call], Any], str] | None = None,
    extra: Callable[[_Call], list[Need]] | None = None,
    extra_actions: Iterable[str] = (),
) -> None:
    """Register operations whose `actions` apply to each of `resources(call)`; a create
    with tags (`tags`) adds aws:RequestTag conditions and needs `tag_action` on the new
    resource (the first); `passes` = (role ARN getter, service principal) adds
    iam:PassRole; `extra` adds what depends on other parameters (KMS keys, layers)."""
    names = [operations] if isinstance(operations, str) else list(operations)
    action_list = [actions] if isinstance(actions, str) else list(actions)
    every = [*action_list, *([tag_action] if tag_action else [])]
    if passes:
        every.append("iam:PassRole")
    every += list(extra_actions)

    def build(call: _Call) -> list[Need]:
        request_tags = tags(call) if tags else {}
        conditions = {f"aws:RequestTag/{k}": v for k, v in request_tags.items()}
        arns = resources(call)
        out = [Need(a, arn, dict(conditions)) for a in action_list for arn in arns]
        if request_tags and tag_action:
            where = tag_resource(call) if tag_resource else arns[0]
            tagging = dict(conditions)
            if tag_action == "sagemaker:AddTags":  # names the create it is part of
                tagging["sagemaker:TaggingAction"] = call.operation
            out.append(Need(tag_action, where, tagging))
        if passes:
            role = passes[0](call)
            if role:
                out.append(Need("iam:PassRole", role, {"iam:PassedToService": passes[1]}))
        if extra:
            out += extra(call)
        return out

    for name in names:
        _RULES[(service, name)] = _Rule(tuple(dict.fromkeys(every)), build)


def _star(call: _Call) -> list[str]:
    return ["*"]


def _tag_list(*path: str, key: str = "Key", value: str = "Value"):
    """Tags given as [{"Key": k, "Value": v}, ...] at `path`."""

    def read(call: _Call) -> dict[str, str]:
        return {t[key]: t[value] for t in call.get(*path, default=[]) or [] if key in t}

    return read


def _tag_map(*path: str):
    """Tags given as {k: v} at `path`."""

    def read(call: _Call) -> dict[str, str]:
        return dict(call.get(*path, default={}) or {})

    return read


def _param(*path: str):
    return lambda call: call.get(*path)


def _kms(*paths: tuple[str, ...], actions=("kms:CreateGrant", "kms:DescribeKey")):
    """KMS use for each key id or ARN given at one of `paths`."""

    def build(call: _Call) -> list[Need]:
        out = []
        for path in paths:
            key = call.get(*path)
            if key:
                out += [Need(a, _key_arn(call, key)) for a in actions]
        return out

    return build


def _key_arn(call: _Call, key: str) -> str:
    if key.startswith("arn:"):
        return key
    if key.startswith("alias/"):
        return call.arn("kms", key)
    return call.arn("kms", f"key/{key}")


# ---- SageMaker ------------------------------------------------------------------------


def _sm(kind: str, *path: str):
    """A SageMaker resource named by a parameter (SageMaker ARNs are lower case)."""

    def arns(call: _Call) -> list[str]:
        name = call.get(*path)
        return [call.arn("sagemaker", f"{kind}/{str(name).lower() if name else '*'}")]

    return arns


def _sm_both(first, second):
    return lambda call: first(call) + second(call)


_SM_TAGS = _tag_list("Tags")
_add(
    "sagemaker",
    "CreateModel",
    "sagemaker:CreateModel",
    _sm("model", "ModelName"),
    tags=_SM_TAGS,
    tag_action="sagemaker:AddTags",
    passes=(_param("ExecutionRoleArn"), "sagemaker.amazonaws.com"),
)
_add(
    "sagemaker",
    "CreateEndpointConfig",
    "sagemaker:CreateEndpointConfig",
    _sm("endpoint-config", "EndpointConfigName"),
    tags=_SM_TAGS,
    tag_action="sagemaker:AddTags",
    extra=_kms(("KmsKeyId",), ("AsyncInferenceConfig", "OutputConfig", "KmsKeyId")),
    extra_actions=("kms:CreateGrant", "kms:DescribeKey"),
)
_add(
    "sagemaker",
    "CreateEndpoint",
    "sagemaker:CreateEndpoint",
    _sm_both(_sm("endpoint", "EndpointName"), _sm("endpoint-config", "EndpointConfigName")),
    tags=_SM_TAGS,
    tag_action="sagemaker:AddTags",
)
_add(
    "sagemaker",
    "UpdateEndpoint",
    "sagemaker:UpdateEndpoint",
    _sm_both(_sm("endpoint", "EndpointName"), _sm("endpoint-config", "EndpointConfigName")),
)
_add(
    "sagemaker",
    "CreateTrainingJob",
    "sagemaker:CreateTrainingJob",
    _sm("training-job", "TrainingJobName"),
    tags=_SM_TAGS,
    tag_action="sagemaker:AddTags",
    passes=(_param("RoleArn"), "sagemaker.amazonaws.com"),
    extra=_kms(("OutputDataConfig", "KmsKeyId"), ("ResourceConfig", "VolumeKmsKeyId")),
    extra_actions=("kms:CreateGrant", "kms:DescribeKey"),
)
for _op, _kind, _key in (
    ("DescribeEndpoint", "endpoint", "EndpointName"),
    ("DeleteEndpoint", "endpoint", "EndpointName"),
    ("UpdateEndpointWeightsAndCapacities", "endpoint", "EndpointName"),
    ("DescribeEndpointConfig", "endpoint-config", "EndpointConfigName"),
    ("DeleteEndpointConfig", "endpoint-config", "EndpointConfigName"),
    ("DescribeModel", "model", "ModelName"),
    ("DeleteModel", "model", "ModelName"),
    ("DescribeTrainingJob", "training-job", "TrainingJobName"),
    ("StopTrainingJob", "training-job", "TrainingJobName"),
):
    _add("sagemaker", _op, f"sagemaker:{_op}", _sm(_kind, _key))
for _op in ("ListEndpoints", "ListEndpointConfigs", "ListModels", "ListTrainingJobs"):
    _add("sagemaker", _op, f"sagemaker:{_op}", _star)
_add("sagemaker", "ListTags", "sagemaker:ListTags", lambda c: [c.get("ResourceArn") or "*"])
_add(
    "sagemaker",
    "AddTags",
    "sagemaker:AddTags",
    lambda c: [c.get("ResourceArn") or "*"],
)


def _model_package(call: _Call, name: str) -> str:
    """A Marketplace package is sold from another account: its ARN says which."""
    if name.startswith("arn:"):
        return name
    return call.arn("sagemaker", f"model-package/{name.lower()}")


_add(
    "sagemaker",
    "DescribeModelPackage",
    "sagemaker:DescribeModelPackage",
    lambda c: [_model_package(c, str(c.get("ModelPackageName", default="*")))],
)
# The runtime: one action covers the streaming call (IAM has no separate one for it).
_add(
    "sagemaker-runtime",
    ["InvokeEndpoint", "InvokeEndpointWithResponseStream"],
    "sagemaker:InvokeEndpoint",
    _sm("endpoint", "EndpointName"),
)
_add(
    "sagemaker-runtime",
    "InvokeEndpointAsync",
    "sagemaker:InvokeEndpointAsync",
    _sm("endpoint", "EndpointName"),
)


# ---- S3 -------------------------------------------------------------------------------


def _bucket(call: _Call) -> list[str]:
    return [call.global_arn("s3", str(call.get("Bucket", default="*")))]


def _object(call: _Call) -> list[str]:
    bucket, key = call.get("Bucket", default="*"), call.get("Key", default="*")
    return [call.global_arn("s3", f"{bucket}/{key}")]


def _objects(call: _Call) -> list[str]:
    keys = [o.get("Key", "*") for o in call.get("Delete", "Objects", default=[]) or []]
    bucket = call.get("Bucket", default="*")
    return [call.global_arn("s3", f"{bucket}/{k}") for k in keys] or _object(call)


_add("s3", "CreateBucket", "s3:CreateBucket", _bucket)
# HeadBucket is authorized as s3:ListBucket (S3 API reference, HeadBucket "Permissions").
for _op, _action in (
    ("HeadBucket", "s3:ListBucket"),
    ("ListObjectsV2", "s3:ListBucket"),
    ("ListObjects", "s3:ListBucket"),
    ("ListMultipartUploads", "s3:ListBucketMultipartUploads"),
    ("PutBucketEncryption", "s3:PutEncryptionConfiguration"),
    ("GetBucketEncryption", "s3:GetEncryptionConfiguration"),
    ("PutPublicAccessBlock", "s3:PutBucketPublicAccessBlock"),
    ("PutBucketTagging", "s3:PutBucketTagging"),
    ("GetBucketLocation", "s3:GetBucketLocation"),
    ("GetBucketPolicy", "s3:GetBucketPolicy"),
    ("GetBucketTagging", "s3:GetBucketTagging"),
    ("GetPublicAccessBlock", "s3:GetBucketPublicAccessBlock"),
):
    _add("s3", _op, _action, _bucket)
for _op, _action in (
    ("HeadObject", "s3:GetObject"),
    ("GetObject", "s3:GetObject"),
    ("PutObject", "s3:PutObject"),
    ("CreateMultipartUpload", "s3:PutObject"),
    ("UploadPart", "s3:PutObject"),
    ("CompleteMultipartUpload", "s3:PutObject"),
    ("AbortMultipartUpload", "s3:AbortMultipartUpload"),
    ("ListParts", "s3:ListMultipartUploadParts"),
    ("DeleteObject", "s3:DeleteObject"),
):
    _add(
        "s3",
        _op,
        _action,
        _object,
        extra=_kms(("SSEKMSKeyId",), actions=("kms:GenerateDataKey",)),
        extra_actions=("kms:GenerateDataKey",),
    )
_add("s3", "DeleteObjects", "s3:DeleteObject", _objects)
_add("s3", "ListBuckets", "s3:ListAllMyBuckets", _star)


# ---- IAM, STS -------------------------------------------------------------------------


def _role(call: _Call) -> list[str]:
    return [call.global_arn("iam", f"role/{call.get('RoleName', default='*')}", call.account)]


_add(
    "iam",
    "CreateRole",
    "iam:CreateRole",
    _role,
    tags=_tag_list("Tags"),
    tag_action="iam:TagRole",
)
for _op in (
    "GetRole",
    "DeleteRole",
    "ListRoleTags",
    "ListRolePolicies",
    "GetRolePolicy",
    "PutRolePolicy",
    "DeleteRolePolicy",
    "UpdateAssumeRolePolicy",
    "ListAttachedRolePolicies",
):
    _add("iam", _op, f"iam:{_op}", _role)
_add("iam", "TagRole", "iam:TagRole", _role, tags=_tag_list("Tags"))
_add(
    "iam",
    "SimulatePrincipalPolicy",
    "iam:SimulatePrincipalPolicy",
    lambda c: [c.get("PolicySourceArn") or "*"],
)
_add(
    "iam",
    "CreateServiceLinkedRole",
    "iam:CreateServiceLinkedRole",
    lambda c: [c.global_arn("iam", "role/aws-service-role/*", c.account)],
)
_add("sts", "GetCallerIdentity", "sts:GetCallerIdentity", _star)
_add("sts", "AssumeRole", "sts:AssumeRole", lambda c: [c.get("RoleArn") or "*"])


# ---- Bedrock --------------------------------------------------------------------------


def _bedrock(kind: str, *path: str):
    """A Bedrock resource given by ARN, or by name (its ARN holds an id: `*`)."""

    def arns(call: _Call) -> list[str]:
        value = str(call.get(*path) or "")
        return [value if value.startswith("arn:") else call.arn("bedrock", f"{kind}/*")]

    return arns


def _bedrock_model(call: _Call, value: str) -> str:
    """InvokeModel's modelId: an ARN, an inference profile id (geo prefix) or a
    foundation model id."""
    if value.startswith("arn:"):
        return value
    if value.split(".", 1)[0] in ("us", "eu", "apac", "global", "us-gov", "jp", "au", "ca"):
        return call.arn("bedrock", f"inference-profile/{value}")
    return call.arn("bedrock", f"foundation-model/{value}", account="")


def _foundation(call: _Call, value: str) -> str:
    if value.startswith("arn:"):
        return value
    return call.arn("bedrock", f"foundation-model/{value}", account="")


_BEDROCK_TAGS = {
    "jobTags": _tag_list("jobTags", key="key", value="value"),
    "customModelTags": _tag_list("customModelTags", key="key", value="value"),
    "importedModelTags": _tag_list("importedModelTags", key="key", value="value"),
    "tags": _tag_list("tags", key="key", value="value"),
}


def _bedrock_tags(*names: str):
    return lambda call: {k: v for n in names for k, v in _BEDROCK_TAGS[n](call).items()}


_add(
    "bedrock",
    "CreateModelCustomizationJob",
    "bedrock:CreateModelCustomizationJob",
    lambda c: [
        c.arn("bedrock", "custom-model/*"),
        _foundation(c, str(c.get("baseModelIdentifier", default="*"))),
    ],
    tags=_bedrock_tags("jobTags", "customModelTags"),
    tag_action="bedrock:TagResource",
    tag_resource=lambda c: c.arn("bedrock", "model-customization-job/*"),
    passes=(_param("roleArn"), "bedrock.amazonaws.com"),
    extra=_kms(("customModelKmsKeyId",)),
    extra_actions=("kms:CreateGrant", "kms:DescribeKey"),
)
_add(
    "bedrock",
    "CreateModelImportJob",
    "bedrock:CreateModelImportJob",
    _star,
    tags=_bedrock_tags("jobTags", "importedModelTags"),
    tag_action="bedrock:TagResource",
    tag_resource=lambda c: c.arn("bedrock", "model-import-job/*"),
    passes=(_param("roleArn"), "bedrock.amazonaws.com"),
    extra=_kms(("importedModelKmsKeyId",)),
    extra_actions=("kms:CreateGrant", "kms:DescribeKey"),
)
_add(
    "bedrock",
    "CreateProvisionedModelThroughput",
    "bedrock:CreateProvisionedModelThroughput",
    lambda c: [_bedrock_model(c, str(c.get("modelId", default="*")))],
    tags=_bedrock_tags("tags"),
    tag_action="bedrock:TagResource",
    tag_resource=lambda c: c.arn("bedrock", "provisioned-model/*"),
)
_add(
    "bedrock",
    "CreateCustomModelDeployment",
    "bedrock:CreateCustomModelDeployment",
    _bedrock("custom-model", "modelArn"),
    tags=_bedrock_tags("tags"),
    tag_action="bedrock:TagResource",
    tag_resource=lambda c: c.arn("bedrock", "custom-model-deployment/*"),
)
for _op, _kind, _key in (
    ("GetModelCustomizationJob", "model-customization-job", "jobIdentifier"),
    ("StopModelCustomizationJob", "model-customization-job", "jobIdentifier"),
    ("GetModelImportJob", "model-import-job", "jobIdentifier"),
    ("GetCustomModel", "custom-model", "modelIdentifier"),
    ("DeleteCustomModel", "custom-model", "modelIdentifier"),
    ("GetImportedModel", "imported-model", "modelIdentifier"),
    ("DeleteImportedModel", "imported-model", "modelIdentifier"),
    ("GetProvisionedModelThroughput", "provisioned-model", "provisionedModelId"),
    ("DeleteProvisionedModelThroughput", "provisioned-model", "provisionedModelId"),
    ("GetCustomModelDeployment", "custom-model-deployment", "customModelDeploymentIdentifier"),
    ("DeleteCustomModelDeployment", "custom-model-deployment", "customModelDeploymentIdentifier"),
):
    _add("bedrock", _op, f"bedrock:{_op}", _bedrock(_kind, _key))
_add(
    "bedrock",
    "GetFoundationModel",
    "bedrock:GetFoundationModel",
    lambda c: [_foundation(c, str(c.get("modelIdentifier", default="*")))],
)
for _op in ("ListFoundationModels", "ListCustomModels", "ListModelCustomizationJobs"):
    _add("bedrock", _op, f"bedrock:{_op}", _star)
_add(
    "bedrock-runtime",
    ["InvokeModel", "Converse"],
    "bedrock:InvokeModel",
    lambda c: [_bedrock_model(c, str(c.get("modelId", default="*")))],
)
_add(
    "bedrock-runtime",
    ["InvokeModelWithResponseStream", "ConverseStream"],
    "bedrock:InvokeModelWithResponseStream",
    lambda c: [_bedrock_model(c, str(c.get("modelId", default="*")))],
)


# ---- Scheduler (TTL), Auto Scaling, CloudWatch, Logs ----------------------------------


def _schedule(call: _Call) -> list[str]:
    group = call.get("GroupName") or "default"
    return [call.arn("scheduler", f"schedule/{group}/{call.get('Name', default='*')}")]


def _schedule_group(call: _Call) -> list[str]:
    return [call.arn("scheduler", f"schedule-group/{call.get('Name', default='*')}")]


for _op in ("CreateSchedule", "UpdateSchedule"):
    _add(
        "scheduler",
        _op,
        f"scheduler:{_op}",
        _schedule,
        passes=(_param("Target", "RoleArn"), "scheduler.amazonaws.com"),
    )
for _op in ("GetSchedule", "DeleteSchedule"):
    _add("scheduler", _op, f"scheduler:{_op}", _schedule)
_add(
    "scheduler",
    "CreateScheduleGroup",
    "scheduler:CreateScheduleGroup",
    _schedule_group,
    tags=_tag_list("Tags"),
    tag_action="scheduler:TagResource",
)
_add("scheduler", "GetScheduleGroup", "scheduler:GetScheduleGroup", _schedule_group)
_add(
    "scheduler",
    "ListSchedules",
    "scheduler:ListSchedules",
    _star,
)


def _scalable_target(call: _Call) -> list[str]:
    return [call.arn("application-autoscaling", "scalable-target/*")]


_add(
    "application-autoscaling",
    "RegisterScalableTarget",
    "application-autoscaling:RegisterScalableTarget",
    _scalable_target,
    tags=_tag_map("Tags"),
    tag_action="application-autoscaling:TagResource",
)
for _op in ("DeregisterScalableTarget", "PutScalingPolicy", "DeleteScalingPolicy"):
    _add("application-autoscaling", _op, f"application-autoscaling:{_op}", _scalable_target)
for _op in ("DescribeScalableTargets", "DescribeScalingPolicies"):
    _add("application-autoscaling", _op, f"application-autoscaling:{_op}", _star)


def _alarms(call: _Call) -> list[str]:
    names = call.get("AlarmNames") or ([call.get("AlarmName")] if call.get("AlarmName") else [])
    return [call.arn("cloudwatch", f"alarm:{n}") for n in names] or ["*"]


_add(
    "cloudwatch",
    "PutMetricAlarm",
    "cloudwatch:PutMetricAlarm",
    _alarms,
    tags=_tag_list("Tags"),
    tag_action="cloudwatch:TagResource",
)
_add("cloudwatch", "DeleteAlarms", "cloudwatch:DeleteAlarms", _alarms)
_add("cloudwatch", "DescribeAlarms", "cloudwatch:DescribeAlarms", _alarms)
for _op in ("GetMetricStatistics", "GetMetricData", "PutMetricData"):
    _add("cloudwatch", _op, f"cloudwatch:{_op}", _star)


def _log_group(call: _Call) -> list[str]:
    return [call.arn("logs", f"log-group:{call.get('logGroupName', default='*')}")]


def _log_stream(call: _Call) -> list[str]:
    group, stream = call.get("logGroupName", default="*"), call.get("logStreamName", default="*")
    return [call.arn("logs", f"log-group:{group}:log-stream:{stream}")]


for _op in ("DescribeLogStreams", "DeleteLogGroup", "FilterLogEvents", "CreateLogGroup"):
    _add("logs", _op, f"logs:{_op}", _log_group)
_add("logs", "GetLogEvents", "logs:GetLogEvents", _log_stream)


# ---- EC2, Service Quotas, tagging, Secrets Manager, SNS, KMS, SQS ---------------------


def _ec2_tags(call: _Call) -> dict[str, str]:
    found = {}
    for spec in call.get("TagSpecifications", default=[]) or []:
        found.update({t["Key"]: t["Value"] for t in spec.get("Tags", [])})
    return found


def _create_tags(call: _Call, action: str, resource: str) -> list[Need]:
    """EC2 tags on create: ec2:CreateTags, its ec2:CreateAction naming the create."""
    tags = _ec2_tags(call)
    if not tags:
        return []
    conditions = {f"aws:RequestTag/{k}": v for k, v in tags.items()}
    conditions["ec2:CreateAction"] = action
    return [Need("ec2:CreateTags", call.arn("ec2", resource), conditions)]


_add(
    "ec2",
    "CreateVpcEndpoint",
    "ec2:CreateVpcEndpoint",
    lambda c: [
        c.arn("ec2", "vpc-endpoint/*"),
        c.arn("ec2", f"vpc/{c.get('VpcId', default='*')}"),
        *[c.arn("ec2", f"route-table/{r}") for r in c.get("RouteTableIds", default=[]) or []],
    ],
    tags=_ec2_tags,
    extra=lambda c: _create_tags(c, "CreateVpcEndpoint", "vpc-endpoint/*"),
    extra_actions=("ec2:CreateTags",),
)
_add(
    "ec2",
    "DeleteVpcEndpoints",
    "ec2:DeleteVpcEndpoints",
    lambda c: (
        [c.arn("ec2", f"vpc-endpoint/{v}") for v in c.get("VpcEndpointIds", default=[])]
        or [c.arn("ec2", "vpc-endpoint/*")]
    ),
)
for _op in (
    "DescribeSubnets",
    "DescribeSecurityGroups",
    "DescribeRouteTables",
    "DescribeVpcEndpoints",
    "DescribeVpcs",
):
    _add("ec2", _op, f"ec2:{_op}", _star)

for _op in ("ListServiceQuotas", "ListAWSDefaultServiceQuotas"):
    _add("service-quotas", _op, f"servicequotas:{_op}", _star)
_add(
    "service-quotas",
    "GetServiceQuota",
    "servicequotas:GetServiceQuota",
    lambda c: [
        c.arn(
            "servicequotas",
            f"{c.get('ServiceCode', default='*')}/{c.get('QuotaCode', default='*')}",
        )
    ],
)
_add("resourcegroupstaggingapi", "GetResources", "tag:GetResources", _star)


def _secret(call: _Call) -> list[str]:
    name = str(call.get("SecretId") or call.get("Name") or "*")
    if name.startswith("arn:"):
        return [name]
    return [call.arn("secretsmanager", f"secret:{name}-??????")]


_add(
    "secretsmanager",
    "CreateSecret",
    "secretsmanager:CreateSecret",
    _secret,
    tags=_tag_list("Tags"),
    tag_action="secretsmanager:TagResource",
    extra=_kms(("KmsKeyId",), actions=("kms:GenerateDataKey", "kms:Decrypt")),
    extra_actions=("kms:GenerateDataKey", "kms:Decrypt"),
)
for _op in ("PutSecretValue", "GetSecretValue", "DeleteSecret", "DescribeSecret"):
    _add("secretsmanager", _op, f"secretsmanager:{_op}", _secret)

_add("sns", "GetTopicAttributes", "sns:GetTopicAttributes", lambda c: [c.get("TopicArn") or "*"])
for _op in ("DescribeKey", "GetKeyPolicy"):
    _add("kms", _op, f"kms:{_op}", lambda c: [_key_arn(c, str(c.get("KeyId", default="*")))])


def _queue(call: _Call) -> list[str]:
    url = call.get("QueueUrl")
    if url:
        parts = urlparse(str(url)).path.strip("/").split("/")
        if len(parts) == 2:
            return [call.arn("sqs", parts[1], account=parts[0])]
    return [call.arn("sqs", str(call.get("QueueName", default="*")))]


_add(
    "sqs",
    "CreateQueue",
    "sqs:CreateQueue",
    _queue,
    tags=_tag_map("tags"),
    tag_action="sqs:TagQueue",
)
for _op in (
    "GetQueueUrl",
    "GetQueueAttributes",
    "SetQueueAttributes",
    "DeleteQueue",
    "ReceiveMessage",
    "DeleteMessage",
    "ListQueueTags",
    "SendMessage",
):
    _add("sqs", _op, f"sqs:{_op}", _queue)
_add("sqs", "TagQueue", "sqs:TagQueue", _queue, tags=_tag_map("Tags"))


# ---- the gateway on AWS: DynamoDB, Lambda, API Gateway --------------------------------


def _table(call: _Call) -> list[str]:
    return [call.arn("dynamodb", f"table/{call.get('TableName', default='*')}")]


_add(
    "dynamodb",
    "CreateTable",
    "dynamodb:CreateTable",
    _table,
    tags=_tag_list("Tags"),
    tag_action="dynamodb:TagResource",
)
for _op in (
    "DescribeTable",
    "DeleteTable",
    "UpdateTimeToLive",
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "Query",
    "Scan",
):
    _add("dynamodb", _op, f"dynamodb:{_op}", _table)


def _function(call: _Call) -> list[str]:
    name = str(call.get("FunctionName", default="*"))
    return [name if name.startswith("arn:") else call.arn("lambda", f"function:{name}")]


def _layers(call: _Call) -> list[Need]:
    return [Need("lambda:GetLayerVersion", arn) for arn in call.get("Layers", default=[]) or []]


_add(
    "lambda",
    "CreateFunction",
    "lambda:CreateFunction",
    _function,
    tags=_tag_map("Tags"),
    tag_action="lambda:TagResource",
    passes=(_param("Role"), "lambda.amazonaws.com"),
    extra=_layers,
    extra_actions=("lambda:GetLayerVersion",),
)
for _op in (
    "GetFunction",
    "GetFunctionConfiguration",
    "DeleteFunction",
    "AddPermission",
    "RemovePermission",
    "UpdateFunctionCode",
    "UpdateFunctionConfiguration",
):
    _add("lambda", _op, f"lambda:{_op}", _function)
_add("lambda", "Invoke", "lambda:InvokeFunction", _function)

_APIGATEWAY_LOADED: list[bool] = []
# What `expose --target aws` and its destroy call (gateway/aws_expose.py).
APIGATEWAY_OPERATIONS = (
    "CreateRestApi",
    "GetRestApi",
    "GetRestApis",
    "DeleteRestApi",
    "CreateAuthorizer",
    "GetResources",
    "CreateResource",
    "PutMethod",
    "PutIntegration",
    "CreateDeployment",
    "GetStage",
    "CreateUsagePlan",
    "GetUsagePlans",
    "UpdateUsagePlan",
    "DeleteUsagePlan",
    "CreateApiKey",
    "GetApiKeys",
    "UpdateApiKey",
    "DeleteApiKey",
    "CreateUsagePlanKey",
    "TagResource",
)


def _load_apigateway() -> None:
    """API Gateway's IAM action is the HTTP method of the call, on the resource its URI
    path names (`arn:<partition>:apigateway:<region>::<path>`): read both from botocore's
    service model for each operation llmship calls."""
    if _APIGATEWAY_LOADED:
        return
    _APIGATEWAY_LOADED.append(True)
    try:
        import botocore.session
    except ImportError:  # no AWS extra installed: nothing calls API Gateway either
        return
    model = botocore.session.get_session().get_service_model("apigateway")
    for name in APIGATEWAY_OPERATIONS:
        operation = model.operation_model(name)
        method = operation.http["method"]
        uri = operation.http["requestUri"].split("?", 1)[0]
        members = operation.input_shape.members if operation.input_shape else {}
        locations = {
            shape.serialization.get("name"): member
            for member, shape in members.items()
            if shape.serialization.get("location") == "uri"
        }
        _add(
            "apigateway",
            name,
            f"apigateway:{method}",
            _apigateway_path(uri, locations),
            tags=_tag_map("tags") if "tags" in members and method in ("POST", "PUT") else None,
            tag_action="apigateway:PUT" if "tags" in members else None,
            tag_resource=lambda c: c.arn("apigateway", "/tags/*", account=""),
        )


def _apigateway_path(uri: str, locations: dict[str, str]) -> Callable[[_Call], list[str]]:
    import re

    def arns(call: _Call) -> list[str]:
        def fill(match: re.Match) -> str:
            member = locations.get(match.group(1).rstrip("+"))
            value = call.get(member) if member else None
            return str(value) if value is not None else "*"

        return [call.arn("apigateway", re.sub(r"\{([^}]+)\}", fill, uri), account="")]

    return arns
