"""SageMaker endpoints through boto3: plan, create or update, wait, report, tear down.

A deploy makes a new model and endpoint config (`<deployment>-<UTC stamp>`), then
creates the endpoint (named the deployment) or, when it exists, moves it to the new
config blue/green through update.py and checks the live config is the intended one.
Each resource is tagged and recorded in the state store as CREATING before its create
call and UP after it, so `destroy` can always clean up; rows go only after deletion.
Every check that can fail without creating anything (names, kind limits, role, bucket,
network, TGI weights) runs before the first create.
"""

from __future__ import annotations

import json
import logging
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmship.aws.errors import aws_call, ignore_not_found
from llmship.aws.session import client, make_session
from llmship.config.schema import AwsConfig, DeployConfig
from llmship.deploy.plan import Action, Plan
from llmship.deploy.target import Deployed, DeploymentStatus, DeployRequest
from llmship.errors import DeployError
from llmship.progress import RecordingReporter, Reporter
from llmship.sagemaker import limits as kind_limits
from llmship.sagemaker.cost import instance_cost, running_cost, serverless_cost
from llmship.sagemaker.names import artifact_prefix, endpoint_log_group, new_version
from llmship.state import Resource, StateStore, state_path

MODEL_KIND = "sagemaker:model"
CONFIG_KIND = "sagemaker:endpoint-config"
ENDPOINT_KIND = "sagemaker:endpoint"
S3_KIND = "s3:artifact"
VARIANT = "AllTraffic"
MB = 1024 * 1024
# Python, CUDA context and activations beside the weights on a serverless worker.
SERVERLESS_OVERHEAD_MB = 1024
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int8": 1}
# How long destroy waits for a deleted endpoint to be gone before revoking the grant its
# deletion still needs (deleting an endpoint in a VPC takes minutes).
DELETE_TIMEOUT_S = 900.0
log = logging.getLogger("llmship.deploy")


@dataclass
class SageMakerSpec:
    """The resolved settings apply creates from (computed by plan, read-only)."""

    endpoint_name: str
    model_name: str
    config_name: str
    updating: bool
    tags: list[dict[str, str]]
    model_request: dict[str, Any]
    config_request: dict[str, Any]
    instance_type: str | None
    instance_count: int
    hourly_usd: float | None
    container: str
    local_artifact: Path | None = None  # to build (if missing) and upload
    artifact_format: str = "tar.gz"
    transformers_version: str | None = None
    upload_uri: str | None = None
    check_tgi: bool = False
    create_s3_endpoint: bool = False
    ttl_seconds: int | None = None
    autoscaling: Any = None  # scaling.AutoscalingSettings
    policy: Any = None  # update.DeploymentPolicy
    role_grant: Any = None  # role_grants.RoleGrant: the execution role's extra policy
    extra: dict[str, Any] = field(default_factory=dict)


def model_facts(model_dir: Path) -> dict[str, int]:
    """What instance sizing needs, read from a model directory's config and weights."""
    config = json.loads((model_dir / "config.json").read_text())
    config = config.get("text_config", config)
    dtype = str(config.get("torch_dtype") or config.get("dtype") or "float32")
    dtype_bytes = DTYPE_BYTES.get(dtype, 2)
    weight_bytes = sum(p.stat().st_size for p in model_dir.glob("*.safetensors"))
    heads = int(config.get("num_attention_heads") or config.get("num_heads") or 1)
    hidden = int(config.get("hidden_size") or config.get("d_model") or 0)
    return {
        "params": max(1, weight_bytes // dtype_bytes),
        "dtype_bytes": dtype_bytes,
        "weight_bytes": weight_bytes,
        "layers": int(config.get("num_hidden_layers") or config.get("num_layers") or 1),
        "kv_heads": int(config.get("num_key_value_heads") or heads),
        "head_dim": int(config.get("head_dim") or (hidden // heads if hidden else 128)),
    }


def artifact_files(path: Path) -> list[str]:
    """File names in an artifact directory or tar.gz (relative to its root)."""
    if path.is_dir():
        return [str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()]
    with tarfile.open(path, "r:gz") as archive:
        return [m.name.removeprefix("./") for m in archive.getmembers() if m.isfile()]


def check_tgi_files(names: list[str], where: str) -> None:
    """TGI loads safetensors weights and a tokenizer.json from /opt/ml/model; refuse
    an artifact without them before deploying (TGI would fail minutes later)."""
    roots = [n for n in names if "/" not in n]
    missing = []
    if not any(n.endswith(".safetensors") for n in roots):
        missing.append("*.safetensors weights")
    if "tokenizer.json" not in roots:
        missing.append("tokenizer.json (a fast tokenizer)")
    if missing:
        raise DeployError(
            f"deploy.container: tgi needs {' and '.join(missing)} at the root of {where}; "
            "save the model with safetensors and a fast tokenizer, or use container: huggingface"
        )


class SageMakerTarget:
    """Endpoints on SageMaker; clients come from `aws` (or an injected session)."""

    name = "sagemaker"

    def __init__(
        self,
        store: StateStore,
        aws: AwsConfig,
        *,
        session=None,
        sleep=time.sleep,
        clock=time.monotonic,
        now=time.time,
        poll_seconds: float = 30.0,
        timeout_seconds: float = 3600.0,
        delete_timeout_seconds: float = DELETE_TIMEOUT_S,
    ):
        self.store, self.aws = store, aws
        self._session, self._sessions, self._clients = session, {}, {}
        self.sleep, self.clock, self.now = sleep, clock, now
        self.poll_seconds, self.timeout_seconds = poll_seconds, timeout_seconds
        self.delete_timeout_seconds = delete_timeout_seconds

    # sessions and clients ------------------------------------------------------------

    def session(self, region: str | None = None):
        if self._session is not None and region in (None, "", self._session.region_name):
            return self._session
        key = region or ""
        if key not in self._sessions:
            aws = self.aws.model_copy(update={"region": region}) if region else self.aws
            self._sessions[key] = make_session(aws)
        return self._sessions[key]

    def client(self, service: str, region: str | None = None):
        """One client per service and region for this target's lifetime."""
        key = (service, region or "")
        if key not in self._clients:
            self._clients[key] = client(self.session(region), service)
        return self._clients[key]

    # plan -----------------------------------------------------------------------------

    def plan(self, request: DeployRequest) -> Plan:
        """What deploying `request` would do; only read calls, nothing is created."""
        deploy, aws = request.config.deploy, self.aws
        session = self.session()
        region = session.region_name
        sm = self.client("sagemaker")
        problems: list[str] = []
        warnings: list[str] = []
        actions: list[Action] = []
        name = request.name
        taken = self._taken_names()
        model_name = new_version(name, lambda n: n in taken)
        config_name = model_name
        existing = self._describe_endpoint(sm, name)
        updating = existing is not None
        if existing is not None and existing.get("EndpointStatus") not in ("InService", "Failed"):
            problems.append(
                f"endpoint {name} is {existing.get('EndpointStatus')}; wait until it is "
                "InService (llmship status) before deploying again"
            )
        if existing is not None:
            self._check_update(sm, name, existing, deploy, problems, warnings)

        facts = self._local_facts(request)
        instance, reason, gpus, tp = self._choose_instance(request, facts, region, problems)
        environment = self._environment(request, gpus, tp)
        limits = kind_limits.check(deploy, gpus=gpus, environment=environment)
        if deploy.kind == "serverless" and facts is not None:
            needed = facts["weight_bytes"] * 1.2 / MB + SERVERLESS_OVERHEAD_MB
            if needed > deploy.serverless.memory_mb:
                problems.append(
                    f"deploy.serverless.memory_mb: {deploy.serverless.memory_mb} MB is too "
                    f"little for this model (about {needed:,.0f} MB with its runtime); raise it "
                    "(at most 6144) or use deploy.kind: realtime"
                )
        if not aws.role_arn:
            problems.append(
                "aws.role_arn is not set: SageMaker needs an execution role to pull the image "
                "and read the model; run `llmship aws bootstrap` and set aws.role_arn to the "
                "role it prints"
            )
        ttl_seconds = None
        if deploy.ttl:
            from llmship.deploy.ttl import parse_ttl

            ttl_seconds = parse_ttl(deploy.ttl)

        # where the model comes from
        local_artifact, upload_uri, model_uri, check_tgi = None, None, None, False
        prefix = artifact_prefix(request.project, name)
        if deploy.model_package_arn is None and deploy.hub_model_id is None:
            if deploy.model_data is not None:
                model_uri = deploy.model_data
                if deploy.container == "tgi":
                    check_tgi = True
            elif request.run is None:
                raise DeployError(
                    "nothing to deploy: give a run (llmship deploy RUN), or set "
                    "deploy.model_data, deploy.model_package_arn or deploy.hub_model_id"
                )
            else:
                fmt = request.config.package.format
                local_artifact = (
                    request.run.root / "artifact" / ("model.tar.gz" if fmt == "tar.gz" else "model")
                )
                key = f"{prefix}{request.run_id}/" + (
                    "model.tar.gz" if fmt == "tar.gz" else "model/"
                )
                check_tgi = deploy.container == "tgi"
                if aws.bucket is None:
                    problems.append(
                        "aws.bucket is not set: the artifact is uploaded there; run "
                        "`llmship aws bootstrap` or set aws.bucket"
                    )
                else:
                    upload_uri = model_uri = f"s3://{aws.bucket}/{key}"
                    self._check_bucket(aws.bucket, problems)
                    built = "upload" if local_artifact.exists() else "package and upload"
                    actions.append(Action("create", S3_KIND, upload_uri, f"{built} the artifact"))
        if deploy.kind == "async" and deploy.async_inference.output_path is None:
            if aws.bucket is None:
                problems.append(
                    "deploy.async_inference.output_path: not set and no aws.bucket to put "
                    "responses in; set one of them"
                )
            elif upload_uri is None:
                self._check_bucket(aws.bucket, problems)

        # network
        network = None
        if deploy.vpc.subnets:
            from llmship.deploy.network import VPC_ENDPOINT_KIND, inspect_subnets

            network = inspect_subnets(self.client("ec2"), deploy.vpc.subnets, region)
            if not network.ok:
                if deploy.vpc.create_s3_endpoint:
                    actions.append(
                        Action(
                            "create",
                            VPC_ENDPOINT_KIND,
                            f"S3 gateway endpoint in {network.vpc_id}",
                            f"route tables {', '.join(network.route_tables)} (no charge)",
                        )
                    )
                else:
                    problems.append(network.describe())

        # quota and cost
        quota = None
        if instance is not None:
            from llmship.deploy.quotas import check_instance_quota

            quota = check_instance_quota(session, instance, deploy.instance_count)
            if not quota.ok:
                warnings.append(quota.message)
            cost = instance_cost(instance, deploy.instance_count, region)
        else:
            cost = serverless_cost(deploy.serverless.provisioned_concurrency)
        if deploy.budget_per_hour and cost.hourly_usd and cost.hourly_usd > deploy.budget_per_hour:
            warnings.append(
                f"${cost.hourly_usd:.2f}/h is over deploy.budget_per_hour "
                f"(${deploy.budget_per_hour:.2f})"
            )

        tags = [{"Key": k, "Value": v} for k, v in sorted(request.tags.items())]
        model_request = self._model_request(
            request, model_name, instance, gpus, environment, model_uri, tags, session, problems
        )
        config_request = self._config_request(
            request, config_name, model_name, instance, tags, prefix
        )
        grant = self._role_grant(request, model_uri if deploy.model_data else None, config_request)
        if grant is not None:
            from llmship.aws.secrets import ROLE_POLICY_KIND

            actions.append(Action("create", ROLE_POLICY_KIND, grant.record, grant.describe()))
            warnings += grant.warnings
            problems += grant.problems
        detail = (
            f"{deploy.instance_count} x {instance}"
            if instance
            else f"serverless {deploy.serverless.memory_mb} MB, "
            f"max concurrency {deploy.serverless.max_concurrency}"
        )
        actions.append(Action("create", MODEL_KIND, model_name, deploy.container))
        actions.append(Action("create", CONFIG_KIND, config_name, detail))
        if updating:
            live = existing.get("EndpointConfigName", "?")
            actions.append(
                Action(
                    "change",
                    ENDPOINT_KIND,
                    name,
                    f"{deploy.update.strategy} from {live} to {config_name} (blue/green)",
                    cost.hourly_usd,
                )
            )
        else:
            actions.append(Action("create", ENDPOINT_KIND, name, deploy.kind, cost.hourly_usd))
        if ttl_seconds:
            from llmship.deploy.ttl import QUEUE_KIND, queue_name

            actions.append(
                Action("create", "scheduler:schedule", f"delete {name}", f"after {deploy.ttl}")
            )
            actions.append(
                Action("create", QUEUE_KIND, queue_name(name), "dead letters of a failed deletion")
            )
        if deploy.autoscaling.enabled:
            a = deploy.autoscaling
            actions.append(
                Action(
                    "create",
                    "autoscaling:target",
                    name,
                    f"{a.min}-{a.max} instances, "
                    f"{a.target_invocations_per_instance:g} invocations per instance",
                )
            )
        spec = SageMakerSpec(
            endpoint_name=name,
            model_name=model_name,
            config_name=config_name,
            updating=updating,
            tags=tags,
            model_request=model_request,
            config_request=config_request,
            instance_type=instance,
            instance_count=deploy.instance_count if instance else 0,
            hourly_usd=cost.hourly_usd,
            container=deploy.container,
            local_artifact=local_artifact,
            artifact_format=request.config.package.format,
            transformers_version=request.config.package.transformers_version,
            upload_uri=upload_uri,
            check_tgi=check_tgi,
            create_s3_endpoint=bool(network is not None and not network.ok),
            ttl_seconds=ttl_seconds,
            autoscaling=self._autoscaling(deploy),
            policy=self._policy(deploy),
            role_grant=grant,
        )
        return Plan(
            target=self.name,
            deployment=name,
            project=request.project,
            region=region,
            kind=deploy.kind,
            actions=actions,
            cost=cost,
            instance=instance,
            instance_reason=reason,
            limits=limits,
            quota=quota,
            network=network,
            warnings=warnings,
            problems=problems,
            spec=spec,
        )

    def _role_grant(self, request: DeployRequest, model_data: str | None, config: dict):
        """What the execution role needs beyond the project bucket for this endpoint: VPC
        interfaces, deploy.model_data and async output paths kept elsewhere, SNS topics."""
        from llmship.aws.role_grants import execution_role_grant

        if not self.aws.role_arn:
            return None
        output = config.get("AsyncInferenceConfig", {}).get("OutputConfig", {})
        topics = output.get("NotificationConfig", {})
        return execution_role_grant(
            self.session(),
            self.aws.role_arn,
            command="deploy",
            deployment=request.name,
            bucket=self.aws.bucket,
            vpc=request.config.deploy.vpc,
            data=[
                (model_data, "read"),
                (output.get("S3OutputPath"), "write"),
                (output.get("S3FailurePath"), "write"),
            ],
            topics=[topics.get("SuccessTopic"), topics.get("ErrorTopic")],
        )

    def _taken_names(self) -> set[str]:
        return {r.name for r in self.store.resources() if r.kind in (MODEL_KIND, CONFIG_KIND)}

    @staticmethod
    def _describe_endpoint(sm, name: str) -> dict | None:
        with ignore_not_found("sagemaker", "DescribeEndpoint", name):
            return sm.describe_endpoint(EndpointName=name)
        return None

    def _check_update(self, sm, name, existing, deploy: DeployConfig, problems, warnings) -> None:
        """What UpdateEndpoint would refuse, found before the model and config exist: a
        change of kind it cannot make, a canary or linear step the new fleet cannot hold."""
        from llmship.deploy.kind_change import check_kind_change, live_kind
        from llmship.deploy.update import deployment_config

        live_config, described = existing.get("EndpointConfigName", ""), None
        if live_config:  # deleted behind our back: DescribeEndpoint alone still tells
            with ignore_not_found("sagemaker", "DescribeEndpointConfig", live_config):
                described = sm.describe_endpoint_config(EndpointConfigName=live_config)
        change = check_kind_change(name, live_kind(existing, described), deploy.kind)
        problems.extend([change.problem] if change.problem else [])
        warnings.extend([change.warning] if change.warning else [])
        fleet = 0 if deploy.kind == "serverless" else deploy.instance_count
        try:
            deployment_config(self._policy(deploy), fleet)
        except DeployError as exc:
            problems.append(str(exc))

    def _check_bucket(self, bucket: str, problems: list[str]) -> None:
        with ignore_not_found("s3", "HeadBucket", bucket) as outcome:
            self.client("s3").head_bucket(Bucket=bucket)
        if outcome.missing:
            problems.append(
                f"aws.bucket: bucket {bucket} does not exist; run `llmship aws bootstrap` "
                "to create it, or set aws.bucket to one that exists"
            )

    @staticmethod
    def _local_facts(request: DeployRequest) -> dict[str, int] | None:
        deploy = request.config.deploy
        if deploy.model_package_arn or deploy.hub_model_id or deploy.model_data:
            return None
        if request.run is None or not (request.run.model / "config.json").is_file():
            return None
        return model_facts(request.run.model)

    def _choose_instance(self, request, facts, region, problems):
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
            params=facts["params"],
            dtype_bytes=facts["dtype_bytes"],
            layers=facts["layers"],
            kv_heads=facts["kv_heads"],
            head_dim=facts["head_dim"],
            context=request.config.model.max_length,
            concurrency=deploy.concurrency,
            region=region,
            budget_per_hour=deploy.budget_per_hour,
            gpu=True,
        )
        return pick.instance.name, pick.reason, pick.instance.gpus, pick.tensor_parallel

    @staticmethod
    def _environment(request: DeployRequest, gpus: int, tp: int) -> dict[str, str]:
        deploy = request.config.deploy
        env: dict[str, str] = {}
        if deploy.container == "tgi":
            env["HF_MODEL_ID"] = deploy.hub_model_id or "/opt/ml/model"
            env["SM_NUM_GPUS"] = str(max(1, tp))
            if deploy.hub_model_id is None:
                env["MAX_TOTAL_TOKENS"] = str(request.config.model.max_length)
                env["MAX_INPUT_TOKENS"] = str(max(1, request.config.model.max_length - 1))
        elif deploy.container == "lmi":
            env["HF_MODEL_ID"] = deploy.hub_model_id or "/opt/ml/model"
            env["OPTION_TENSOR_PARALLEL_DEGREE"] = str(max(1, tp)) if gpus else "1"
        return {**env, **deploy.environment}

    def _model_request(
        self, request, model_name, instance, gpus, environment, model_uri, tags, session, problems
    ) -> dict[str, Any]:
        from llmship.sagemaker.images import image_for

        deploy = request.config.deploy
        body: dict[str, Any] = {
            "ModelName": model_name,
            "ExecutionRoleArn": self.aws.role_arn or "",
            "Tags": tags,
        }
        if deploy.vpc.subnets:
            body["VpcConfig"] = {
                "Subnets": list(deploy.vpc.subnets),
                "SecurityGroupIds": list(deploy.vpc.security_groups),
            }
        if deploy.model_package_arn:
            body["PrimaryContainer"] = {"ModelPackageName": deploy.model_package_arn}
            if environment:
                body["PrimaryContainer"]["Environment"] = environment
            # Marketplace packages (sold from another account) only run network-isolated.
            account = deploy.model_package_arn.split(":")[4]
            if account != self._account(session):
                body["EnableNetworkIsolation"] = True
            return body
        image = image_for(
            deploy.container,
            session.region_name,
            device="gpu" if gpus else "cpu",
            transformers_version=(
                request.config.package.transformers_version
                if deploy.container == "huggingface"
                else None
            ),
        )
        container: dict[str, Any] = {"Image": image.uri, "Environment": environment}
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

    def _account(self, session) -> str:
        with aws_call("sts", "GetCallerIdentity"):
            return self.client("sts", session.region_name).get_caller_identity()["Account"]

    def _config_request(self, request, config_name, model_name, instance, tags, prefix):
        deploy = request.config.deploy
        variant: dict[str, Any] = {"VariantName": VARIANT, "ModelName": model_name}
        if deploy.kind == "serverless":
            serverless: dict[str, Any] = {
                "MemorySizeInMB": deploy.serverless.memory_mb,
                "MaxConcurrency": deploy.serverless.max_concurrency,
            }
            if deploy.serverless.provisioned_concurrency:
                serverless["ProvisionedConcurrency"] = deploy.serverless.provisioned_concurrency
            variant["ServerlessConfig"] = serverless
        else:
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
        body: dict[str, Any] = {
            "EndpointConfigName": config_name,
            "ProductionVariants": [variant],
            "Tags": tags,
        }
        if deploy.kind == "async":
            settings = deploy.async_inference
            base = f"s3://{self.aws.bucket}/{prefix}"
            output: dict[str, Any] = {
                "S3OutputPath": settings.output_path or f"{base}async-output/",
                "S3FailurePath": settings.failure_path or f"{base}async-failures/",
            }
            topics = {
                "SuccessTopic": settings.sns_success_topic,
                "ErrorTopic": settings.sns_error_topic,
            }
            if any(topics.values()):
                output["NotificationConfig"] = {k: v for k, v in topics.items() if v}
            body["AsyncInferenceConfig"] = {"OutputConfig": output}
            if settings.max_concurrent_invocations:
                body["AsyncInferenceConfig"]["ClientConfig"] = {
                    "MaxConcurrentInvocationsPerInstance": settings.max_concurrent_invocations
                }
        return body

    @staticmethod
    def _autoscaling(deploy: DeployConfig):
        if not deploy.autoscaling.enabled:
            return None
        from llmship.deploy.scaling import AutoscalingSettings

        a = deploy.autoscaling
        return AutoscalingSettings(
            min_capacity=a.min,
            max_capacity=a.max,
            target_invocations_per_instance=a.target_invocations_per_instance,
            scale_in_cooldown=a.scale_in_cooldown,
            scale_out_cooldown=a.scale_out_cooldown,
        )

    @staticmethod
    def _policy(deploy: DeployConfig):
        from llmship.deploy.update import DeploymentPolicy

        u = deploy.update
        return DeploymentPolicy(
            strategy=u.strategy,
            canary_percent=u.canary_percent,
            linear_step_percent=u.linear_step_percent,
            wait_seconds=u.wait_seconds,
            alarms=tuple(u.alarms),
        )

    # apply ----------------------------------------------------------------------------

    def apply(self, plan: Plan, *, reporter: Reporter | None = None) -> Deployed:
        """Create (or update) what `plan` lists, wait for InService, then TTL and scaling."""
        plan.check()
        spec: SageMakerSpec = plan.spec
        reporter = reporter or RecordingReporter()
        session, region = self.session(), plan.region
        sm = self.client("sagemaker")
        common = {"deployment": plan.deployment, "project": plan.project, "region": region}
        tags = {t["Key"]: t["Value"] for t in spec.tags}
        if spec.role_grant is not None:  # before anything uses the role
            from llmship.aws.role_grants import put_grant

            put_grant(
                self.client("iam"),
                spec.role_grant,
                store=self.store,
                deployment=plan.deployment,
                project=plan.project,
                details={"endpoint": spec.endpoint_name, "endpoint_region": region},
            )
        if spec.create_s3_endpoint:
            from llmship.deploy.network import create_s3_endpoint

            endpoint_id = create_s3_endpoint(
                self.client("ec2"),
                plan.network,
                region,
                tags=tags,
                store=self.store,
                deployment=plan.deployment,
                project=plan.project,
            )
            reporter.message(f"created S3 gateway endpoint {endpoint_id}")
        if spec.local_artifact is not None:
            self._build(spec, reporter)
            if spec.check_tgi:
                check_tgi_files(artifact_files(spec.local_artifact), str(spec.local_artifact))
            self._upload(spec, reporter, **common)
        elif spec.check_tgi and spec.upload_uri is None:
            self._check_remote_tgi(spec)

        self._create(
            MODEL_KIND, spec.model_name, "CreateModel", sm.create_model, spec.model_request,
            {"container": spec.container}, **common,
        )  # fmt: skip
        self._create(
            CONFIG_KIND,
            spec.config_name,
            "CreateEndpointConfig",
            sm.create_endpoint_config,
            spec.config_request,
            {"model": spec.model_name},
            **common,
        )
        details = {
            "config": spec.config_name,
            "model": spec.model_name,
            "kind": plan.kind,
            "instance_type": spec.instance_type,
            "instance_count": spec.instance_count,
            "hourly_usd": spec.hourly_usd,
        }
        logs = self.client("logs")
        if spec.updating:
            self._update(sm, spec, plan, reporter, details, session)
        else:
            self._create(
                ENDPOINT_KIND,
                spec.endpoint_name,
                "CreateEndpoint",
                sm.create_endpoint,
                {
                    "EndpointName": spec.endpoint_name,
                    "EndpointConfigName": spec.config_name,
                    "Tags": spec.tags,
                },
                details,
                **common,
            )
            wait_for_endpoint(
                sm,
                spec.endpoint_name,
                logs=logs,
                reporter=reporter,
                poll_seconds=self.poll_seconds,
                timeout_seconds=self.timeout_seconds,
                sleep=self.sleep,
                clock=self.clock,
            )
        messages = []
        if spec.ttl_seconds:
            from llmship.deploy.ttl import schedule_deletion

            schedule = schedule_deletion(
                session,
                endpoint_name=spec.endpoint_name,
                ttl_seconds=spec.ttl_seconds,
                tags=tags,
                store=self.store,
                deployment=plan.deployment,
                project=plan.project,
            )
            messages.append(f"deletion scheduled at {schedule.delete_at:%Y-%m-%d %H:%M} UTC")
        if spec.autoscaling is not None:
            from llmship.deploy.scaling import configure_autoscaling

            configure_autoscaling(
                session,
                endpoint_name=spec.endpoint_name,
                settings=spec.autoscaling,
                variant_name=VARIANT,
                asynchronous=plan.kind == "async",
                store=self.store,
                deployment=plan.deployment,
                project=plan.project,
            )
            messages.append(
                f"autoscaling {spec.autoscaling.min_capacity}-{spec.autoscaling.max_capacity}"
            )
        return Deployed(
            plan.deployment,
            self.name,
            spec.endpoint_name,
            "InService",
            spec.hourly_usd,
            tuple(messages),
        )

    def _create(self, kind, name, operation, call, body, details, *, deployment, project, region):
        """Record CREATING, call, mark UP; the record stays if the call fails midway.
        A call passing an execution role waits out that role's IAM propagation."""
        from llmship.aws.iam import call_with_new_role

        self.store.record_creating(kind, name, deployment, project, region, details)
        with aws_call("sagemaker", operation, name):
            if body.get("ExecutionRoleArn"):
                call_with_new_role(
                    lambda: call(**body),
                    role_arn=body["ExecutionRoleArn"],
                    service="sagemaker",
                    operation=operation,
                    resource=name,
                    sleep=self.sleep,
                )
            else:
                call(**body)
        self.store.set_status(kind, name, "UP", region)

    def _build(self, spec: SageMakerSpec, reporter: Reporter) -> None:
        from llmship.package.build import build_artifact

        if spec.local_artifact.exists():
            return
        run_root = spec.local_artifact.parent.parent
        reporter.message(f"packaging {run_root} for transformers {spec.transformers_version}")
        build_artifact(
            run_root, spec.local_artifact, spec.artifact_format, spec.transformers_version
        )

    def _upload(self, spec, reporter, *, deployment, project, region) -> None:
        from llmship.aws.s3 import upload_file

        s3 = self.client("s3")
        bucket, _, key = spec.upload_uri.removeprefix("s3://").partition("/")
        resume = state_path().parent / "uploads"
        self.store.record_creating(S3_KIND, spec.upload_uri, deployment, project, region)
        if spec.local_artifact.is_file():
            upload_file(s3, spec.local_artifact, bucket, key, resume, reporter)
        else:
            for path in sorted(p for p in spec.local_artifact.rglob("*") if p.is_file()):
                relative = path.relative_to(spec.local_artifact).as_posix()
                upload_file(s3, path, bucket, f"{key}{relative}", resume, reporter)
        self.store.set_status(S3_KIND, spec.upload_uri, "UP", region)

    def _check_remote_tgi(self, spec: SageMakerSpec) -> None:
        source = spec.model_request["PrimaryContainer"].get("ModelDataSource")
        if source is None:  # a tar.gz in S3: its listing would mean downloading it
            return
        uri = source["S3DataSource"]["S3Uri"]
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        with aws_call("s3", "ListObjectsV2", uri):
            pages = (
                self.client("s3")
                .get_paginator("list_objects_v2")
                .paginate(Bucket=bucket, Prefix=prefix)
            )
            names = [o["Key"][len(prefix) :] for page in pages for o in page.get("Contents", [])]
        check_tgi_files(names, uri)

    def _update(self, sm, spec, plan, reporter, details, session) -> None:
        """Blue/green to the new config; a silent rollback is an error, said loudly."""
        from llmship.deploy import update

        had_scaling = any(
            r.kind.startswith("autoscaling:") for r in self.store.resources(plan.deployment)
        )
        if had_scaling:  # a scaling target cannot change instance type in an update
            from llmship.deploy.scaling import remove_autoscaling

            remove_autoscaling(session, endpoint_name=spec.endpoint_name, store=self.store)
        update.start_update(
            sm,
            endpoint_name=spec.endpoint_name,
            new_config_name=spec.config_name,
            policy=spec.policy,
            instance_count=spec.instance_count,
        )
        outcome = update.wait_for_update(
            sm,
            endpoint_name=spec.endpoint_name,
            intended_config_name=spec.config_name,
            reporter=reporter,
            poll_seconds=self.poll_seconds,
            timeout_seconds=self.timeout_seconds,
            sleep=self.sleep,
        )
        if outcome.rolled_back or outcome.live_config_name != spec.config_name:
            reason = f" ({outcome.failure_reason})" if outcome.failure_reason else ""
            lines = _log_tail(self.client("logs"), spec.endpoint_name)
            raise DeployError(
                f"ROLLED BACK: endpoint {spec.endpoint_name} is {outcome.status} on "
                f"{outcome.live_config_name}, not the new {spec.config_name}{reason}; the new "
                "model never took traffic. Check the alarms and the container's logs"
                + lines
                + "; `llmship destroy` removes the unused model and config with the rest"
            )
        if outcome.status != "InService":
            raise DeployError(
                f"endpoint {spec.endpoint_name} is {outcome.status} after the update"
                + (f": {outcome.failure_reason}" if outcome.failure_reason else "")
            )
        self.store.set_status(ENDPOINT_KIND, spec.endpoint_name, "UP", plan.region, details)

    # status ---------------------------------------------------------------------------

    def status(
        self, deployment: str, resources: list[Resource], *, idle_hours: float | None = None
    ) -> DeploymentStatus:
        """The endpoint's live state, instance, price, spend so far, TTL and idleness."""
        endpoint = next((r for r in resources if r.kind == ENDPOINT_KIND), None)
        if endpoint is None:
            kinds = sorted({r.kind for r in resources})
            return DeploymentStatus(
                deployment, self.name, "-", "no endpoint", "-", None, None, None, None,
                len(resources), (f"left: {', '.join(kinds)}",),
            )  # fmt: skip
        region = endpoint.region or None
        session = self.session(region)
        found = self._describe_endpoint(self.client("sagemaker", region), endpoint.name)
        state = found["EndpointStatus"] if found else "gone"
        notes = []
        if found and found.get("FailureReason"):
            notes.append(found["FailureReason"])
        details = endpoint.details
        hourly = details.get("hourly_usd") if found else None
        count = details.get("instance_count") or 0
        instance = (
            f"{count} x {details['instance_type']}"
            if details.get("instance_type")
            else details.get("kind", "")
        )
        ttl = None
        if found:
            from datetime import UTC, datetime

            from llmship.deploy.ttl import check

            now = datetime.fromtimestamp(self.now(), UTC)
            checked = check(session, endpoint.name, resources, endpoint_status=state, now=now)
            ttl = checked.left
            notes += checked.notes
        idle = None
        if idle_hours and found:
            idle = self.invocations(endpoint.name, idle_hours, region) == 0
            if idle:
                notes.append(f"no invocations in {idle_hours:g} h: `llmship destroy {deployment}`")
        return DeploymentStatus(
            deployment,
            self.name,
            endpoint.name,
            state,
            instance,
            hourly,
            running_cost(hourly, endpoint.created, self.now()),
            ttl,
            idle,
            len(resources),
            tuple(notes),
        )

    def invocations(self, endpoint: str, hours: float, region: str | None = None) -> float:
        """Invocations of the endpoint over the last `hours` (CloudWatch, hourly sums)."""
        from datetime import UTC, datetime, timedelta

        end = datetime.fromtimestamp(self.now(), UTC)
        with aws_call("cloudwatch", "GetMetricStatistics", endpoint):
            points = self.client("cloudwatch", region).get_metric_statistics(
                Namespace="AWS/SageMaker",
                MetricName="Invocations",
                Dimensions=[
                    {"Name": "EndpointName", "Value": endpoint},
                    {"Name": "VariantName", "Value": VARIANT},
                ],
                StartTime=end - timedelta(hours=hours),
                EndTime=end,
                Period=3600,
                Statistics=["Sum"],
            )["Datapoints"]
        return sum(point["Sum"] for point in points)

    def refresh(self, resources: list[Resource]) -> list[Resource]:
        """Forget the recorded resources that no longer exist in AWS; return those."""
        gone = [r for r in resources if r.kind in CHECKS and not self._exists(r)]
        for resource in gone:
            self.store.remove(resource.kind, resource.name, resource.region)
        return gone

    def _exists(self, resource: Resource) -> bool:
        service, operation, arguments = CHECKS[resource.kind](resource)
        with ignore_not_found(service, operation, resource.name) as outcome:
            result = getattr(self.client(service, resource.region or None), operation)(**arguments)
        if outcome.missing:
            return False
        if resource.kind == S3_KIND and operation == "list_objects_v2":
            return result.get("KeyCount", 0) > 0
        if resource.kind.startswith("ec2:"):
            return any(e.get("State") != "deleted" for e in result.get("VpcEndpoints", []))
        return True

    # invoke ---------------------------------------------------------------------------

    def invoke(self, deployment: str, body: bytes, content_type: str = "application/json") -> bytes:
        from llmship.deploy.invoke import invoke

        region = next(
            (r.region for r in self.store.resources(deployment) if r.kind == ENDPOINT_KIND), None
        )
        runtime = self.client("sagemaker-runtime", region)
        return invoke(runtime, deployment, body=body, content_type=content_type).body

    # destroy --------------------------------------------------------------------------

    def destroy(self, deployment: str, *, purge: bool = False) -> list[str]:
        """Delete what `deployment` owns, in dependency order; NotFound counts as deleted.
        Each state row goes only once its resource is gone, so a rerun finishes the rest."""
        resources = self.store.resources(deployment)
        deleted: list[str] = []
        for endpoint in [r for r in resources if r.kind == ENDPOINT_KIND]:
            session = self.session(endpoint.region or None)
            from llmship.deploy.scaling import remove_autoscaling
            from llmship.deploy.ttl import cancel_deletion

            cancel_deletion(session, endpoint.name, self.store)
            remove_autoscaling(session, endpoint_name=endpoint.name, store=self.store)
            self._delete(endpoint, "delete_endpoint", "DeleteEndpoint", EndpointName=endpoint.name)
            deleted.append(f"{ENDPOINT_KIND} {endpoint.name}")
        deleted += self._end_ttl_without_endpoint(resources)
        for kind, method, operation, key in (
            (CONFIG_KIND, "delete_endpoint_config", "DeleteEndpointConfig", "EndpointConfigName"),
            (MODEL_KIND, "delete_model", "DeleteModel", "ModelName"),
        ):
            for resource in [r for r in resources if r.kind == kind]:
                self._delete(resource, method, operation, **{key: resource.name})
                deleted.append(f"{kind} {resource.name}")
        deleted += self._end_training(resources)
        from llmship.deploy.network import VPC_ENDPOINT_KIND, delete_s3_endpoint

        for resource in [r for r in resources if r.kind == VPC_ENDPOINT_KIND]:
            ec2 = self.client("ec2", resource.region or None)
            delete_s3_endpoint(ec2, resource.name, deployment)
            self.store.remove(resource.kind, resource.name, resource.region)
            deleted.append(f"{VPC_ENDPOINT_KIND} {resource.name}")
        if purge:
            deleted += self._purge(deployment, resources)
        return deleted

    def _end_ttl_without_endpoint(self, resources: list[Resource]) -> list[str]:
        """A TTL whose endpoint is no longer recorded (the TTL deleted it, then `status
        --refresh` forgot it) still has a role and a dead-letter queue to delete."""
        from llmship.deploy.ttl import QUEUE_KIND, SCHEDULE_KIND, cancel_deletion, queue_name

        recorded = {r.name for r in resources if r.kind == ENDPOINT_KIND}
        left = set()
        for r in resources:
            endpoint = r.details.get("endpoint")
            if r.kind in (SCHEDULE_KIND, QUEUE_KIND) and endpoint and endpoint not in recorded:
                left.add((endpoint, r.region))
        for endpoint, region in sorted(left):
            cancel_deletion(self.session(region or None), endpoint, self.store)
        return [f"{QUEUE_KIND} {queue_name(endpoint)}" for endpoint, _ in sorted(left)]

    def _end_training(self, resources: list[Resource], poll_s: float = 10.0) -> list[str]:
        """Stop a training job still running (a job cannot be deleted, only stopped; its
        record goes once it has ended), then delete its secrets and the execution role's
        grants (a deploy's only once its endpoint is gone)."""
        from llmship.aws.secrets import ROLE_POLICY_KIND, SECRET_KIND, delete_secret, revoke_read
        from llmship.train.sagemaker_job import JOB_KIND

        deleted = []
        for job in [r for r in resources if r.kind == JOB_KIND]:
            self.store.set_status(job.kind, job.name, "DELETING", job.region)
            self._stop_job(self.client("sagemaker", job.region or None), job.name, poll_s)
            self.store.remove(job.kind, job.name, job.region)
            deleted.append(f"{JOB_KIND} {job.name}")
        for secret in [r for r in resources if r.kind == SECRET_KIND]:
            delete_secret(self.client("secretsmanager", secret.region or None), secret.name)
            self.store.remove(secret.kind, secret.name, secret.region)
            deleted.append(f"{SECRET_KIND} {secret.name}")
        for grant in [r for r in resources if r.kind == ROLE_POLICY_KIND]:
            if not self._endpoint_gone(grant):
                continue
            revoke_read(self.client("iam"), grant.name)
            self.store.remove(grant.kind, grant.name, grant.region)
            deleted.append(f"{ROLE_POLICY_KIND} {grant.name}")
        return deleted

    def _endpoint_gone(self, grant: Resource) -> bool:
        """Whether the endpoint a grant was put for is gone (True for a grant of none).
        DeleteEndpoint only starts the deletion, and SageMaker removes the endpoint's
        network interfaces with the execution role's EC2 permissions: the grant goes only
        after DescribeEndpoint says not found. Polled up to delete_timeout_seconds; then
        the grant's record is kept, with why, for the next destroy to finish."""
        endpoint = grant.details.get("endpoint")
        if not endpoint:
            return True
        sm = self.client("sagemaker", grant.details.get("endpoint_region") or None)
        started = self.clock()
        while True:
            with ignore_not_found("sagemaker", "DescribeEndpoint", endpoint) as outcome:
                status = sm.describe_endpoint(EndpointName=endpoint)["EndpointStatus"]
            if outcome.missing:
                return True
            waited = self.clock() - started
            if waited >= self.delete_timeout_seconds:
                break
            self.sleep(self.poll_seconds)
        reason = (
            f"endpoint {endpoint} is still {status} after {waited:.0f} s; SageMaker needs "
            f"the execution role's grant {grant.name} to remove the endpoint's network "
            f"interfaces, so it is kept: run `llmship destroy {grant.deployment}` again once "
            "the endpoint is gone"
        )
        self.store.set_status(grant.kind, grant.name, grant.status, grant.region, {"kept": reason})
        log.warning(reason)
        return False

    @staticmethod
    def _stop_job(sagemaker, name: str, poll_s: float) -> None:
        """Stop job `name` if it runs and wait until it has ended. A job SageMaker does not
        know (its create was refused, or never returned) has nothing to stop."""
        with ignore_not_found("sagemaker", "DescribeTrainingJob", name):
            status = sagemaker.describe_training_job(TrainingJobName=name)["TrainingJobStatus"]
            if status == "InProgress":
                with ignore_not_found("sagemaker", "StopTrainingJob", name):
                    sagemaker.stop_training_job(TrainingJobName=name)
            while status in ("InProgress", "Stopping"):
                time.sleep(poll_s)
                status = sagemaker.describe_training_job(TrainingJobName=name)["TrainingJobStatus"]

    def _delete(self, resource: Resource, method: str, operation: str, **arguments) -> None:
        """Delete one resource; gone counts as done, and so does a refusal (AccessDenied)
        when its Describe says it is gone: a policy scoped by aws:ResourceTag cannot read
        the tags of a resource that no longer exists (the TTL or a console delete)."""
        self.store.set_status(resource.kind, resource.name, "DELETING", resource.region)
        service, describe, described = CHECKS[resource.kind](resource)
        region = resource.region or None
        with ignore_not_found(
            "sagemaker",
            operation,
            resource.name,
            confirm=lambda: getattr(self.client(service, region), describe)(**described),
        ):
            getattr(self.client("sagemaker", region), method)(**arguments)
        self.store.remove(resource.kind, resource.name, resource.region)

    def _purge(self, deployment: str, resources: list[Resource]) -> list[str]:
        """The uploaded artifacts and the endpoint's log group."""
        from llmship.aws.logs import delete_log_group
        from llmship.aws.s3 import abort_uploads

        deleted = []
        for resource in [r for r in resources if r.kind == S3_KIND]:
            s3 = self.client("s3", resource.region or None)
            bucket, _, key = resource.name.removeprefix("s3://").partition("/")
            with ignore_not_found("s3", "DeleteObjects", resource.name):
                pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
                keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
                for start in range(0, len(keys), 1000):
                    s3.delete_objects(
                        Bucket=bucket,
                        Delete={"Objects": [{"Key": k} for k in keys[start : start + 1000]]},
                    )
                abort_uploads(s3, bucket, key)  # parts of an interrupted upload bill too
            self.store.remove(resource.kind, resource.name, resource.region)
            deleted.append(f"{S3_KIND} {resource.name}")
        regions = {r.region for r in resources if r.kind == ENDPOINT_KIND} or {
            r.region for r in resources
        }
        for region in regions or {""}:
            group = endpoint_log_group(deployment)
            if delete_log_group(self.client("logs", region or None), group):
                deleted.append(f"logs:log-group {group}")
        return deleted


# How `status --refresh` asks whether a recorded resource still exists.
CHECKS = {
    ENDPOINT_KIND: lambda r: ("sagemaker", "describe_endpoint", {"EndpointName": r.name}),
    CONFIG_KIND: lambda r: (
        "sagemaker",
        "describe_endpoint_config",
        {"EndpointConfigName": r.name},
    ),
    MODEL_KIND: lambda r: ("sagemaker", "describe_model", {"ModelName": r.name}),
    "sagemaker:training-job": lambda r: (
        "sagemaker",
        "describe_training_job",
        {"TrainingJobName": r.name},
    ),
    S3_KIND: lambda r: (
        "s3",
        "list_objects_v2",
        {
            "Bucket": r.name.removeprefix("s3://").partition("/")[0],
            "Prefix": r.name.removeprefix("s3://").partition("/")[2],
            "MaxKeys": 1,
        },
    ),
    "ec2:vpc-endpoint": lambda r: ("ec2", "describe_vpc_endpoints", {"VpcEndpointIds": [r.name]}),
}


def _log_tail(logs, endpoint: str, limit: int = 20) -> str:
    from llmship.aws.logs import last_lines

    lines = last_lines(logs, endpoint_log_group(endpoint), limit=limit)
    if not lines:
        return f" (no container logs in {endpoint_log_group(endpoint)} yet)"
    return f"; last lines of {endpoint_log_group(endpoint)}:\n    " + "\n    ".join(lines)


def wait_for_endpoint(
    sm,
    name: str,
    *,
    logs=None,
    reporter: Reporter | None = None,
    poll_seconds: float = 30.0,
    timeout_seconds: float = 3600.0,
    sleep=time.sleep,
    clock=time.monotonic,
) -> dict:
    """Poll until `name` is InService; on Failed, a DeployError with SageMaker's
    FailureReason and the container's last log lines."""
    reporter = reporter or RecordingReporter()
    started = clock()
    reporter.start(f"waiting for {name}", None)
    last = None
    try:
        while True:
            with aws_call("sagemaker", "DescribeEndpoint", name):
                found = sm.describe_endpoint(EndpointName=name)
            status = found["EndpointStatus"]
            waited = clock() - started
            if status != last:
                reporter.message(f"{name}: {status} after {waited:.0f} s")
                last = status
            reporter.update(int(waited), status=status)
            if status == "InService":
                return found
            if status in ("Failed", "OutOfService", "Deleting"):
                reason = found.get("FailureReason") or "no reason given"
                tail = _log_tail(logs, name) if logs is not None else ""
                raise DeployError(
                    f"endpoint {name} is {status}: {reason}{tail}\nFix the cause, then "
                    f"`llmship destroy {name}` and deploy again"
                )
            if waited >= timeout_seconds:
                raise DeployError(
                    f"endpoint {name} is still {status} after {waited:.0f} s; it goes on in "
                    "AWS: follow it with `llmship status`, or `llmship destroy` it"
                )
            sleep(poll_seconds)
    finally:
        reporter.finish()
