"""The SageMaker request bodies a deploy sends, as pure functions of the config.

CreateModel, CreateEndpointConfig and CreateEndpoint bodies, the container environment,
the autoscaling settings and the blue/green deployment policy: everything here is
computed from its arguments alone (no AWS call), so the plan shows exactly what apply
sends and the tests read each field.
"""

from __future__ import annotations

from typing import Any

from llmship.config.schema import DeployConfig
from llmship.targets.sagemaker.scaling import AutoscalingSettings
from llmship.targets.sagemaker.update import DeploymentPolicy

VARIANT = "AllTraffic"


def container_environment(
    deploy: DeployConfig, max_length: int, gpus: int, tensor_parallel: int
) -> dict[str, str]:
    """What the serving container reads: TGI and LMI settings, then deploy.environment."""
    env: dict[str, str] = {}
    if deploy.container == "tgi":
        env["HF_MODEL_ID"] = deploy.hub_model_id or "/opt/ml/model"
        env["SM_NUM_GPUS"] = str(max(1, tensor_parallel))
        if deploy.hub_model_id is None:
            env["MAX_TOTAL_TOKENS"] = str(max_length)
            env["MAX_INPUT_TOKENS"] = str(max(1, max_length - 1))
    elif deploy.container == "lmi":
        env["HF_MODEL_ID"] = deploy.hub_model_id or "/opt/ml/model"
        env["OPTION_TENSOR_PARALLEL_DEGREE"] = str(max(1, tensor_parallel)) if gpus else "1"
    return {**env, **deploy.environment}


def model_request(
    deploy: DeployConfig,
    *,
    model_name: str,
    role_arn: str,
    tags: list[dict[str, str]],
    environment: dict[str, str],
    image_uri: str | None,
    model_uri: str | None,
    network_isolation: bool = False,
) -> dict[str, Any]:
    """CreateModel: a model package (network-isolated when sold from another account),
    else the image with the model's S3 data (a tar.gz or an uncompressed prefix)."""
    body: dict[str, Any] = {"ModelName": model_name, "ExecutionRoleArn": role_arn, "Tags": tags}
    if deploy.vpc.subnets:
        body["VpcConfig"] = {
            "Subnets": list(deploy.vpc.subnets),
            "SecurityGroupIds": list(deploy.vpc.security_groups),
        }
    if deploy.model_package_arn:
        body["PrimaryContainer"] = {"ModelPackageName": deploy.model_package_arn}
        if environment:
            body["PrimaryContainer"]["Environment"] = environment
        if network_isolation:
            body["EnableNetworkIsolation"] = True
        return body
    container: dict[str, Any] = {"Image": image_uri, "Environment": environment}
    if model_uri is not None:
        if model_uri.endswith(".tar.gz"):
            container["ModelDataUrl"] = model_uri
        else:
            container["ModelDataSource"] = {
                "S3DataSource": {
                    "S3Uri": model_uri if model_uri.endswith("/") else f"{model_uri}/",
                    "S3DataType": "S3Prefix",
                    "CompressionType": "None",
                }
            }
    body["PrimaryContainer"] = container
    return body


def production_variant(deploy: DeployConfig, model_name: str, instance: str | None) -> dict:
    """The one variant: serverless memory and concurrency, or instances and timeouts."""
    variant: dict[str, Any] = {"VariantName": VARIANT, "ModelName": model_name}
    if deploy.kind == "serverless":
        serverless: dict[str, Any] = {
            "MemorySizeInMB": deploy.serverless.memory_mb,
            "MaxConcurrency": deploy.serverless.max_concurrency,
        }
        if deploy.serverless.provisioned_concurrency:
            serverless["ProvisionedConcurrency"] = deploy.serverless.provisioned_concurrency
        variant["ServerlessConfig"] = serverless
        return variant
    variant["InstanceType"] = instance
    variant["InitialInstanceCount"] = deploy.instance_count
    if deploy.volume_size_gb is not None:
        variant["VolumeSizeInGB"] = deploy.volume_size_gb
    if deploy.model_download_timeout_s is not None:
        variant["ModelDataDownloadTimeoutInSeconds"] = deploy.model_download_timeout_s
    if deploy.startup_health_check_timeout_s is not None:
        variant["ContainerStartupHealthCheckTimeoutInSeconds"] = (
            deploy.startup_health_check_timeout_s
        )
    return variant


def async_config(deploy: DeployConfig, base: str) -> dict[str, Any]:
    """AsyncInferenceConfig: output and failure paths (default under `base`), SNS topics,
    and the per-instance concurrency."""
    settings = deploy.async_inference
    output: dict[str, Any] = {
        "S3OutputPath": settings.output_path or f"{base}async-output/",
        "S3FailurePath": settings.failure_path or f"{base}async-failures/",
    }
    topics = {"SuccessTopic": settings.sns_success_topic, "ErrorTopic": settings.sns_error_topic}
    if any(topics.values()):
        output["NotificationConfig"] = {k: v for k, v in topics.items() if v}
    config: dict[str, Any] = {"OutputConfig": output}
    if settings.max_concurrent_invocations:
        config["ClientConfig"] = {
            "MaxConcurrentInvocationsPerInstance": settings.max_concurrent_invocations
        }
    return config


def config_request(
    deploy: DeployConfig,
    *,
    config_name: str,
    model_name: str,
    instance: str | None,
    tags: list[dict[str, str]],
    async_base: str,
) -> dict[str, Any]:
    """CreateEndpointConfig; an async endpoint's responses default to under `async_base`."""
    body: dict[str, Any] = {
        "EndpointConfigName": config_name,
        "ProductionVariants": [production_variant(deploy, model_name, instance)],
        "Tags": tags,
    }
    if deploy.kind == "async":
        body["AsyncInferenceConfig"] = async_config(deploy, async_base)
    return body


def endpoint_request(name: str, config_name: str, tags: list[dict[str, str]]) -> dict[str, Any]:
    """CreateEndpoint."""
    return {"EndpointName": name, "EndpointConfigName": config_name, "Tags": tags}


def autoscaling_settings(deploy: DeployConfig) -> AutoscalingSettings | None:
    """deploy.autoscaling as the scaling module takes it; None when it is off."""
    if not deploy.autoscaling.enabled:
        return None
    a = deploy.autoscaling
    return AutoscalingSettings(
        min_capacity=a.min,
        max_capacity=a.max,
        target_invocations_per_instance=a.target_invocations_per_instance,
        scale_in_cooldown=a.scale_in_cooldown,
        scale_out_cooldown=a.scale_out_cooldown,
    )


def deployment_policy(deploy: DeployConfig) -> DeploymentPolicy:
    """deploy.update as UpdateEndpoint's blue/green policy."""
    u = deploy.update
    return DeploymentPolicy(
        strategy=u.strategy,
        canary_percent=u.canary_percent,
        linear_step_percent=u.linear_step_percent,
        wait_seconds=u.wait_seconds,
        alarms=tuple(u.alarms),
    )
