"""The AWS calls a command would make, with the names and tags the config gives them.

`llmship aws check` (and the plans of `deploy` and `train`) simulate these calls'
permissions before anything is created. Names follow the commands' own conventions
(a deployment's endpoint is its name, each model and config `<deployment>-<UTC stamp>`,
uploads under `llmship/<project>/<deployment>/`), so a policy scoped by name or by the
llmship:project tag is judged as it will be at run time. Calls are (botocore service,
operation, parameters); only the parameters IAM evaluates are filled in.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from llmship.aws.check import Call, RoleNeeds
from llmship.aws.permissions import Need
from llmship.aws.uris import s3_parts
from llmship.state import tag_list, tags

if TYPE_CHECKING:
    from llmship.config.schema import LlmshipConfig

CAPABILITIES = ("deploy", "train", "bedrock", "expose")


def calls_for(
    capability: str,
    config: LlmshipConfig,
    *,
    deployment: str,
    run_id: str = "none",
    spec: Any = None,
) -> list[Call]:
    """What `capability`'s commands call for this config (deploy: the SageMaker target;
    `spec`, a SageMaker plan's resolved requests, makes the creates exact)."""
    builders = {"deploy": _deploy, "train": _train, "bedrock": _bedrock, "expose": _expose}
    if capability not in builders:
        raise ValueError(f"unknown capability {capability!r}; one of {', '.join(CAPABILITIES)}")
    calls = builders[capability](config, deployment, run_id, spec)
    for role in role_needs(capability, config, deployment=deployment):
        if role.granted:  # llmship puts (and later deletes) an inline policy on the role
            name = role.role_arn.rsplit("/", 1)[-1]
            calls += [
                ("iam", "PutRolePolicy", {"RoleName": name}),
                ("iam", "DeleteRolePolicy", {"RoleName": name}),
            ]
    return calls


def role_needs(capability: str, config: LlmshipConfig, *, deployment: str) -> list[RoleNeeds]:
    """What the service roles must allow when the service runs as them: reading the
    artifact and writing logs, and (granted by llmship when the command runs) VPC
    interfaces, SNS topics and data outside the project bucket."""
    aws, deploy = config.aws, config.deploy
    if capability not in ("deploy", "train") or not aws.role_arn:
        return []
    partition, account = aws.role_arn.split(":")[1], aws.role_arn.split(":")[4]
    region = aws.region or "*"
    s3 = f"arn:{partition}:s3:::"
    prefix = _prefix(config, deployment)
    needs: list[Need] = []
    granted: dict[Need, str] = {}
    extra = f"inline policy llmship-{capability}-{deployment}"[:128]
    if aws.bucket:
        needs.append(Need("s3:GetObject", f"{s3}{aws.bucket}/{prefix}model.tar.gz"))
        if capability == "train":
            needs.append(Need("s3:PutObject", f"{s3}{aws.bucket}/{prefix}training/output"))
    group = "Endpoints" if capability == "deploy" else "TrainingJobs"
    logs = f"arn:{partition}:logs:{region}:{account}:log-group:/aws/sagemaker/{group}/*"
    needs += [Need("logs:CreateLogStream", logs), Need("logs:PutLogEvents", f"{logs}:*")]
    needs.append(Need("ecr:GetAuthorizationToken", "*"))
    subnets = deploy.vpc.subnets if capability == "deploy" else config.train.sagemaker.vpc.subnets
    if subnets:
        from llmship.aws.role_grants import SAGEMAKER_VPC_ACTIONS

        for action in SAGEMAKER_VPC_ACTIONS:
            need = Need(action, f"arn:{partition}:ec2:{region}:{account}:network-interface/*")
            needs.append(need)
            granted[need] = extra
    outside = []
    if capability == "deploy" and deploy.model_data and not _in_bucket(deploy.model_data, aws):
        outside.append(("s3:GetObject", deploy.model_data))
    if capability == "deploy" and deploy.kind == "async":
        settings = deploy.async_inference
        for path in (settings.output_path, settings.failure_path):
            if path and not _in_bucket(path, aws):
                outside.append(("s3:PutObject", path.rstrip("/") + "/*"))
        for topic in (settings.sns_success_topic, settings.sns_error_topic):
            if topic:
                need = Need("sns:Publish", topic)
                needs.append(need)
                granted[need] = extra
    checkpoint = config.train.sagemaker.checkpoint_s3_uri
    if capability == "train" and checkpoint and not _in_bucket(checkpoint, aws):
        outside.append(("s3:PutObject", checkpoint.rstrip("/") + "/*"))
    for action, uri in outside:
        need = Need(action, f"{s3}{uri.removeprefix('s3://')}")
        needs.append(need)
        granted[need] = extra
    return [RoleNeeds("SageMaker execution role", aws.role_arn, tuple(needs), granted)]


# ---- per capability ---------------------------------------------------------------------


def _deploy(config: LlmshipConfig, deployment: str, run_id: str, spec: Any) -> list[Call]:
    from llmship.sagemaker.names import endpoint_log_group
    from llmship.targets.sagemaker.scaling import alarm_name
    from llmship.targets.sagemaker.ttl import GROUP, queue_name, role_name, schedule_name

    aws, deploy = config.aws, config.deploy
    tags = _tags(config, deployment, run_id)
    version = _version(deployment)
    model = spec.model_request if spec is not None else _model_request(config, version, tags)
    endpoint_config = (
        spec.config_request if spec is not None else {"EndpointConfigName": version, "Tags": tags}
    )
    config_name = endpoint_config["EndpointConfigName"]
    calls: list[Call] = [("sagemaker", "DescribeEndpoint", {"EndpointName": deployment})]
    if aws.bucket and not (deploy.model_data or deploy.model_package_arn or deploy.hub_model_id):
        key = f"{_prefix(config, deployment)}{run_id}/model.tar.gz"
        calls += [
            ("s3", "HeadBucket", {"Bucket": aws.bucket}),
            ("s3", "PutObject", {"Bucket": aws.bucket, "Key": key}),
            ("s3", "CreateMultipartUpload", {"Bucket": aws.bucket, "Key": key}),
        ]
    calls += [
        ("sagemaker", "CreateModel", model),
        ("sagemaker", "CreateEndpointConfig", endpoint_config),
        (
            "sagemaker",
            "CreateEndpoint",
            {"EndpointName": deployment, "EndpointConfigName": config_name, "Tags": tags},
        ),
        (
            "sagemaker",
            "UpdateEndpoint",
            {"EndpointName": deployment, "EndpointConfigName": config_name},
        ),
        ("logs", "DescribeLogStreams", {"logGroupName": endpoint_log_group(deployment)}),
        ("sagemaker-runtime", "InvokeEndpoint", {"EndpointName": deployment}),
    ]
    if deploy.ttl:
        ttl_role = f"arn:{_partition(aws)}:iam::{_account(aws)}:role/{role_name(deployment)}"
        calls += [
            ("iam", "CreateRole", {"RoleName": role_name(deployment), "Tags": tags}),
            ("iam", "PutRolePolicy", {"RoleName": role_name(deployment)}),
            ("sqs", "CreateQueue", {"QueueName": queue_name(deployment), "tags": _tag_map(tags)}),
            ("scheduler", "CreateScheduleGroup", {"Name": GROUP, "Tags": tags}),
            (
                "scheduler",
                "CreateSchedule",
                {
                    "Name": schedule_name(deployment),
                    "GroupName": GROUP,
                    "Target": {"RoleArn": ttl_role},
                },
            ),
        ]
    if deploy.autoscaling.enabled:
        resource = f"endpoint/{deployment}/variant/AllTraffic"
        calls += [
            (
                "application-autoscaling",
                "RegisterScalableTarget",
                {"ResourceId": resource, "Tags": _tag_map(tags)},
            ),
            ("application-autoscaling", "PutScalingPolicy", {"ResourceId": resource}),
        ]
        if deploy.kind == "async":
            calls.append(
                (
                    "cloudwatch",
                    "PutMetricAlarm",
                    {"AlarmName": alarm_name(deployment), "Tags": tags},
                )
            )
    calls += _teardown(config, deployment, version, config_name)
    return calls


def _teardown(config, deployment: str, version: str, config_name: str) -> list[Call]:
    from llmship.sagemaker.names import endpoint_log_group

    calls: list[Call] = [
        ("sagemaker", "DeleteEndpoint", {"EndpointName": deployment}),
        ("sagemaker", "DeleteEndpointConfig", {"EndpointConfigName": config_name}),
        ("sagemaker", "DeleteModel", {"ModelName": version}),
        ("logs", "DeleteLogGroup", {"logGroupName": endpoint_log_group(deployment)}),
    ]
    if config.aws.bucket:
        key = f"{_prefix(config, deployment)}model.tar.gz"
        calls += [
            ("s3", "ListObjectsV2", {"Bucket": config.aws.bucket}),
            (
                "s3",
                "DeleteObjects",
                {"Bucket": config.aws.bucket, "Delete": {"Objects": [{"Key": key}]}},
            ),
            ("s3", "ListMultipartUploads", {"Bucket": config.aws.bucket}),
        ]
    return calls


def _train(config: LlmshipConfig, deployment: str, run_id: str, spec: Any) -> list[Call]:
    if config.train.target == "bedrock":
        return _bedrock(config, deployment, run_id, spec)
    aws = config.aws
    tags = _tags(config, deployment, run_id)
    job = _version(deployment)
    calls: list[Call] = []
    if aws.bucket:
        key = f"{_prefix(config, deployment)}training/{job}/data/train/train.jsonl"
        calls += [
            ("s3", "HeadBucket", {"Bucket": aws.bucket}),
            ("s3", "PutObject", {"Bucket": aws.bucket, "Key": key}),
        ]
    calls += [
        (
            "sagemaker",
            "CreateTrainingJob",
            {"TrainingJobName": job, "RoleArn": aws.role_arn or "", "Tags": tags},
        ),
        ("sagemaker", "DescribeTrainingJob", {"TrainingJobName": job}),
        ("sagemaker", "StopTrainingJob", {"TrainingJobName": job}),
        ("logs", "DescribeLogStreams", {"logGroupName": "/aws/sagemaker/TrainingJobs"}),
    ]
    if config.model is not None and config.model.hf_token is not None:
        from llmship.aws.secrets import secret_name

        secret = secret_name(config.project.name, deployment, "HF_TOKEN")
        calls += [
            ("secretsmanager", "CreateSecret", {"Name": secret, "Tags": tags}),
            ("secretsmanager", "DeleteSecret", {"SecretId": secret}),
        ]
    return calls


def _bedrock(config: LlmshipConfig, deployment: str, run_id: str, spec: Any) -> list[Call]:
    from llmship.bedrock.role import role_name

    aws, bedrock = config.aws, config.bedrock
    role = role_name(config.project.name)
    role_arn = bedrock.role_arn or f"arn:{_partition(aws)}:iam::{_account(aws)}:role/{role}"
    tags = [{"key": t["Key"], "value": t["Value"]} for t in _tags(config, deployment, run_id)]
    calls: list[Call] = [
        ("iam", "GetRole", {"RoleName": role_arn.rsplit("/", 1)[-1]}),
        ("iam", "CreateRole", {"RoleName": role, "Tags": _tags(config, deployment, run_id)}),
        ("iam", "PutRolePolicy", {"RoleName": role}),
        (
            "bedrock",
            "CreateModelCustomizationJob",
            {
                "jobName": deployment,
                "customModelName": deployment,
                "roleArn": role_arn,
                "baseModelIdentifier": bedrock.base_model_id,
                "jobTags": tags,
                "customModelTags": tags,
            },
        ),
        ("bedrock", "GetModelCustomizationJob", {"jobIdentifier": deployment}),
        ("bedrock", "CreateCustomModelDeployment", {"tags": tags}),
        ("bedrock-runtime", "InvokeModel", {}),
    ]
    if aws.bucket:
        key = f"{_prefix(config, deployment)}bedrock/train.jsonl"
        calls.append(("s3", "PutObject", {"Bucket": aws.bucket, "Key": key}))
    return calls


def _expose(config: LlmshipConfig, deployment: str, run_id: str, spec: Any) -> list[Call]:
    from llmship.gateway.aws_expose import function_name, role_name, table_name

    tags = _tags(config, deployment, run_id)
    function, role = function_name(deployment), role_name(deployment)
    return [
        ("iam", "CreateRole", {"RoleName": role, "Tags": tags}),
        ("iam", "PutRolePolicy", {"RoleName": role}),
        ("dynamodb", "CreateTable", {"TableName": table_name(deployment), "Tags": tags}),
        (
            "lambda",
            "CreateFunction",
            {
                "FunctionName": function,
                "Role": f"arn:{_partition(config.aws)}:iam::{_account(config.aws)}:role/{role}",
                "Tags": _tag_map(tags),
            },
        ),
        ("lambda", "DeleteFunction", {"FunctionName": function}),
        ("iam", "DeleteRole", {"RoleName": role}),
        ("dynamodb", "DeleteTable", {"TableName": table_name(deployment)}),
    ]


# ---- helpers ----------------------------------------------------------------------------


def _tags(config: LlmshipConfig, deployment: str, run_id: str) -> list[dict[str, str]]:
    """The deployment's tags as the create calls send them, sorted by key."""
    return tag_list(dict(sorted(tags(config.project.name, deployment, run_id).items())))


def _tag_map(tags: list[dict[str, str]]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags}


def _version(deployment: str) -> str:
    return f"{deployment}-{datetime.now(UTC):%Y%m%d%H%M%S}"


def _prefix(config: LlmshipConfig, deployment: str) -> str:
    from llmship.sagemaker.names import artifact_prefix

    return artifact_prefix(config.project.name, deployment)


def _model_request(config: LlmshipConfig, name: str, tags: list) -> dict[str, Any]:
    request: dict[str, Any] = {"ModelName": name, "Tags": tags}
    if config.aws.role_arn:
        request["ExecutionRoleArn"] = config.aws.role_arn
    return request


def _in_bucket(uri: str, aws) -> bool:
    return bool(aws.bucket) and s3_parts(uri)[0] == aws.bucket


def _partition(aws) -> str:
    return aws.role_arn.split(":")[1] if aws.role_arn else "aws"


def _account(aws) -> str:
    return aws.role_arn.split(":")[4] if aws.role_arn else "*"
