"""SageMaker deploys against moto in server mode: what plan/apply create (every field that
matters, tags, state), what destroy removes, and the errors users hit first.

moto has no failing endpoints and no IAM enforcement, so two tests use botocore's Stubber
on a real sagemaker client: DescribeEndpoint (an endpoint going Failed) and CreateModel
(AccessDeniedException). moto lacks UpdateEndpoint: the update tests replace
update.start_update / update.wait_for_update, whose own tests use the Stubber.
"""

from __future__ import annotations

import io
import shutil
import tarfile
import time
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from llmship.aws.s3 import ensure_bucket
from llmship.config.loader import load_config_dict
from llmship.config.schema import AwsConfig
from llmship.errors import AwsError, ConfigError, DeployError
from llmship.progress import RecordingReporter
from llmship.runs import RunDir
from llmship.sagemaker import names
from llmship.state import StateStore
from llmship.target import request_for
from llmship.targets.sagemaker.apply import wait_for_endpoint
from llmship.targets.sagemaker.network import VPC_ENDPOINT_KIND
from llmship.targets.sagemaker.target import (
    CONFIG_KIND,
    ENDPOINT_KIND,
    MODEL_KIND,
    S3_KIND,
    SageMakerTarget,
)
from llmship.targets.sagemaker.update import UpdateOutcome

REGION = "us-west-2"
ROLE = "arn:aws:iam::123456789012:role/llmship-sagemaker"
RUN_ID = "20260101-120000"


@pytest.fixture(autouse=True)
def quota(monkeypatch):
    """moto has no Service Quotas listing; the check's answer is set here (quotas.py has its
    own tests)."""
    from llmship.targets.sagemaker import quotas

    answer = {"limit": 10.0}

    def check(session, instance_type, count, usage="endpoint"):
        ok = answer["limit"] >= count
        return quotas.QuotaCheck(
            ok,
            f"{instance_type} for endpoint usage",
            "L-1",
            answer["limit"],
            count,
            "within quota" if ok else "request an increase of L-1",
        )

    monkeypatch.setattr(quotas, "check_instance_quota", check)
    return answer


@pytest.fixture()
def bucket(aws_env):
    name = f"llmship-test-{time.time_ns()}"
    ensure_bucket(boto3.client("s3", region_name=REGION), name, REGION, {})
    return name


@pytest.fixture(scope="module")
def run_root(tmp_path_factory, tiny_llama) -> Path:
    """A run directory whose model/ is the tiny llama (what training leaves)."""
    root = tmp_path_factory.mktemp("runs") / RUN_ID
    shutil.copytree(tiny_llama, root / "model")
    (root / "config.yaml").write_text("project: {name: t}\n")
    return root


def fresh_run(run_root: Path, tmp_path: Path) -> RunDir:
    root = tmp_path / RUN_ID
    shutil.copytree(run_root, root)
    return RunDir(root)


def ensure_role() -> str:
    """ROLE in moto: a deploy that needs more than the project bucket (a VPC, an SNS
    topic) puts an inline policy on it."""
    iam = boto3.client("iam", region_name=REGION)
    name = ROLE.rsplit("/", 1)[-1]
    if name not in {r["RoleName"] for r in iam.list_roles()["Roles"]}:
        iam.create_role(RoleName=name, AssumeRolePolicyDocument="{}")
    return ROLE


def loaded(tmp_path, deploy: dict, aws: dict | None = None, project: str = "demo"):
    tree = {
        "project": {"name": project},
        "model": {"name_or_path": "tiny", "max_length": 256},
        "data": {"source": "d.jsonl"},
        "deploy": {"target": "sagemaker", **deploy},
        "aws": {"region": REGION, **(aws or {})},
    }
    return load_config_dict(tree, base_dir=tmp_path, env={})


_SESSION: list[boto3.Session] = []


def shared_session() -> boto3.Session:
    """One session for the file: botocore loads each service model once per session."""
    if not _SESSION:
        _SESSION.append(boto3.Session(region_name=REGION))
    return _SESSION[0]


def target(store, config, **options) -> SageMakerTarget:
    options.setdefault("session", shared_session())
    options.setdefault("sleep", lambda s: None)
    options.setdefault("poll_seconds", 0.01)
    return SageMakerTarget(store, config.config.aws, **options)


def unique(prefix: str) -> str:
    return f"{prefix}-{time.time_ns() % 10**9}"


def sm():
    return shared_session().client("sagemaker")


def tags_of(arn: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in sm().list_tags(ResourceArn=arn)["Tags"]}


def counts() -> tuple[int, int, int]:
    client = sm()
    return (
        len(client.list_models(MaxResults=100)["Models"]),
        len(client.list_endpoint_configs(MaxResults=100)["EndpointConfigs"]),
        len(client.list_endpoints(MaxResults=100)["Endpoints"]),
    )


def test_realtime_deploy_creates_tagged_model_config_and_endpoint(
    store, bucket, run_root, tmp_path
):
    name = unique("rt")
    config = loaded(
        tmp_path,
        {
            "name": name,
            "instance_type": "ml.g4dn.xlarge",
            "instance_count": 2,
            "model_download_timeout_s": 900,
            "startup_health_check_timeout_s": 600,
            "environment": {"LOG_LEVEL": "debug"},
        },
        {"bucket": bucket, "role_arn": ROLE},
    )
    run = fresh_run(run_root, tmp_path)
    chosen = target(store, config)
    plan = chosen.plan(request_for(config, run))
    assert plan.problems == [] and plan.bills_hourly
    assert plan.cost.hourly_usd == pytest.approx(2 * 0.736)
    assert plan.cost.monthly_usd == pytest.approx(2 * 0.736 * 730, rel=1e-3)
    reporter = RecordingReporter()
    deployed = chosen.apply(plan, reporter=reporter)
    assert deployed.status == "InService" and deployed.address == name

    endpoint = sm().describe_endpoint(EndpointName=name)
    assert endpoint["EndpointStatus"] == "InService"
    config_name = endpoint["EndpointConfigName"]
    assert config_name.startswith(f"{name}-") and len(config_name) == len(name) + 15
    variant = sm().describe_endpoint_config(EndpointConfigName=config_name)["ProductionVariants"][0]
    assert variant["InstanceType"] == "ml.g4dn.xlarge"
    assert variant["InitialInstanceCount"] == 2
    assert variant["ModelDataDownloadTimeoutInSeconds"] == 900
    assert variant["ContainerStartupHealthCheckTimeoutInSeconds"] == 600
    model = sm().describe_model(ModelName=variant["ModelName"])
    container = model["PrimaryContainer"]
    key = f"llmship/demo/{name}/{RUN_ID}/model.tar.gz"
    assert container["ModelDataUrl"] == f"s3://{bucket}/{key}"
    assert "huggingface-pytorch-inference" in container["Image"]
    assert "transformers4.51.3-gpu" in container["Image"]
    assert container["Environment"] == {"LOG_LEVEL": "debug"}
    assert model["ExecutionRoleArn"] == ROLE

    expected = {"llmship:project": "demo", "llmship:deployment": name, "llmship:run": RUN_ID}
    assert tags_of(endpoint["EndpointArn"]) == expected
    assert tags_of(model["ModelArn"]) == expected
    config_arn = sm().describe_endpoint_config(EndpointConfigName=config_name)["EndpointConfigArn"]
    assert tags_of(config_arn) == expected

    uploaded = boto3.client("s3", region_name=REGION).get_object(Bucket=bucket, Key=key)
    with tarfile.open(fileobj=io.BytesIO(uploaded["Body"].read()), mode="r:gz") as archive:
        assert "code/inference.py" in [m.name.removeprefix("./") for m in archive.getmembers()]
    recorded = {(r.kind, r.name): r for r in store.resources(name)}
    assert set(recorded) == {
        (S3_KIND, f"s3://{bucket}/{key}"),
        (MODEL_KIND, variant["ModelName"]),
        (CONFIG_KIND, config_name),
        (ENDPOINT_KIND, name),
    }
    assert all(r.status == "UP" for r in recorded.values())
    assert recorded[(ENDPOINT_KIND, name)].details["instance_type"] == "ml.g4dn.xlarge"
    assert ("message", f"{name}: InService after 0 s") in [
        (kind, text.split(" after ")[0] + " after 0 s") for kind, text in reporter.events
        if kind == "message" and text.startswith(f"{name}:")
    ]  # fmt: skip

    status = chosen.status(name, store.resources(name))
    assert (status.state, status.instance) == ("InService", "2 x ml.g4dn.xlarge")
    assert status.hourly_usd == pytest.approx(1.472)

    before = counts()
    deleted = chosen.destroy(name)
    assert f"{ENDPOINT_KIND} {name}" in deleted
    assert counts() == (before[0] - 1, before[1] - 1, before[2] - 1)
    assert [r.kind for r in store.resources(name)] == [S3_KIND]  # kept without --purge
    assert chosen.destroy(name) == []  # a second run is a no-op
    chosen.destroy(name, purge=True)
    assert store.resources(name) == []
    listed = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=bucket)
    assert listed.get("KeyCount", 0) == 0


def test_uncompressed_artifact_is_served_from_an_s3_prefix(store, bucket, run_root, tmp_path):
    name = unique("flat")
    config = loaded(
        tmp_path,
        {"name": name, "instance_type": "ml.m5.xlarge"},
        {"bucket": bucket, "role_arn": ROLE},
    )
    tree = config.snapshot | {"package": {"format": "uncompressed"}}
    config = load_config_dict(tree, base_dir=tmp_path, env={})
    chosen = target(store, config)
    chosen.apply(chosen.plan(request_for(config, fresh_run(run_root, tmp_path))))
    config_name = sm().describe_endpoint(EndpointName=name)["EndpointConfigName"]
    model_name = sm().describe_endpoint_config(EndpointConfigName=config_name)[
        "ProductionVariants"
    ][0]["ModelName"]
    container = sm().describe_model(ModelName=model_name)["PrimaryContainer"]
    prefix = f"llmship/demo/{name}/{RUN_ID}/model/"
    assert container["ModelDataSource"] == {
        "S3DataSource": {
            "S3Uri": f"s3://{bucket}/{prefix}",
            "S3DataType": "S3Prefix",
            "CompressionType": "None",
        }
    }
    assert "ModelDataUrl" not in container
    assert "-cpu-" in container["Image"]  # ml.m5 has no GPU
    keys = {
        o["Key"][len(prefix) :]
        for o in boto3.client("s3", region_name=REGION).list_objects_v2(
            Bucket=bucket, Prefix=prefix
        )["Contents"]
    }
    assert {"config.json", "code/inference.py", "llmship.json"} <= keys
    chosen.destroy(name, purge=True)
    assert store.resources(name) == []


def test_serverless_deploy_has_serverless_config_and_no_hourly_price(store, bucket, tmp_path):
    name = unique("sl")
    model_data = f"s3://{bucket}/given/model.tar.gz"
    config = loaded(
        tmp_path,
        {
            "name": name,
            "kind": "serverless",
            "model_data": model_data,
            "serverless": {"memory_mb": 3072, "max_concurrency": 20, "provisioned_concurrency": 2},
        },
        {"bucket": bucket, "role_arn": ROLE},
    )
    chosen = target(store, config)
    plan = chosen.plan(request_for(config, None))
    assert plan.cost.hourly_usd is None and not plan.bills_hourly
    assert "per request" in plan.cost.describe() and "2 provisioned" in plan.cost.describe()
    chosen.apply(plan)
    config_name = sm().describe_endpoint(EndpointName=name)["EndpointConfigName"]
    variant = sm().describe_endpoint_config(EndpointConfigName=config_name)["ProductionVariants"][0]
    assert variant["ServerlessConfig"] == {
        "MemorySizeInMB": 3072,
        "MaxConcurrency": 20,
        "ProvisionedConcurrency": 2,
    }
    assert "InstanceType" not in variant
    model = sm().describe_model(ModelName=variant["ModelName"])["PrimaryContainer"]
    assert model["ModelDataUrl"] == model_data and "-cpu-" in model["Image"]
    assert [r.kind for r in store.resources(name)] == [MODEL_KIND, CONFIG_KIND, ENDPOINT_KIND]
    chosen.destroy(name)
    assert store.resources(name) == []


def test_async_deploy_writes_to_the_deployments_prefix(store, bucket, tmp_path):
    name = unique("as")
    ensure_role()
    boto3.client("sns", region_name=REGION).create_topic(Name="errors")
    config = loaded(
        tmp_path,
        {
            "name": name,
            "kind": "async",
            "instance_type": "ml.g4dn.xlarge",
            "model_data": f"s3://{bucket}/given/model/",
            "async_inference": {
                "max_concurrent_invocations": 4,
                "sns_error_topic": "arn:aws:sns:us-west-2:123456789012:errors",
            },
        },
        {"bucket": bucket, "role_arn": ROLE},
    )
    chosen = target(store, config)
    plan = chosen.plan(request_for(config, None))
    assert "1 GB per request (S3 object), up to 3600 s" in plan.limits.summary()
    chosen.apply(plan)
    config_name = sm().describe_endpoint(EndpointName=name)["EndpointConfigName"]
    described = sm().describe_endpoint_config(EndpointConfigName=config_name)
    assert described["AsyncInferenceConfig"] == {
        "OutputConfig": {
            "S3OutputPath": f"s3://{bucket}/llmship/demo/{name}/async-output/",
            "S3FailurePath": f"s3://{bucket}/llmship/demo/{name}/async-failures/",
            "NotificationConfig": {"ErrorTopic": "arn:aws:sns:us-west-2:123456789012:errors"},
        },
        "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 4},
    }
    chosen.destroy(name)


def test_vpc_deploy_finds_no_route_to_s3_and_creates_a_gateway_endpoint(store, bucket, tmp_path):
    ensure_role()
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName=unique("g"), Description="d", VpcId=vpc)["GroupId"]
    name = unique("vpc")
    deploy = {
        "name": name,
        "instance_type": "ml.m5.xlarge",
        "model_data": f"s3://{bucket}/given/model.tar.gz",
        "vpc": {"subnets": [subnet], "security_groups": [group]},
    }
    config = loaded(tmp_path, deploy, {"bucket": bucket, "role_arn": ROLE})
    chosen = target(store, config)
    plan = chosen.plan(request_for(config, None))
    assert plan.network is not None and not plan.network.ok
    assert any("--create-s3-endpoint" in p for p in plan.problems)
    with pytest.raises(DeployError, match="no S3 gateway endpoint and no NAT route"):
        chosen.apply(plan)
    assert store.resources(name) == []

    deploy["vpc"]["create_s3_endpoint"] = True
    config = loaded(tmp_path, deploy, {"bucket": bucket, "role_arn": ROLE})
    plan = chosen.plan(request_for(config, None))
    assert plan.problems == [] and any(a.kind == VPC_ENDPOINT_KIND for a in plan.actions)
    chosen.apply(plan)
    endpoint_id = next(r.name for r in store.resources(name) if r.kind == VPC_ENDPOINT_KIND)
    found = ec2.describe_vpc_endpoints(VpcEndpointIds=[endpoint_id])["VpcEndpoints"][0]
    assert found["ServiceName"] == f"com.amazonaws.{REGION}.s3"
    assert found["VpcEndpointType"] == "Gateway"
    assert {t["Key"]: t["Value"] for t in found["Tags"]}["llmship:deployment"] == name
    config_name = sm().describe_endpoint(EndpointName=name)["EndpointConfigName"]
    model_name = sm().describe_endpoint_config(EndpointConfigName=config_name)[
        "ProductionVariants"
    ][0]["ModelName"]
    assert sm().describe_model(ModelName=model_name)["VpcConfig"] == {
        "SecurityGroupIds": [group],
        "Subnets": [subnet],
    }
    # a second plan sees the endpoint it made
    again = chosen.plan(request_for(config, None))
    assert again.network.ok and again.network.s3_endpoint == endpoint_id

    chosen.destroy(name)
    assert store.resources(name) == []
    left = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [vpc]}])
    assert [e for e in left["VpcEndpoints"] if e.get("State") != "deleted"] == []


def test_plan_creates_nothing(store, bucket, run_root, tmp_path):
    name = unique("plan")
    config = loaded(tmp_path, {"name": name}, {"bucket": bucket, "role_arn": ROLE})
    before = counts()
    plan = target(store, config).plan(request_for(config, fresh_run(run_root, tmp_path)))
    assert plan.instance and plan.instance_reason  # recommended, with the reason
    assert [a.verb for a in plan.actions] == ["create"] * 4
    assert counts() == before
    assert store.resources() == []
    assert boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_destroy_finishes_a_half_deleted_deployment(store, bucket, tmp_path):
    name = unique("half")
    config = loaded(
        tmp_path,
        {"name": name, "instance_type": "ml.m5.xlarge", "model_data": f"s3://{bucket}/m.tar.gz"},
        {"bucket": bucket, "role_arn": ROLE},
    )
    chosen = target(store, config)
    chosen.apply(chosen.plan(request_for(config, None)))
    sm().delete_endpoint(EndpointName=name)  # gone behind llmship's back
    model = next(r.name for r in store.resources(name) if r.kind == MODEL_KIND)
    sm().delete_model(ModelName=model)
    gone = chosen.refresh(store.resources(name))
    assert {r.kind for r in gone} == {ENDPOINT_KIND, MODEL_KIND}
    assert [r.kind for r in store.resources(name)] == [CONFIG_KIND]
    chosen.destroy(name)
    assert store.resources(name) == []
    assert chosen.destroy(name) == []


def test_redeploy_updates_and_reports_a_silent_rollback(store, bucket, tmp_path, monkeypatch):
    from llmship.targets.sagemaker import update

    name = unique("upd")
    config = loaded(
        tmp_path,
        {"name": name, "instance_type": "ml.m5.xlarge", "model_data": f"s3://{bucket}/m.tar.gz"},
        {"bucket": bucket, "role_arn": ROLE},
    )
    chosen = target(store, config)
    chosen.apply(chosen.plan(request_for(config, None)))
    first = sm().describe_endpoint(EndpointName=name)["EndpointConfigName"]
    started = []
    monkeypatch.setattr(update, "start_update", lambda sm, **kw: started.append(kw))
    monkeypatch.setattr(
        update,
        "wait_for_update",
        lambda sm, **kw: UpdateOutcome(first, True, "InService", None),
    )
    plan = chosen.plan(request_for(config, None))
    assert [(a.verb, a.kind) for a in plan.actions][-1] == ("change", ENDPOINT_KIND)
    with pytest.raises(DeployError, match=f"ROLLED BACK.*{first}"):
        chosen.apply(plan)
    assert started[0]["new_config_name"] == plan.spec.config_name != first
    assert started[0]["policy"].strategy == "all-at-once"

    monkeypatch.setattr(
        update,
        "wait_for_update",
        lambda sm, **kw: UpdateOutcome(kw["intended_config_name"], False, "InService", None),
    )
    plan = chosen.plan(request_for(config, None))
    chosen.apply(plan)
    endpoint = next(r for r in store.resources(name) if r.kind == ENDPOINT_KIND)
    assert endpoint.details["config"] == plan.spec.config_name
    chosen.destroy(name)
    assert store.resources(name) == []  # the unused versions went too


def test_missing_role_and_bucket_are_named_before_anything_is_created(
    store, aws_env, run_root, tmp_path
):
    config = loaded(tmp_path, {"name": "norole"}, {"bucket": "llmship-no-such-bucket"})
    chosen = target(store, config)
    before = counts()
    plan = chosen.plan(request_for(config, fresh_run(run_root, tmp_path)))
    text = "\n".join(plan.problems)
    assert "aws.role_arn is not set" in text and "llmship aws bootstrap" in text
    assert "bucket llmship-no-such-bucket does not exist" in text
    with pytest.raises(DeployError, match=r"aws\.role_arn"):
        chosen.apply(plan)
    assert counts() == before and store.resources() == []


def test_bad_names_and_serverless_limits_are_refused(store, aws_env, tmp_path):
    with pytest.raises(ConfigError, match=r"deploy\.name"):
        loaded(tmp_path, {"name": "bad_name"})
    with pytest.raises(ConfigError, match=r"deploy\.name"):
        loaded(tmp_path, {"name": "x" * 49})
    with pytest.raises(ConfigError, match=r"deploy\.serverless\.memory_mb.*multiple of 1024"):
        loaded(tmp_path, {"kind": "serverless", "serverless": {"memory_mb": 1500}})
    with pytest.raises(ConfigError, match=r"deploy\.serverless\.memory_mb.*6144"):
        loaded(tmp_path, {"kind": "serverless", "serverless": {"memory_mb": 8192}})
    with pytest.raises(ConfigError, match=r"deploy\.serverless\.max_concurrency"):
        loaded(tmp_path, {"kind": "serverless", "serverless": {"max_concurrency": 201}})
    with pytest.raises(DeployError, match=r"project\.name"):
        names.check_name("-bad-", "project.name")
    cases = {
        "have no GPUs": {"instance_type": "ml.g4dn.xlarge"},
        "cannot run in a VPC": {"vpc": {"subnets": ["subnet-1"], "security_groups": ["sg-1"]}},
    }
    for message, extra in cases.items():
        config = loaded(
            tmp_path,
            {"name": "sl", "kind": "serverless", "model_data": "s3://bkt/m.tar.gz", **extra},
            {"role_arn": ROLE, "bucket": "bkt"},
        )
        with pytest.raises(DeployError, match=message):
            target(store, config).plan(request_for(config, None))
    package = "arn:aws:sagemaker:us-west-2:123456789012:model-package/m/1"
    config = loaded(
        tmp_path,
        {"name": "sl", "kind": "serverless", "model_package_arn": package},
        {"role_arn": ROLE},
    )
    with pytest.raises(DeployError, match="cannot serve model packages"):
        target(store, config).plan(request_for(config, None))


def test_model_package_deploys_by_arn(store, aws_env, tmp_path):
    name = unique("pkg")
    arn = "arn:aws:sagemaker:us-west-2:865070037744:model-package/llama-marketplace"
    config = loaded(
        tmp_path,
        {"name": name, "model_package_arn": arn, "instance_type": "ml.g4dn.xlarge"},
        {"role_arn": ROLE},
    )
    chosen = target(store, config)
    plan = chosen.plan(request_for(config, None))
    assert plan.spec.model_request["PrimaryContainer"] == {"ModelPackageName": arn}
    assert plan.spec.model_request["EnableNetworkIsolation"] is True  # another account's
    chosen.apply(plan)
    model = next(r.name for r in store.resources(name) if r.kind == MODEL_KIND)
    assert sm().describe_model(ModelName=model)["PrimaryContainer"]["ModelPackageName"] == arn
    chosen.destroy(name)


def test_tgi_refuses_an_artifact_without_a_fast_tokenizer(store, bucket, run_root, tmp_path):
    run = fresh_run(run_root, tmp_path)
    (run.model / "tokenizer.json").unlink(missing_ok=True)
    name = unique("tgi")
    config = loaded(
        tmp_path,
        {"name": name, "container": "tgi", "instance_type": "ml.g4dn.xlarge"},
        {"bucket": bucket, "role_arn": ROLE},
    )
    chosen = target(store, config)
    plan = chosen.plan(request_for(config, run))
    env = plan.spec.model_request["PrimaryContainer"]["Environment"]
    assert env["HF_MODEL_ID"] == "/opt/ml/model" and env["SM_NUM_GPUS"] == "1"
    before = counts()
    with pytest.raises(DeployError, match=r"tokenizer\.json"):
        chosen.apply(plan)
    assert counts() == before


def test_access_denied_is_an_aws_error_naming_the_call(store, bucket, tmp_path):
    """Stubber: moto's server does not enforce IAM here; CreateModel answers AccessDenied."""
    real = shared_session()
    stubbed = real.client("sagemaker")
    stubber = Stubber(stubbed)
    stubber.add_client_error(
        "describe_endpoint", "ValidationException", "Could not find endpoint 'x'."
    )
    stubber.add_client_error(
        "create_model",
        "AccessDeniedException",
        "User is not authorized to perform: sagemaker:CreateModel",
        http_status_code=400,
    )
    stubber.activate()

    class Session:
        region_name = REGION

        def client(self, service, config=None):
            return stubbed if service == "sagemaker" else real.client(service, config=config)

    name = unique("denied")
    config = loaded(
        tmp_path,
        {"name": name, "instance_type": "ml.m5.xlarge", "model_data": f"s3://{bucket}/m.tar.gz"},
        {"bucket": bucket, "role_arn": ROLE},
    )
    chosen = target(store, config, session=Session())
    plan = chosen.plan(request_for(config, None))
    # the refusal names the IAM action llmship's policy grants for the call, and where
    needs = r"CreateModel.*AccessDeniedException.*needs IAM sagemaker:CreateModel \(granted by "
    with pytest.raises(AwsError, match=needs):
        chosen.apply(plan)
    # the record written before the call remains for destroy
    assert [(r.kind, r.status) for r in store.resources(name)] == [(MODEL_KIND, "CREATING")]
    stubber.assert_no_pending_responses()


def test_failed_endpoint_shows_failure_reason_and_container_logs(aws_env):
    """Stubber: moto endpoints never fail; the logs are real (moto CloudWatch Logs)."""
    name = unique("failed")
    logs = boto3.client("logs", region_name=REGION)
    group = names.endpoint_log_group(name)
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="AllTraffic/i-0")
    now = int(time.time() * 1000)
    lines = ["loading model", "ModuleNotFoundError: No module named 'flash_attn'"]
    logs.put_log_events(
        logGroupName=group,
        logStreamName="AllTraffic/i-0",
        logEvents=[{"timestamp": now + i, "message": m} for i, m in enumerate(lines)],
    )
    client = boto3.client("sagemaker", region_name=REGION)
    stubber = Stubber(client)
    base = {
        "EndpointName": name,
        "EndpointArn": f"arn:aws:sagemaker:us-west-2:123456789012:endpoint/{name}",
        "CreationTime": "2026-01-01T00:00:00Z",
        "LastModifiedTime": "2026-01-01T00:00:00Z",
    }
    stubber.add_response("describe_endpoint", {**base, "EndpointStatus": "Creating"})
    stubber.add_response(
        "describe_endpoint",
        {
            **base,
            "EndpointStatus": "Failed",
            "FailureReason": "The primary container for production variant AllTraffic did "
            "not pass the ping health check.",
        },
    )
    stubber.activate()
    slept, now = [], [0.0]

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    reporter = RecordingReporter()
    with pytest.raises(DeployError) as caught:
        wait_for_endpoint(
            client,
            name,
            logs=logs,
            reporter=reporter,
            poll_seconds=30,
            sleep=sleep,
            clock=lambda: now[0],
        )
    message = str(caught.value)
    assert "did not pass the ping health check" in message
    assert "No module named 'flash_attn'" in message and "loading model" in message
    assert f"llmship destroy {name}" in message
    assert slept == [30]
    assert [e for e in reporter.events if e[0] == "message"] == [
        ("message", f"{name}: Creating after 0 s"),
        ("message", f"{name}: Failed after 30 s"),
    ]
    assert reporter.events[-1] == ("finish", None)


def test_status_flags_idle_endpoints_and_counts_spend(store, bucket, tmp_path):
    name = unique("idle")
    config = loaded(
        tmp_path,
        {"name": name, "instance_type": "ml.m5.xlarge", "model_data": f"s3://{bucket}/m.tar.gz"},
        {"bucket": bucket, "role_arn": ROLE},
    )
    chosen = target(store, config)
    chosen.apply(chosen.plan(request_for(config, None)))
    created = next(r for r in store.resources(name) if r.kind == ENDPOINT_KIND).created
    later = target(store, config, now=lambda: created + 2 * 3600)
    row = later.status(name, store.resources(name), idle_hours=24)
    assert row.state == "InService" and row.idle is True
    assert row.spent_usd == pytest.approx(2 * 0.23, abs=0.01)
    assert any("no invocations in 24 h" in note for note in row.notes)
    later.destroy(name)


def test_aws_settings_reach_the_session(aws_env):
    """The region of a recorded resource picks the session, whatever the config says."""
    chosen = SageMakerTarget(StateStore(":memory:"), AwsConfig(region="eu-west-1"))
    assert chosen.session().region_name == "eu-west-1"
    assert chosen.session("us-east-2").region_name == "us-east-2"


def test_ttl_and_autoscaling_follow_in_service_and_go_with_destroy(store, bucket, tmp_path):
    name = unique("ttl")
    config = loaded(
        tmp_path,
        {
            "name": name,
            "instance_type": "ml.m5.xlarge",
            "model_data": f"s3://{bucket}/m.tar.gz",
            "ttl": "8h",
            "autoscaling": {"enabled": True, "min": 1, "max": 3},
        },
        {"bucket": bucket, "role_arn": ROLE},
    )
    chosen = target(store, config)
    plan = chosen.plan(request_for(config, None))
    assert {"scheduler:schedule", "autoscaling:target"} <= {a.kind for a in plan.actions}
    deployed = chosen.apply(plan)
    assert any("deletion scheduled" in m for m in deployed.messages)
    row = chosen.status(name, store.resources(name))
    assert 7.9 * 3600 < row.ttl_left.total_seconds() <= 8 * 3600
    scaling = shared_session().client("application-autoscaling")
    targets = scaling.describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=[f"endpoint/{name}/variant/AllTraffic"]
    )["ScalableTargets"]
    assert [(t["MinCapacity"], t["MaxCapacity"]) for t in targets] == [(1, 3)]
    chosen.destroy(name)
    assert store.resources(name) == []
    assert (
        scaling.describe_scalable_targets(
            ServiceNamespace="sagemaker", ResourceIds=[f"endpoint/{name}/variant/AllTraffic"]
        )["ScalableTargets"]
        == []
    )


# ---- destroy revokes the execution role's grant only once the endpoint is gone ---------

# DeleteEndpoint only starts the deletion: DescribeEndpoint then answers "Deleting" until
# the endpoint is gone, then SageMaker's "Could not find endpoint" (aws/amazon-sagemaker-
# examples#2402). SageMaker removes a VPC endpoint's network interfaces with the execution
# role's EC2 permissions meanwhile (SageMaker Developer Guide, "Give SageMaker AI access to
# resources in your Amazon VPC").
ENDPOINT_GONE = (
    "ValidationException",
    f'Could not find endpoint "arn:aws:sagemaker:{REGION}:123456789012:endpoint/ep".',
)


def _deleting(name: str = "ep") -> dict:
    return {
        "EndpointName": name,
        "EndpointArn": f"arn:aws:sagemaker:{REGION}:123456789012:endpoint/{name}",
        "EndpointConfigName": "cfg",
        "EndpointStatus": "Deleting",
        "CreationTime": 0,
        "LastModifiedTime": 0,
    }


def _granted_endpoint(store, calls: list[str]):
    """An endpoint `ep` recorded with the execution role's deploy grant (moto IAM), and a
    target whose sagemaker (Stubber) and iam clients append each call's name to `calls`."""
    from llmship.aws.role_grants import RoleGrant, put_grant

    iam = boto3.client("iam", region_name=REGION)
    role = f"exec-{time.time_ns()}"
    trust = '{"Version": "2012-10-17", "Statement": []}'
    arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    grant = RoleGrant(arn, "llmship-deploy-ep", [{"Effect": "Allow", "Action": "ec2:*",
                                                  "Resource": "*"}])  # fmt: skip
    put_grant(
        iam,
        grant,
        store=store,
        deployment="ep",
        project="p",
        details={"endpoint": "ep", "endpoint_region": REGION},
    )
    store.record_creating(ENDPOINT_KIND, "ep", "ep", "p", REGION)
    store.set_status(ENDPOINT_KIND, "ep", "UP", REGION)
    sm = boto3.client("sagemaker", region_name=REGION)
    for made in (sm, iam):
        made.meta.events.register(
            "before-parameter-build", lambda model, **_: calls.append(model.name)
        )
    ticks = iter(range(0, 100_000, 30))
    chosen = SageMakerTarget(
        store,
        AwsConfig(region=REGION),
        sleep=lambda s: None,
        clock=lambda: next(ticks),
        poll_seconds=30,
        delete_timeout_seconds=90,
    )
    chosen._clients.update({("sagemaker", REGION): sm, ("iam", ""): iam})
    return chosen, Stubber(sm), iam, role


def test_destroy_revokes_the_role_grant_only_after_the_endpoint_is_gone(aws_env, store):
    calls: list[str] = []
    chosen, stub, iam, role = _granted_endpoint(store, calls)
    stub.add_response("delete_endpoint", {}, {"EndpointName": "ep"})
    stub.add_response("describe_endpoint", _deleting(), {"EndpointName": "ep"})
    stub.add_client_error("describe_endpoint", *ENDPOINT_GONE, 400, {"EndpointName": "ep"})
    with stub:
        deleted = chosen.destroy("ep")
        stub.assert_no_pending_responses()
    assert calls == ["DeleteEndpoint", "DescribeEndpoint", "DescribeEndpoint", "DeleteRolePolicy"]
    assert f"iam:role-policy {role}/llmship-deploy-ep" in deleted
    assert iam.list_role_policies(RoleName=role)["PolicyNames"] == []
    assert store.resources("ep") == []


def test_destroy_keeps_the_grant_of_an_endpoint_still_deleting(aws_env, store, caplog):
    calls: list[str] = []
    chosen, stub, iam, role = _granted_endpoint(store, calls)
    stub.add_response("delete_endpoint", {}, {"EndpointName": "ep"})
    for _ in range(3):  # each clock reading is 30 s on: the third reaches the 90 s bound
        stub.add_response("describe_endpoint", _deleting(), {"EndpointName": "ep"})
    with stub:
        chosen.destroy("ep")
        stub.assert_no_pending_responses()
    assert "DeleteRolePolicy" not in calls
    assert iam.list_role_policies(RoleName=role)["PolicyNames"] == ["llmship-deploy-ep"]
    [kept] = store.resources("ep")
    assert kept.kind == "iam:role-policy" and "still Deleting after 90 s" in kept.details["kept"]
    assert "run `llmship destroy ep` again" in caplog.text

    stub.add_client_error("describe_endpoint", *ENDPOINT_GONE, 400, {"EndpointName": "ep"})
    with stub:  # the next destroy finishes
        chosen.destroy("ep")
    assert iam.list_role_policies(RoleName=role)["PolicyNames"] == []
    assert store.resources("ep") == []
