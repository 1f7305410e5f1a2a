"""The IAM policies a person needs to run llmship's AWS commands, one per capability.

    deploy   deploy / invoke / status / destroy of SageMaker endpoints (plans, quotas,
             VPC checks, logs), and `aws bootstrap` of the execution role
    operate  what deployments' options add and destroy removes: TTL schedules, their
             roles and dead-letter queues, autoscaling, alarms, S3 gateway endpoints
             (one policy with deploy would pass IAM's size limit: attach both)
    train    `train --target sagemaker` and destroying what a training job left
    bedrock  Bedrock customization, import, hosting and invocation, and its service role
    expose   `expose ROUTE --target aws`: DynamoDB, IAM, Lambda and API Gateway

Each is a customer managed policy (IAM allows 6,144 characters without whitespace;
a test keeps each under it), named `llmship-<project>-<capability>`; attach the ones a
person's work needs. Every capability also lets its holder run `llmship aws check`
(iam:SimulatePrincipalPolicy and iam:GetRole on their own user or role, and on the
execution role the check also simulates; see `_common`).

Scoping. A deployment may be named anything (`deploy.name`), so names alone cannot
hold a statement to the project. Renaming every deployment `<project>-*` would refuse
names users already run with; scoping by tag alone fails when a resource is gone (IAM
cannot read the tags of a missing resource and answers AccessDenied where SageMaker
would say "not found", which a rerun of `destroy` relies on). So each SageMaker
statement comes twice: on the project's names (`<project>-*`, lower case as SageMaker
writes them in ARNs), and on any name when the resource carries the tag
llmship:project=<project> (aws:ResourceTag) or the create request does
(aws:RequestTag; llmship tags every create). Bedrock ARNs hold ids, not names: its
creates and deletes are held by the tag alone. What llmship names itself from an
endpoint (TTL schedules, roles and queues, alarms) is held by llmship's own prefixes.

Holding `train` or `deploy` lets a person put inline policies on the execution role
and pass it to SageMaker (secrets and outside data are granted that way), so they can
act as that role: give these capabilities to people trusted with it.

Every action here comes from llmship.aws.permissions, the map of the calls llmship
makes; the test suite judges each call it records against these documents.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from llmship.aws.uris import s3_parts
from llmship.state import TAG_PREFIX

VERSION = "2012-10-17"
CAPABILITIES = ("deploy", "operate", "train", "bedrock", "expose")
# What each command group needs: a deployer attaches deploy and operate (destroy
# cancels TTLs and autoscaling of any deployment).
NEEDED_BY = {
    "deploy": ("deploy", "operate"),
    "train": ("train",),
    "bedrock": ("bedrock",),
    "expose": ("expose",),
    "all": CAPABILITIES,
}
TAG = f"{TAG_PREFIX}project"  # what every statement scoped to the project conditions on
# What the gateway does with the items of its key and counter tables.
DYNAMO_ITEMS = (
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:Query",
    "dynamodb:Scan",
)
# What llmship does to a service role it writes and keeps up to date (bootstrap, plans).
ROLE_UPKEEP = (
    "iam:GetRole",
    "iam:ListRoleTags",
    "iam:CreateRole",
    "iam:TagRole",
    "iam:UpdateAssumeRolePolicy",
    "iam:ListRolePolicies",
    "iam:GetRolePolicy",
    "iam:PutRolePolicy",
    "iam:DeleteRolePolicy",
)


def policy_name(capability: str, project: str | None = None) -> str:
    """`llmship-<project>-<capability>`: the managed policy's name."""
    return f"llmship-{project}-{capability}" if project else f"llmship-{capability}"


def outside_data(settings, partition: str = "aws") -> list[str]:
    """S3 ARNs of the data the config names outside aws.bucket (objects or prefixes,
    which plans inspect before granting the roles access)."""
    bucket = settings.aws.bucket
    uris = [
        settings.deploy.model_data,
        settings.deploy.async_inference.output_path,
        settings.deploy.async_inference.failure_path,
        settings.bedrock.import_model_data,
    ]
    found = []
    for uri in uris:
        if not uri or not uri.startswith("s3://"):
            continue
        other, key = s3_parts(uri)
        if other != bucket:
            found.append(f"arn:{partition}:s3:::{other}/{key}*")
    return sorted(set(found))


def capability_policy(
    capability: str,
    *,
    partition: str,
    account: str,
    region: str,
    project: str,
    bucket: str,
    role_arn: str,
    bedrock_role_arn: str | None = None,
    caller_arn: str | None = None,
    outside_data: Iterable[str] = (),
) -> dict[str, Any]:
    """The identity policy for one capability of `project`.

    `role_arn` is the SageMaker execution role; `bedrock_role_arn` the Bedrock service
    role (default `llmship-<project>-bedrock`); `caller_arn` the user or role that will
    run `aws check` (default: see `_common`); `outside_data` the S3 ARNs (objects or
    `prefix*`) of data outside the bucket that the config names, which plans inspect.
    """
    if capability not in CAPABILITIES:
        raise ValueError(f"capability {capability!r}: one of {', '.join(CAPABILITIES)}")
    a = _Arns(partition, account, region, project, bucket)
    builder = {
        "deploy": _deploy,
        "operate": _operate,
        "train": _train,
        "bedrock": _bedrock,
        "expose": _expose,
    }
    statements = builder[capability](a, role_arn, bedrock_role_arn or a.bedrock_role)
    simulated_roles = [role_arn] if capability in ("deploy", "train") else []
    statements += _common(a, caller_arn, simulated_roles, list(outside_data))
    return {"Version": VERSION, "Statement": statements}


def statement_actions(capability: str) -> list[tuple[str, list[str]]]:
    """(Sid, actions) of each statement of a capability (example values: the actions
    do not depend on them)."""
    document = capability_policy(
        capability,
        partition="aws",
        account="123456789012",
        region="us-east-1",
        project="p",
        bucket="b",
        role_arn="arn:aws:iam::123456789012:role/r",
    )
    return [(s["Sid"], _listed(s["Action"])) for s in document["Statement"]]


class _Arns:
    def __init__(self, partition: str, account: str, region: str, project: str, bucket: str):
        self.partition, self.account, self.region = partition, account, region
        self.project, self.bucket = project, bucket
        self.names = f"{project.lower()}-*"

    def __call__(self, service: str, resource: str, region: str | None = None) -> str:
        region = self.region if region is None else region
        return f"arn:{self.partition}:{service}:{region}:{self.account}:{resource}"

    def iam(self, resource: str) -> str:
        return f"arn:{self.partition}:iam::{self.account}:{resource}"

    @property
    def s3(self) -> str:
        return f"arn:{self.partition}:s3:::{self.bucket}"

    @property
    def bedrock_role(self) -> str:
        return self.iam(f"role/llmship-{self.project}-bedrock")


def _allow(sid: str, actions: list[str], resources: str | list[str], **condition) -> dict:
    statement: dict[str, Any] = {
        "Sid": sid,
        "Effect": "Allow",
        "Action": actions,
        "Resource": resources,
    }
    if condition:
        statement["Condition"] = condition
    return statement


def _listed(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _pass(sid: str, roles: str | list[str], service: str) -> dict:
    return _allow(
        sid,
        ["iam:PassRole"],
        roles,
        StringEquals={"iam:PassedToService": f"{service}.amazonaws.com"},
    )


def _request_tag(project: str) -> dict:
    return {"StringEquals": {f"aws:RequestTag/{TAG}": project}}


def _resource_tag(project: str) -> dict:
    return {"StringEquals": {f"aws:ResourceTag/{TAG}": project}}


def _bucket(a: _Arns) -> list[dict]:
    bucket_actions = [
        "s3:ListBucket",
        "s3:GetBucketLocation",
        "s3:ListBucketMultipartUploads",
        "s3:GetEncryptionConfiguration",
        "s3:CreateBucket",
        "s3:PutBucketPublicAccessBlock",
        "s3:PutEncryptionConfiguration",
        "s3:PutBucketTagging",
    ]
    return [
        _allow("ProjectBucket", bucket_actions, a.s3),
        _allow(
            "ProjectObjects",
            [
                "s3:GetObject",
                "s3:PutObject",
                "s3:DeleteObject",
                "s3:AbortMultipartUpload",
                "s3:ListMultipartUploadParts",
            ],
            f"{a.s3}/*",
        ),
    ]


def _sagemaker(a: _Arns, kinds: tuple[str, ...], creates: list[str], own: list[str]) -> list:
    """SageMaker resources of `kinds`: created and used when tagged with the project;
    deleted by the project's names too, as IAM cannot read a missing resource's tags.
    The actions name the resource types, so the ARNs need not."""
    words = ["".join(p.title() for p in kind.split("-")) for kind in kinds]
    deletes = [f"sagemaker:{'Stop' if w.endswith('Job') else 'Delete'}{w}" for w in words]
    reads = [f"sagemaker:Describe{w}" for w in words]
    every = a("sagemaker", "*")
    return [
        _allow(
            "ProjectSageMakerResources",
            deletes,
            [a("sagemaker", f"{kind}/{a.names}") for kind in kinds],
        ),
        _allow("TaggedSageMakerCreates", creates, every, **_request_tag(a.project)),
        _allow(
            "TagOnCreate",  # never an existing resource: that would make it the project's
            ["sagemaker:AddTags"],
            every,
            **_request_tag(a.project),
            StringLike={"sagemaker:TaggingAction": "Create*"},
        ),
        _allow("TaggedSageMakerResources", [*deletes, *own], every, **_resource_tag(a.project)),
        _allow("SageMakerReads", [*reads, "sagemaker:ListTags"], every),
    ]


def _deploy(a: _Arns, role_arn: str, bedrock_role: str) -> list[dict]:
    logs = a("logs", "log-group:/aws/sagemaker/Endpoints/")
    return [
        _pass("PassExecutionRole", role_arn, "sagemaker"),
        _allow(
            "ExecutionRole",  # aws bootstrap writes it; a plan grants it outside data
            list(ROLE_UPKEEP),
            role_arn,
        ),
        _allow(
            "InspectRoles",  # whose a role is and what it holds (bootstrap, discovery)
            ["iam:GetRole", "iam:ListRoleTags", "iam:ListRolePolicies"],
            a.iam("role/*"),
        ),
        *_sagemaker(
            a,
            ("endpoint", "endpoint-config", "model"),
            ["sagemaker:CreateModel", "sagemaker:CreateEndpointConfig", "sagemaker:CreateEndpoint"],
            [
                "sagemaker:UpdateEndpoint",
                "sagemaker:UpdateEndpointWeightsAndCapacities",
                "sagemaker:InvokeEndpoint*",  # and Async (streaming is InvokeEndpoint)
            ],
        ),
        _allow(
            "Listings",  # status --discover, plans and waits: no resource-level scope
            [
                "sagemaker:ListEndpoints",
                "sagemaker:ListEndpointConfigs",
                "sagemaker:ListModels",
                "tag:GetResources",
                "scheduler:ListSchedules",
                "application-autoscaling:DescribeScalableTargets",
                "application-autoscaling:DescribeScalingPolicies",
                "cloudwatch:GetMetricStatistics",
                "cloudwatch:GetMetricData",
                "servicequotas:ListServiceQuotas",
                "servicequotas:ListAWSDefaultServiceQuotas",
                "servicequotas:GetServiceQuota",
                "ec2:DescribeSubnets",
                "ec2:DescribeSecurityGroups",
                "ec2:DescribeRouteTables",
                "ec2:DescribeVpcEndpoints",
                "ec2:DescribeVpcs",
            ],
            "*",
        ),
        _allow(
            "ModelPackages",  # any account's: Marketplace packages are sold from others
            ["sagemaker:DescribeModelPackage"],
            f"arn:{a.partition}:sagemaker:{a.region}:*:model-package/*",
        ),
        *_bucket(a),
        _allow(
            "EndpointLogs",
            ["logs:DescribeLogStreams", "logs:GetLogEvents", "logs:FilterLogEvents"],
            f"{logs}*",  # * spans the :log-stream: part too
        ),
        _allow(
            "EndpointLogGroups",  # made by SageMaker, untagged: llmship's prefix is the scope
            ["logs:DeleteLogGroup"],
            f"{logs}*",
        ),
    ]


def _operate(a: _Arns, role_arn: str, bedrock_role: str) -> list[dict]:
    """What a deployment's options add, and destroy undoes: TTL, autoscaling, alarms,
    an S3 gateway endpoint (its own policy: `deploy` alone is near IAM's size limit)."""
    alarms = a("cloudwatch", "alarm:")
    ttl_roles = a.iam("role/llmship-ttl-*")
    scaling_role = a.iam("role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/*")
    return [
        _allow(
            "Autoscaling",  # scalable-target ARNs hold an id, not the endpoint's name
            [
                "application-autoscaling:RegisterScalableTarget",
                "application-autoscaling:DeregisterScalableTarget",
                "application-autoscaling:PutScalingPolicy",
                "application-autoscaling:DeleteScalingPolicy",
                "application-autoscaling:TagResource",
            ],
            a("application-autoscaling", "scalable-target/*"),
        ),
        _allow(
            "AutoscalingServiceRole",
            ["iam:CreateServiceLinkedRole"],
            scaling_role,
            StringLike={"iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"},
        ),
        _allow(
            "Alarms",  # llmship-<endpoint>-*: target tracking's own are AWS's to manage
            [
                "cloudwatch:PutMetricAlarm",
                "cloudwatch:DeleteAlarms",
                "cloudwatch:DescribeAlarms",
                "cloudwatch:TagResource",
            ],
            f"{alarms}llmship-*",
        ),
        _allow(
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
            [a("scheduler", "schedule/llmship/delete-*"), a("scheduler", "schedule-group/llmship")],
        ),
        _allow(
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
        _pass("PassTtlRoles", ttl_roles, "scheduler"),
        _allow(
            "TtlDeadLetterQueues",
            [
                "sqs:CreateQueue",
                "sqs:TagQueue",
                "sqs:GetQueueUrl",
                "sqs:GetQueueAttributes",
                "sqs:SetQueueAttributes",
                "sqs:ReceiveMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:DeleteQueue",
            ],
            a("sqs", "llmship-ttl-dlq-*"),
        ),
        _allow(
            "ProjectS3GatewayEndpoint",
            ["ec2:CreateVpcEndpoint", "ec2:CreateTags"],
            a("ec2", "*"),
            **_request_tag(a.project),
        ),
        _allow(
            "S3GatewayEndpointTargets",  # the VPC and route tables it is created in
            ["ec2:CreateVpcEndpoint"],
            [a("ec2", "vpc/*"), a("ec2", "route-table/*")],
        ),
        _allow(
            "DeleteProjectS3GatewayEndpoint",
            ["ec2:DeleteVpcEndpoints"],
            a("ec2", "vpc-endpoint/*"),
            **_resource_tag(a.project),
        ),
    ]


def _train(a: _Arns, role_arn: str, bedrock_role: str) -> list[dict]:
    logs = a("logs", "log-group:/aws/sagemaker/TrainingJobs")
    return [
        _pass("PassExecutionRole", role_arn, "sagemaker"),
        _allow(
            "ExecutionRoleGrants",  # read of a job's secret, outside data; destroy removes them
            [
                "iam:GetRole",
                "iam:ListRolePolicies",
                "iam:GetRolePolicy",
                "iam:PutRolePolicy",
                "iam:DeleteRolePolicy",
            ],
            role_arn,
        ),
        *_sagemaker(
            a,
            ("training-job",),
            ["sagemaker:CreateTrainingJob"],
            [],
        ),
        _allow(
            "Listings",
            [
                "sagemaker:ListTrainingJobs",
                "tag:GetResources",
                "servicequotas:ListServiceQuotas",
                "servicequotas:ListAWSDefaultServiceQuotas",
                "ec2:DescribeSubnets",
                "ec2:DescribeSecurityGroups",
                "ec2:DescribeRouteTables",
                "ec2:DescribeVpcEndpoints",
            ],
            "*",
        ),
        *_bucket(a),
        _allow(
            "TrainingLogs",
            ["logs:DescribeLogStreams", "logs:GetLogEvents"],
            [logs, f"{logs}:*"],
        ),
        _allow(
            "ProjectSecrets",  # llmship/<project>/<deployment>/<name>
            [
                "secretsmanager:CreateSecret",
                "secretsmanager:PutSecretValue",
                "secretsmanager:GetSecretValue",
                "secretsmanager:DeleteSecret",
                "secretsmanager:TagResource",
            ],
            a("secretsmanager", f"secret:llmship/{a.project}/*"),
        ),
    ]


def _bedrock(a: _Arns, role_arn: str, bedrock_role: str) -> list[dict]:
    mine = a("bedrock", "*")
    foundation = a("bedrock", "foundation-model/*").replace(f":{a.account}:", "::")
    return [
        _pass("PassBedrockRole", bedrock_role, "bedrock"),
        _allow(
            "BedrockRole",
            [*ROLE_UPKEEP, "iam:DeleteRole"],
            bedrock_role,
        ),
        _allow(
            "TaggedBedrockCreates",  # llmship tags every create with the project
            [
                "bedrock:CreateModelCustomizationJob",
                "bedrock:CreateModelImportJob",
                "bedrock:CreateProvisionedModelThroughput",
                "bedrock:CreateCustomModelDeployment",
                "bedrock:TagResource",
            ],
            [mine, foundation],
            **_request_tag(a.project),
        ),
        _allow(
            "TaggedBedrockResources",  # ARNs hold ids: the tag is the scope
            [
                "bedrock:StopModelCustomizationJob",
                "bedrock:DeleteCustomModel",
                "bedrock:DeleteImportedModel",
                "bedrock:DeleteProvisionedModelThroughput",
                "bedrock:DeleteCustomModelDeployment",
            ],
            mine,
            **_resource_tag(a.project),
        ),
        _allow(
            "BedrockReads",
            [
                "bedrock:GetModelCustomizationJob",
                "bedrock:GetModelImportJob",
                "bedrock:GetCustomModel",
                "bedrock:GetImportedModel",
                "bedrock:GetProvisionedModelThroughput",
                "bedrock:GetCustomModelDeployment",
                "bedrock:GetFoundationModel",
            ],
            [mine, foundation],
        ),
        _allow(
            "BedrockInvoke",  # foundation models, profiles and the project's own models
            ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
            [mine, foundation, f"arn:{a.partition}:bedrock:*:*:foundation-model/*"],
        ),
        _allow(
            "Listings",
            ["bedrock:ListFoundationModels", "tag:GetResources", "ec2:DescribeSubnets"],
            "*",
        ),
        *_bucket(a),
    ]


def _expose(a: _Arns, role_arn: str, bedrock_role: str) -> list[dict]:
    names = f"{a.project}-gw-*"  # gateway.aws_expose.deployment_name
    roles = a.iam(f"role/llmship-{names}")
    apigateway = f"arn:{a.partition}:apigateway:{a.region}::"
    return [
        _allow(
            "GatewayTables",
            [
                "dynamodb:CreateTable",
                "dynamodb:DescribeTable",
                "dynamodb:UpdateTimeToLive",
                "dynamodb:TagResource",
                "dynamodb:DeleteTable",
                *DYNAMO_ITEMS,
            ],
            a("dynamodb", f"table/{names}"),
        ),
        _allow(
            "TaggedGatewayTables",  # the keys and counters of a table the project tagged
            list(DYNAMO_ITEMS),
            a("dynamodb", "table/*"),
            **_resource_tag(a.project),
        ),
        _allow(
            "GatewayRoles",
            [
                "iam:CreateRole",
                "iam:TagRole",
                "iam:GetRole",
                "iam:PutRolePolicy",
                "iam:ListRolePolicies",
                "iam:DeleteRolePolicy",
                "iam:DeleteRole",
            ],
            roles,
        ),
        _pass("PassGatewayRoles", roles, "lambda"),
        _allow(
            "GatewayFunctions",
            [
                "lambda:CreateFunction",
                "lambda:TagResource",
                "lambda:GetFunction",
                "lambda:GetFunctionConfiguration",
                "lambda:AddPermission",
                "lambda:DeleteFunction",
            ],
            a("lambda", f"function:{names}"),
        ),
        _allow(
            "WebAdapterLayer",  # gateway.aws.web_adapter_layer may name another
            ["lambda:GetLayerVersion"],
            f"arn:{a.partition}:lambda:{a.region}:*:layer:*",
        ),
        _allow(
            "GatewayApis",  # API Gateway authorizes the HTTP method on the path
            ["apigateway:GET", "apigateway:POST", "apigateway:PUT", "apigateway:PATCH",
             "apigateway:DELETE"],
            [
                f"{apigateway}/restapis",
                f"{apigateway}/restapis/*",
                f"{apigateway}/usageplans",
                f"{apigateway}/usageplans/*",
                f"{apigateway}/apikeys",
                f"{apigateway}/apikeys/*",
                f"{apigateway}/tags/*",
            ],
        ),
    ]  # fmt: skip


def _common(
    a: _Arns, caller_arn: str | None, simulated_roles: list[str], outside_data: list[str]
) -> list[dict]:
    """`aws check` on oneself, and the read-only looks a plan takes at what the config
    names outside the project (their owners' policies must also allow the roles).

    The simulator tells what any principal it may simulate is allowed to do, so the
    holder may simulate only itself and the service roles the check looks at
    (`simulated_roles`: the execution role for deploy and train). Itself is
    `caller_arn` when given (`--caller-arn`: the role a person assumes); otherwise their
    own IAM user (${aws:username}; users under a path need --caller-arn), the
    project's roles (llmship-<project>-*) and IAM Identity Center's roles, whose ARNs
    no policy variable names (/aws-reserved/sso.amazonaws.com/...): any other role
    that is to run the check must be named with --caller-arn.
    """
    callers = (
        [caller_arn]
        if caller_arn
        else [
            a.iam("user/${aws:username}"),
            a.iam(f"role/llmship-{a.project}-*"),
            a.iam("role/aws-reserved/sso.amazonaws.com/*"),
        ]
    )
    simulated = list(dict.fromkeys([*callers, *simulated_roles]))
    statements = [
        _allow("CheckOwnPermissions", ["iam:SimulatePrincipalPolicy", "iam:GetRole"], simulated),
        _allow(
            "InspectNotificationsAndKeys",  # metadata only: topic attributes, key state
            ["sns:GetTopicAttributes", "kms:DescribeKey"],
            [f"arn:{a.partition}:sns:*:*:*", f"arn:{a.partition}:kms:*:*:key/*"],
        ),
    ]
    if outside_data:
        buckets = sorted({arn.split("/", 1)[0] for arn in outside_data})
        statements += [
            _allow(
                "InspectOutsideBuckets",
                ["s3:ListBucket", "s3:GetEncryptionConfiguration"],
                buckets,
            ),
            _allow("InspectOutsideData", ["s3:GetObject"], sorted(outside_data)),
        ]
    return statements
