"""Planning a SageMaker deploy: read-only checks, then the resolved spec apply creates from.

`plan` is a list of steps, each a function that reads what it needs, adds what it found
(problems, warnings, actions, in the order the user reads them) and returns its result:
the names and an update's limits, the instance, where the model comes from, the bucket,
the network, the quota and price, then the request bodies and the role's grant. Every
check that can fail without creating anything runs here, before apply's first create.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmship.aws.errors import aws_call, ignore_not_found
from llmship.config.schema import AwsConfig, DeployConfig
from llmship.errors import DeployError
from llmship.sagemaker import limits as kind_limits
from llmship.sagemaker.cost import Cost, instance_cost, serverless_cost
from llmship.sagemaker.limits import KindLimits
from llmship.sagemaker.names import artifact_prefix, new_version
from llmship.state import Kind, tag_list
from llmship.target import Action, DeployRequest, Plan
from llmship.targets.sagemaker import quotas, requests
from llmship.targets.sagemaker.context import SageMakerContext
from llmship.targets.sagemaker.kind_change import check_kind_change, live_kind
from llmship.targets.sagemaker.network import NetworkFinding, inspect_subnets
from llmship.targets.sagemaker.spec import ModelFacts, SageMakerSpec, model_facts
from llmship.targets.sagemaker.status import describe_endpoint
from llmship.targets.sagemaker.ttl import parse_ttl, queue_name
from llmship.targets.sagemaker.update import deployment_config

MB = 1024 * 1024
# Python, CUDA context and activations beside the weights on a serverless worker.
SERVERLESS_OVERHEAD_MB = 1024


@dataclass
class Findings:
    """What the steps found so far, in the order the plan shows it."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)


@dataclass(frozen=True)
class Names:
    """The endpoint (the deployment's name), the new model and config version, and the
    live endpoint when this deploy updates one."""

    endpoint: str
    version: str
    existing: dict[str, Any] | None

    @property
    def updating(self) -> bool:
        return self.existing is not None


@dataclass(frozen=True)
class Sizing:
    """The instance (None: serverless), why it was chosen, and what it implies."""

    instance: str | None
    reason: str
    gpus: int
    tensor_parallel: int
    environment: dict[str, str]
    limits: KindLimits


@dataclass(frozen=True)
class ModelSource:
    """Where the model comes from: an S3 URI given or uploaded, a run's artifact to build
    and upload, or none (a model package or a hub model)."""

    prefix: str  # the deployment's prefix in the project bucket
    model_uri: str | None = None
    local_artifact: Path | None = None
    upload_uri: str | None = None
    check_tgi: bool = False


def plan(ctx: SageMakerContext, request: DeployRequest) -> Plan:
    """What deploying `request` would do; only read calls, nothing is created."""
    deploy = request.config.deploy
    region = ctx.session().region_name
    found = Findings()
    names = check_names(ctx, request, found)
    sizing = choose_sizing(request, region, found)
    check_role(ctx.aws, found)
    ttl_seconds = parse_ttl(deploy.ttl) if deploy.ttl else None
    source = locate_model(ctx, request, found)
    check_async_output(ctx, deploy, source, found)
    network = check_network(ctx, deploy, region, found)
    quota, cost = check_quota_and_cost(ctx, deploy, sizing.instance, region, found)
    spec = resolve_spec(ctx, request, names, sizing, source, network, cost, ttl_seconds, found)
    list_endpoint_actions(deploy, names, sizing.instance, cost, ttl_seconds, found)
    return Plan(
        target=ctx.name,
        deployment=request.name,
        project=request.project,
        region=region,
        kind=deploy.kind,
        actions=found.actions,
        cost=cost,
        instance=sizing.instance,
        instance_reason=sizing.reason,
        limits=sizing.limits,
        quota=quota,
        network=network,
        warnings=found.warnings,
        problems=found.problems,
        spec=spec,
    )


# names and updates --------------------------------------------------------------------


def check_names(ctx: SageMakerContext, request: DeployRequest, found: Findings) -> Names:
    """A model and config version no record holds yet, and the live endpoint, if any."""
    sm = ctx.client("sagemaker")
    versions = (Kind.SAGEMAKER_MODEL, Kind.SAGEMAKER_ENDPOINT_CONFIG)
    taken = {r.name for r in ctx.store.resources() if r.kind in versions}
    version = new_version(request.name, lambda n: n in taken)
    existing = describe_endpoint(sm, request.name)
    if existing is not None:
        check_update(sm, request.name, existing, request.config.deploy, found)
    return Names(request.name, version, existing)


def check_update(sm, name: str, existing: dict, deploy: DeployConfig, found: Findings) -> None:
    """What UpdateEndpoint would refuse, found before the model and config exist: an
    endpoint still changing, a change of kind it cannot make, a canary or linear step
    the new fleet cannot hold."""
    if existing.get("EndpointStatus") not in ("InService", "Failed"):
        found.problems.append(
            f"endpoint {name} is {existing.get('EndpointStatus')}; wait until it is "
            "InService (llmship status) before deploying again"
        )
    live_config, described = existing.get("EndpointConfigName", ""), None
    if live_config:  # deleted behind our back: DescribeEndpoint alone still tells
        with ignore_not_found("sagemaker", "DescribeEndpointConfig", live_config):
            described = sm.describe_endpoint_config(EndpointConfigName=live_config)
    change = check_kind_change(name, live_kind(existing, described), deploy.kind)
    found.problems.extend([change.problem] if change.problem else [])
    found.warnings.extend([change.warning] if change.warning else [])
    fleet = 0 if deploy.kind == "serverless" else deploy.instance_count
    try:
        deployment_config(requests.deployment_policy(deploy), fleet)
    except DeployError as exc:
        found.problems.append(str(exc))


# instance -----------------------------------------------------------------------------


def choose_sizing(request: DeployRequest, region: str, found: Findings) -> Sizing:
    """The instance, the container environment it implies and the kind's limits."""
    deploy = request.config.deploy
    facts = local_facts(request)
    instance, reason, gpus, tp = choose_instance(request, facts, region)
    environment = requests.container_environment(deploy, request.config.model.max_length, gpus, tp)
    limits = kind_limits.check(deploy, gpus=gpus, environment=environment)
    check_serverless_memory(deploy, facts, found)
    return Sizing(instance, reason, gpus, tp, environment, limits)


def local_facts(request: DeployRequest) -> ModelFacts | None:
    """The run's model facts; None when the model is not a local run's."""
    deploy = request.config.deploy
    if deploy.model_package_arn or deploy.hub_model_id or deploy.model_data:
        return None
    if request.run is None or not (request.run.model / "config.json").is_file():
        return None
    return model_facts(request.run.model)


def choose_instance(
    request: DeployRequest, facts: ModelFacts | None, region: str
) -> tuple[str | None, str, int, int]:
    """(instance type, why, GPUs per instance, tensor-parallel degree)."""
    from llmship.sagemaker.instances import instance_type, recommend

    deploy = request.config.deploy
    if deploy.kind == "serverless":  # a GPU instance named here is refused by the limits
        gpus = instance_type(deploy.instance_type).gpus if deploy.instance_type else 0
        return None, "serverless", gpus, 1
    if deploy.instance_type:
        chosen = instance_type(deploy.instance_type)
        return chosen.name, "deploy.instance_type", chosen.gpus, max(1, chosen.gpus)
    if facts is None:
        raise DeployError(
            "deploy.instance_type: required when serving a model llmship cannot size "
            "(a model package, a hub model or an S3 artifact); e.g. ml.g5.xlarge"
        )
    pick = recommend(
        params=facts.params,
        dtype_bytes=facts.dtype_bytes,
        layers=facts.layers,
        kv_heads=facts.kv_heads,
        head_dim=facts.head_dim,
        context=request.config.model.max_length,
        concurrency=deploy.concurrency,
        region=region,
        budget_per_hour=deploy.budget_per_hour,
        gpu=True,
    )
    return pick.instance.name, pick.reason, pick.instance.gpus, pick.tensor_parallel


def check_serverless_memory(
    deploy: DeployConfig, facts: ModelFacts | None, found: Findings
) -> None:
    """A serverless worker holds the weights and the runtime in deploy.serverless.memory_mb."""
    if deploy.kind != "serverless" or facts is None:
        return
    needed = facts.weight_bytes * 1.2 / MB + SERVERLESS_OVERHEAD_MB
    if needed > deploy.serverless.memory_mb:
        found.problems.append(
            f"deploy.serverless.memory_mb: {deploy.serverless.memory_mb} MB is too "
            f"little for this model (about {needed:,.0f} MB with its runtime); raise it "
            "(at most 6144) or use deploy.kind: realtime"
        )


def check_role(aws: AwsConfig, found: Findings) -> None:
    if not aws.role_arn:
        found.problems.append(
            "aws.role_arn is not set: SageMaker needs an execution role to pull the image "
            "and read the model; run `llmship aws bootstrap` and set aws.role_arn to the "
            "role it prints"
        )


# model, bucket and network ------------------------------------------------------------


def locate_model(ctx: SageMakerContext, request: DeployRequest, found: Findings) -> ModelSource:
    """Where the model comes from; a run's artifact is uploaded to the project bucket."""
    deploy, bucket = request.config.deploy, ctx.aws.bucket
    prefix = artifact_prefix(request.project, request.name)
    if deploy.model_package_arn is not None or deploy.hub_model_id is not None:
        return ModelSource(prefix)
    if deploy.model_data is not None:
        return ModelSource(prefix, deploy.model_data, check_tgi=deploy.container == "tgi")
    if request.run is None:
        raise DeployError(
            "nothing to deploy: give a run (llmship deploy RUN), or set "
            "deploy.model_data, deploy.model_package_arn or deploy.hub_model_id"
        )
    tar = request.config.package.format == "tar.gz"
    local = request.run.root / "artifact" / ("model.tar.gz" if tar else "model")
    key = f"{prefix}{request.run_id}/" + ("model.tar.gz" if tar else "model/")
    check_tgi = deploy.container == "tgi"
    if bucket is None:
        found.problems.append(
            "aws.bucket is not set: the artifact is uploaded there; run "
            "`llmship aws bootstrap` or set aws.bucket"
        )
        return ModelSource(prefix, local_artifact=local, check_tgi=check_tgi)
    uri = f"s3://{bucket}/{key}"
    check_bucket(ctx, bucket, found)
    built = "upload" if local.exists() else "package and upload"
    found.actions.append(Action("create", Kind.S3_ARTIFACT, uri, f"{built} the artifact"))
    return ModelSource(prefix, uri, local, uri, check_tgi)


def check_async_output(
    ctx: SageMakerContext, deploy: DeployConfig, source: ModelSource, found: Findings
) -> None:
    """An async endpoint's responses need a place: its output path or the project bucket."""
    if deploy.kind != "async" or deploy.async_inference.output_path is not None:
        return
    if ctx.aws.bucket is None:
        found.problems.append(
            "deploy.async_inference.output_path: not set and no aws.bucket to put "
            "responses in; set one of them"
        )
    elif source.upload_uri is None:  # not checked yet by the upload
        check_bucket(ctx, ctx.aws.bucket, found)


def check_bucket(ctx: SageMakerContext, bucket: str, found: Findings) -> None:
    with ignore_not_found("s3", "HeadBucket", bucket) as outcome:
        ctx.client("s3").head_bucket(Bucket=bucket)
    if outcome.missing:
        found.problems.append(
            f"aws.bucket: bucket {bucket} does not exist; run `llmship aws bootstrap` "
            "to create it, or set aws.bucket to one that exists"
        )


def check_network(
    ctx: SageMakerContext, deploy: DeployConfig, region: str, found: Findings
) -> NetworkFinding | None:
    """Whether the subnets reach S3; an S3 gateway endpoint to add, or a problem."""
    if not deploy.vpc.subnets:
        return None
    network = inspect_subnets(ctx.client("ec2"), deploy.vpc.subnets, region)
    if network.ok:
        return network
    if deploy.vpc.create_s3_endpoint:
        found.actions.append(
            Action(
                "create",
                Kind.VPC_ENDPOINT,
                f"S3 gateway endpoint in {network.vpc_id}",
                f"route tables {', '.join(network.route_tables)} (no charge)",
            )
        )
    else:
        found.problems.append(network.describe())
    return network


# quota and cost -----------------------------------------------------------------------


def check_quota_and_cost(
    ctx: SageMakerContext,
    deploy: DeployConfig,
    instance: str | None,
    region: str,
    found: Findings,
) -> tuple[quotas.QuotaCheck | None, Cost]:
    """The account's instance quota (a warning: it may be raised meanwhile) and the price,
    warned about when it is over deploy.budget_per_hour."""
    quota = None
    if instance is not None:
        quota = quotas.check_instance_quota(ctx.session(), instance, deploy.instance_count)
        if not quota.ok:
            found.warnings.append(quota.message)
        cost = instance_cost(instance, deploy.instance_count, region)
    else:
        cost = serverless_cost(deploy.serverless.provisioned_concurrency)
    if deploy.budget_per_hour and cost.hourly_usd and cost.hourly_usd > deploy.budget_per_hour:
        found.warnings.append(
            f"${cost.hourly_usd:.2f}/h is over deploy.budget_per_hour "
            f"(${deploy.budget_per_hour:.2f})"
        )
    return quota, cost


# requests and the role's grant --------------------------------------------------------


def resolve_spec(
    ctx: SageMakerContext,
    request: DeployRequest,
    names: Names,
    sizing: Sizing,
    source: ModelSource,
    network: NetworkFinding | None,
    cost: Cost,
    ttl_seconds: int | None,
    found: Findings,
) -> SageMakerSpec:
    """The request bodies and the execution role's grant, with what apply needs beside."""
    deploy = request.config.deploy
    tags = tag_list(dict(sorted(request.tags.items())))
    model_body = model_request(ctx, request, names.version, sizing, source.model_uri, tags)
    config_body = requests.config_request(
        deploy,
        config_name=names.version,
        model_name=names.version,
        instance=sizing.instance,
        tags=tags,
        async_base=f"s3://{ctx.aws.bucket}/{source.prefix}",
    )
    given = source.model_uri if deploy.model_data else None
    grant = check_role_grant(ctx, request, given, config_body, found)
    return SageMakerSpec(
        endpoint_name=names.endpoint,
        model_name=names.version,
        config_name=names.version,
        updating=names.updating,
        tags=tags,
        model_request=model_body,
        config_request=config_body,
        instance_type=sizing.instance,
        instance_count=deploy.instance_count if sizing.instance else 0,
        hourly_usd=cost.hourly_usd,
        container=deploy.container,
        local_artifact=source.local_artifact,
        artifact_format=request.config.package.format,
        transformers_version=request.config.package.transformers_version,
        upload_uri=source.upload_uri,
        check_tgi=source.check_tgi,
        create_s3_endpoint=bool(network is not None and not network.ok),
        ttl_seconds=ttl_seconds,
        autoscaling=requests.autoscaling_settings(deploy),
        policy=requests.deployment_policy(deploy),
        role_grant=grant,
    )


def model_request(
    ctx: SageMakerContext,
    request: DeployRequest,
    model_name: str,
    sizing: Sizing,
    model_uri: str | None,
    tags: list[dict[str, str]],
) -> dict[str, Any]:
    """CreateModel for the container's image, or for a model package (network-isolated
    when it is sold from another account: Marketplace packages run only so)."""
    from llmship.sagemaker.images import image_for

    deploy = request.config.deploy
    image_uri, isolated = None, False
    if deploy.model_package_arn:
        isolated = deploy.model_package_arn.split(":")[4] != account(ctx)
    else:
        image_uri = image_for(
            deploy.container,
            ctx.session().region_name,
            device="gpu" if sizing.gpus else "cpu",
            transformers_version=(
                request.config.package.transformers_version
                if deploy.container == "huggingface"
                else None
            ),
        ).uri
    return requests.model_request(
        deploy,
        model_name=model_name,
        role_arn=ctx.aws.role_arn or "",
        tags=tags,
        environment=sizing.environment,
        image_uri=image_uri,
        model_uri=model_uri,
        network_isolation=isolated,
    )


def account(ctx: SageMakerContext) -> str:
    with aws_call("sts", "GetCallerIdentity"):
        return ctx.client("sts", ctx.session().region_name).get_caller_identity()["Account"]


def check_role_grant(
    ctx: SageMakerContext,
    request: DeployRequest,
    model_data: str | None,
    config: dict[str, Any],
    found: Findings,
):
    """What the execution role needs beyond the project bucket for this endpoint: VPC
    interfaces, deploy.model_data and async output paths kept elsewhere, SNS topics."""
    from llmship.aws.role_grants import execution_role_grant

    if not ctx.aws.role_arn:
        return None
    output = config.get("AsyncInferenceConfig", {}).get("OutputConfig", {})
    topics = output.get("NotificationConfig", {})
    grant = execution_role_grant(
        ctx.session(),
        ctx.aws.role_arn,
        command="deploy",
        deployment=request.name,
        bucket=ctx.aws.bucket,
        vpc=request.config.deploy.vpc,
        data=[
            (model_data, "read"),
            (output.get("S3OutputPath"), "write"),
            (output.get("S3FailurePath"), "write"),
        ],
        topics=[topics.get("SuccessTopic"), topics.get("ErrorTopic")],
    )
    if grant is not None:
        found.actions.append(Action("create", Kind.IAM_ROLE_POLICY, grant.record, grant.describe()))
        found.warnings.extend(grant.warnings)
        found.problems.extend(grant.problems)
    return grant


# what the plan shows ------------------------------------------------------------------


def list_endpoint_actions(
    deploy: DeployConfig,
    names: Names,
    instance: str | None,
    cost: Cost,
    ttl_seconds: int | None,
    found: Findings,
) -> None:
    """The model, config and endpoint (created, or changed blue/green), the TTL's schedule
    and dead-letter queue, and the autoscaling target."""
    detail = (
        f"{deploy.instance_count} x {instance}"
        if instance
        else f"serverless {deploy.serverless.memory_mb} MB, "
        f"max concurrency {deploy.serverless.max_concurrency}"
    )
    found.actions.append(Action("create", Kind.SAGEMAKER_MODEL, names.version, deploy.container))
    found.actions.append(Action("create", Kind.SAGEMAKER_ENDPOINT_CONFIG, names.version, detail))
    if names.existing is not None:
        live = names.existing.get("EndpointConfigName", "?")
        change = f"{deploy.update.strategy} from {live} to {names.version} (blue/green)"
        found.actions.append(
            Action("change", Kind.SAGEMAKER_ENDPOINT, names.endpoint, change, cost.hourly_usd)
        )
    else:
        found.actions.append(
            Action("create", Kind.SAGEMAKER_ENDPOINT, names.endpoint, deploy.kind, cost.hourly_usd)
        )
    if ttl_seconds:
        found.actions.append(
            Action("create", Kind.SCHEDULE, f"delete {names.endpoint}", f"after {deploy.ttl}")
        )
        found.actions.append(
            Action(
                "create",
                Kind.QUEUE,
                queue_name(names.endpoint),
                "dead letters of a failed deletion",
            )
        )
    if deploy.autoscaling.enabled:
        a = deploy.autoscaling
        found.actions.append(
            Action(
                "create",
                Kind.SCALING_TARGET,
                names.endpoint,
                f"{a.min}-{a.max} instances, "
                f"{a.target_invocations_per_instance:g} invocations per instance",
            )
        )
