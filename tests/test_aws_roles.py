"""What the service roles need for the settings that reach outside their standing policies,
judged with llmship's policy evaluator, against AWS's documented behaviour:

- A new role is not assumable at once: Bedrock answers CreateModelCustomizationJob and
  CreateModelImportJob with "ValidationException: Could not assume provided IAM role."
  (aws-samples/amazon-bedrock-workshop#367); both creates wait it out as SageMaker's do.
- VPC mode needs the EC2 network-interface actions each service's VPC page lists
  (SageMaker: "Give SageMaker AI access to resources in your Amazon VPC"; Bedrock: "Protect
  model customization jobs using a VPC" / "Protect custom model import jobs using a VPC",
  which scope CreateNetworkInterface by the BedrockManaged and Bedrock<Job>Arn tags).
- Data in another bucket or prefix, SNS topics and KMS keys: the role is granted exactly
  those; another account's bucket answers HeadBucket with ExpectedBucketOwner with
  403 Forbidden (S3 User Guide, "Verifying bucket ownership with bucket owner condition"),
  and its bucket or key policy must change too: the plan names it.

moto serves S3, IAM, SNS, KMS, STS and SageMaker; botocore's Stubber answers the Bedrock
calls moto lacks and the S3 answers only another account gives.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber

from llmship.aws import role_grants
from llmship.aws.iam import is_role_not_assumable
from llmship.aws.policy_eval import evaluate
from llmship.aws.role_grants import (
    SAGEMAKER_VPC_ACTIONS,
    S3Access,
    execution_role_grant,
    plan_grant,
)
from llmship.aws.s3 import ensure_bucket
from llmship.aws.secrets import ROLE_POLICY_KIND
from llmship.config.loader import load_config_dict
from llmship.config.schema import AwsConfig
from llmship.progress import RecordingReporter

REGION = "us-west-2"
ACCOUNT = "123456789012"
OTHER_ACCOUNT = "999999999999"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
# Bedrock's answer while a new role is not yet assumable (aws-samples/amazon-bedrock-workshop#367)
BEDROCK_NOT_ASSUMABLE = "Could not assume provided IAM role."


def new_bucket(session, stem: str = "roles") -> str:
    name = f"{stem}-{time.time_ns()}"
    ensure_bucket(session.client("s3"), name, REGION, {})
    return name


def execution_role(session) -> str:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sagemaker.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    return session.client("iam").create_role(
        RoleName=f"llmship-r{uuid.uuid4().hex[:8]}-sagemaker",
        AssumeRolePolicyDocument=json.dumps(trust),
    )["Role"]["Arn"]


def inline(session, role_arn: str, name: str) -> dict:
    found = session.client("iam").get_role_policy(
        RoleName=role_arn.rsplit("/", 1)[-1], PolicyName=name
    )
    return {name: found["PolicyDocument"]}


def inline_names(session, role_arn: str) -> list[str]:
    iam = session.client("iam")
    return iam.list_role_policies(RoleName=role_arn.rsplit("/", 1)[-1])["PolicyNames"]


def allowed(policies: dict, action: str, resource: str, **context) -> bool:
    return evaluate(policies, action, resource, context).allowed


# ---- item 2: Bedrock waits for a new role ---------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        BEDROCK_NOT_ASSUMABLE,  # Bedrock (aws-samples/amazon-bedrock-workshop#367)
        # SageMaker (awslabs/predictive-maintenance-using-machine-learning#3)
        "Could not assume role arn:aws:iam::123456789012:role/r. Please ensure that the role "
        "exists and allows principal 'sagemaker.amazonaws.com' to assume the role.",
        # EventBridge Scheduler (aws/aws-sdk-js-v3#6494)
        "The execution role you provide must allow AWS EventBridge Scheduler to assume the role.",
        # Lambda CreateFunction, InvalidParameterValueException (boto/boto3#2976)
        ("InvalidParameterValueException", "The role defined for the function cannot be "
         "assumed by Lambda."),
    ],
)  # fmt: skip
def test_each_services_not_assumable_wording_is_recognized(message):
    from botocore.exceptions import ClientError

    code, message = message if isinstance(message, tuple) else ("ValidationException", message)
    error = {"Error": {"Code": code, "Message": message}}
    assert is_role_not_assumable(ClientError(error, "CreateModelCustomizationJob"))
    other = {"Error": {"Code": "ValidationException", "Message": "Requested resource not found."}}
    assert not is_role_not_assumable(ClientError(other, "DescribeTrainingJob"))


def bedrock_config(tmp_path, bucket, **bedrock):
    path = tmp_path / "d.jsonl"
    rows = [{"dialogue": f"A: lunch at {i}?", "summary": f"Lunch at {i}."} for i in range(140)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tree = {
        "project": {"name": f"br{time.time_ns() % 10**10}"},
        "model": {"name_or_path": "tiny"},
        "data": {
            "source": str(path),
            "system_prompt": "Summarize.",
            "validation_fraction": 0.1,
            "test_fraction": 0.05,
        },
        "train": {"epochs": 2, "learning_rate": 1e-4, "target": "bedrock"},
        "deploy": {"target": "bedrock-import"},
        "aws": {"region": REGION, "bucket": bucket},
        "bedrock": bedrock,
    }
    return load_config_dict(tree, base_dir=tmp_path, env={})


def test_customization_job_waits_for_a_new_role_and_gets_bedrocks_vpc_permissions(
    tmp_path, session, store, monkeypatch
):
    """CreateModelCustomizationJob refused once with Bedrock's "not assumable" answer is
    retried and succeeds; the role gets the VPC page's statements for customization jobs."""
    from llmship.bedrock import customize

    bucket = new_bucket(session)
    vpc = {"subnets": ["subnet-0a1b2c3d"], "security_groups": ["sg-0a1b2c3d"]}
    loaded = bedrock_config(tmp_path, bucket, vpc=vpc)
    project = loaded.config.project.name
    stubbed = session.client("bedrock")
    real_client = customize.client
    monkeypatch.setattr(
        customize, "client", lambda s, name: stubbed if name == "bedrock" else real_client(s, name)
    )
    monkeypatch.setattr(customize, "_finish_run", lambda *args: None)
    job_arn = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:model-customization-job/abc"
    sleeps: list[float] = []
    with Stubber(stubbed) as stubber:
        stubber.add_client_error(
            "create_model_customization_job", "ValidationException", BEDROCK_NOT_ASSUMABLE, 400
        )
        stubber.add_response("create_model_customization_job", {"jobArn": job_arn})
        stubber.add_response(
            "get_model_customization_job",
            {
                "jobArn": job_arn,
                "jobName": "j",
                "outputModelName": "j",
                "roleArn": f"arn:aws:iam::{ACCOUNT}:role/llmship-{project}-bedrock",
                "creationTime": NOW,
                "baseModelArn": "arn:aws:bedrock:us-west-2::foundation-model/m",
                "trainingDataConfig": {"s3Uri": f"s3://{bucket}/t.jsonl"},
                "validationDataConfig": {"validators": []},
                "outputDataConfig": {"s3Uri": f"s3://{bucket}/out/"},
                "status": "Completed",
                "outputModelArn": f"arn:aws:bedrock:{REGION}:{ACCOUNT}:custom-model/m",
            },
        )
        run = customize.train_on_bedrock(
            loaded, reporter=RecordingReporter(), session=session, store=store, sleep=sleeps.append
        )
        stubber.assert_no_pending_responses()
    name = f"{project}-{run.run_id}"
    assert sleeps == [2.0]  # one wait for IAM, then the job was created
    job = next(r for r in store.resources(name) if r.kind == customize.JOB_KIND)
    assert (job.status, job.details["arn"]) == ("UP", job_arn)

    role = f"arn:aws:iam::{ACCOUNT}:role/llmship-{project}-bedrock"
    policy = inline(session, role, f"llmship-bedrock-train-{name}")
    interface = f"arn:aws:ec2:{REGION}:{ACCOUNT}:network-interface/eni-1"
    tags = {
        "aws:RequestTag/BedrockManaged": "true",
        "aws:RequestTag/BedrockModelCustomizationJobArn": job_arn,
    }
    assert allowed(policy, "ec2:CreateNetworkInterface", interface, **tags)
    assert not allowed(policy, "ec2:CreateNetworkInterface", interface)  # untagged: no
    subnet = f"arn:aws:ec2:{REGION}:{ACCOUNT}:subnet/subnet-0a1b2c3d"
    assert allowed(policy, "ec2:CreateNetworkInterface", subnet)
    assert not allowed(policy, "ec2:CreateNetworkInterface", subnet.replace("0a1b", "9999"))
    managed = {
        "ec2:Subnet": subnet,
        "ec2:ResourceTag/BedrockManaged": "true",
        "ec2:ResourceTag/BedrockModelCustomizationJobArn": job_arn,
    }
    assert allowed(policy, "ec2:DeleteNetworkInterface", interface, **managed)
    assert allowed(policy, "ec2:DescribeSubnets", "*")
    assert [r.kind for r in store.resources(name)].count(ROLE_POLICY_KIND) == 1


def write_model(session, bucket: str, prefix: str) -> None:
    s3 = session.client("s3")
    files = {
        "config.json": json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}),
        "model.safetensors": "weights",
        "tokenizer.json": "{}",
        "tokenizer_config.json": "{}",
    }
    for name, text in files.items():
        s3.put_object(Bucket=bucket, Key=f"{prefix}{name}", Body=text.encode())


def test_import_job_waits_for_a_new_role_and_reads_data_kept_elsewhere(tmp_path, session, store):
    """CreateModelImportJob refused with Bedrock's "not assumable" answer is retried; the
    role may read bedrock.import_model_data (another bucket) and run in the VPC; destroy
    removes the grant with the role."""
    from llmship.target import request_for
    from llmship.targets.bedrock_import.target import BedrockImportTarget

    bucket, elsewhere = new_bucket(session), new_bucket(session, "models")
    write_model(session, elsewhere, "llama/")
    vpc = {"subnets": ["subnet-0a1b2c3d"], "security_groups": ["sg-0a1b2c3d"]}
    source = f"s3://{elsewhere}/llama/"
    loaded = bedrock_config(tmp_path, bucket, vpc=vpc, import_model_data=source)
    project = loaded.config.project.name
    sleeps: list[float] = []
    target = BedrockImportTarget(
        store, AwsConfig(region=REGION), session=session, sleep=sleeps.append
    )
    plan = target.plan(request_for(loaded, None))
    assert plan.problems == [] and plan.warnings == []  # our own account's bucket
    grant = next(a for a in plan.actions if a.kind == ROLE_POLICY_KIND)
    assert f"read {source}" in grant.detail and "VPC network interfaces" in grant.detail
    assert store.resources() == []  # planning creates nothing

    stubbed = session.client("bedrock")
    target._clients["bedrock"] = stubbed
    job_arn = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:model-import-job/abcdefghijkl"
    model_arn = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:imported-model/abcdefghijkl"
    with Stubber(stubbed) as stubber:
        stubber.add_client_error(
            "create_model_import_job", "ValidationException", BEDROCK_NOT_ASSUMABLE, 400
        )
        stubber.add_client_error(
            "create_model_import_job", "ValidationException", BEDROCK_NOT_ASSUMABLE, 400
        )
        stubber.add_response("create_model_import_job", {"jobArn": job_arn})
        stubber.add_response(
            "get_model_import_job",
            {"jobArn": job_arn, "status": "Completed", "importedModelArn": model_arn},
        )
        target.apply(plan)
        stubber.assert_no_pending_responses()
    assert sleeps == [2.0, 4.0]

    role = f"arn:aws:iam::{ACCOUNT}:role/llmship-{project}-bedrock"
    policy = inline(session, role, f"llmship-bedrock-import-{plan.deployment}")
    s3 = f"arn:aws:s3:::{elsewhere}"
    assert allowed(policy, "s3:GetObject", f"{s3}/llama/model.safetensors")
    assert not allowed(policy, "s3:GetObject", f"{s3}/other/model.safetensors")
    assert not allowed(policy, "s3:PutObject", f"{s3}/llama/model.safetensors")
    assert allowed(policy, "s3:ListBucket", s3, **{"s3:prefix": "llama/"})
    assert not allowed(policy, "s3:ListBucket", s3, **{"s3:prefix": "other/"})
    interface = f"arn:aws:ec2:{REGION}:{ACCOUNT}:network-interface/eni-1"
    tags = {
        "aws:RequestTag/BedrockManaged": "true",
        "aws:RequestTag/BedrockModelImportJobArn": job_arn,
    }
    assert allowed(policy, "ec2:CreateNetworkInterface", interface, **tags)

    with Stubber(stubbed) as stubber:
        stubber.add_response("delete_imported_model", {}, {"modelIdentifier": model_arn})
        deleted = target.destroy(plan.deployment)
    assert any(d.startswith(ROLE_POLICY_KIND) for d in deleted)
    assert store.resources() == []


# ---- item 3: VPC permissions per role, only with a VPC ----------------------------------


class Vpc:
    def __init__(self, subnets=(), security_groups=()):
        self.subnets, self.security_groups = list(subnets), list(security_groups)


def test_sagemaker_vpc_grant_is_its_pages_nine_actions_only_with_a_vpc(session):
    role = f"arn:aws:iam::{ACCOUNT}:role/r"
    common = {"command": "deploy", "deployment": "d", "bucket": "b"}
    assert execution_role_grant(session, role, vpc=Vpc(), **common) is None
    grant = execution_role_grant(session, role, vpc=Vpc(["subnet-1"], ["sg-1"]), **common)
    policy = {"grant": grant.document}
    granted = {
        action
        for statement in grant.statements
        for action in ([statement["Action"]] if isinstance(statement["Action"], str)
                       else statement["Action"])
    }  # fmt: skip
    assert granted == set(SAGEMAKER_VPC_ACTIONS)
    ec2 = f"arn:aws:ec2:{REGION}:{ACCOUNT}"
    for action in SAGEMAKER_VPC_ACTIONS:
        resource = f"{ec2}:network-interface/eni-1" if "Interface" in action else "*"
        assert allowed(policy, action, resource), action
    assert allowed(policy, "ec2:CreateNetworkInterface", f"{ec2}:subnet/subnet-1")
    assert allowed(policy, "ec2:CreateNetworkInterface", f"{ec2}:security-group/sg-1")
    assert not allowed(policy, "ec2:CreateNetworkInterface", f"{ec2}:subnet/subnet-2")
    assert not any("Bedrock" in json.dumps(s) for s in grant.statements)


def test_training_job_in_a_vpc_grants_the_role_and_destroy_removes_it(session, store, tmp_path):
    from llmship.train.sagemaker_job import _role_grant

    role = execution_role(session)
    bucket = new_bucket(session)

    class Plan:
        role_arn, deployment = role, "p-20260101-120000"

    def config(**sagemaker):
        tree = {
            "project": {"name": "p"},
            "model": {"name_or_path": "tiny"},
            "data": {"source": "d.jsonl"},
            "train": {"sagemaker": sagemaker},
            "aws": {"region": REGION, "bucket": bucket, "role_arn": role},
        }
        return load_config_dict(tree, base_dir=tmp_path, env={})

    Plan.bucket = bucket
    Plan.checkpoint_uri = f"s3://{bucket}/llmship/p/checkpoints/"
    assert _role_grant(session, config(), Plan) is None  # no VPC, data in the bucket
    vpc = {"subnets": ["subnet-1"], "security_groups": ["sg-1"]}
    grant = _role_grant(session, config(vpc=vpc), Plan)
    assert grant.policy_name == "llmship-train-p-20260101-120000"
    assert allowed({"g": grant.document}, "ec2:CreateNetworkInterfacePermission",
                   f"arn:aws:ec2:{REGION}:{ACCOUNT}:network-interface/eni-1")  # fmt: skip

    # a checkpoint URI in another bucket: read (resume) and write (sync), nothing else
    elsewhere = new_bucket(session, "ckpt")
    Plan.checkpoint_uri = f"s3://{elsewhere}/runs/p/"
    grant = _role_grant(session, config(), Plan)
    policy = {"g": grant.document}
    objects = f"arn:aws:s3:::{elsewhere}"
    assert allowed(policy, "s3:PutObject", f"{objects}/runs/p/checkpoint-1/model.safetensors")
    assert allowed(policy, "s3:GetObject", f"{objects}/runs/p/checkpoint-1/model.safetensors")
    assert allowed(policy, "s3:ListBucket", objects, **{"s3:prefix": "runs/p/"})
    assert not allowed(policy, "s3:PutObject", f"{objects}/runs/q/x")
    assert not allowed(policy, "s3:DeleteObject", f"{objects}/runs/p/x")


# ---- items 7 and 11 on a SageMaker endpoint --------------------------------------------


def deploy_config(tmp_path, bucket, role, **deploy):
    tree = {
        "project": {"name": "demo"},
        "model": {"name_or_path": "tiny", "max_length": 256},
        "data": {"source": "d.jsonl"},
        "deploy": {"target": "sagemaker", "instance_type": "ml.g4dn.xlarge", **deploy},
        "aws": {"region": REGION, "bucket": bucket, "role_arn": role},
    }
    return load_config_dict(tree, base_dir=tmp_path, env={})


@pytest.fixture()
def no_quota_check(monkeypatch):
    from llmship.targets.sagemaker import quotas

    monkeypatch.setattr(
        quotas,
        "check_instance_quota",
        lambda session, instance, count, usage="endpoint": quotas.QuotaCheck(
            True, instance, "L-1", 10.0, count, "within quota"
        ),
    )


def test_async_endpoint_outside_data_sns_and_kms_are_granted_exactly(
    tmp_path, session, store, no_quota_check
):
    """deploy.model_data and async output/failure paths in another bucket, two SNS topics
    (one KMS-encrypted): the role may read that artifact, write those prefixes, publish
    to those topics and use that key, nothing more; destroy removes the grant."""
    from llmship.target import request_for
    from llmship.targets.sagemaker.target import SageMakerTarget

    role, bucket, elsewhere = execution_role(session), new_bucket(session), new_bucket(session)
    session.client("s3").put_object(Bucket=elsewhere, Key="given/model.tar.gz", Body=b"x")
    key = session.client("kms").create_key()["KeyMetadata"]["Arn"]
    session.client("s3").put_bucket_encryption(
        Bucket=elsewhere,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": key,
                    }
                }
            ]
        },
    )
    sns = session.client("sns")
    done = sns.create_topic(Name=f"done-{uuid.uuid4().hex[:6]}")["TopicArn"]
    failed = sns.create_topic(
        Name=f"failed-{uuid.uuid4().hex[:6]}", Attributes={"KmsMasterKeyId": key}
    )["TopicArn"]
    name = f"as{uuid.uuid4().hex[:6]}"
    config = deploy_config(
        tmp_path, bucket, role,
        name=name,
        kind="async",
        model_data=f"s3://{elsewhere}/given/model.tar.gz",
        async_inference={
            "output_path": f"s3://{elsewhere}/async/out/",
            "failure_path": f"s3://{elsewhere}/async/failed/",
            "sns_success_topic": done,
            "sns_error_topic": failed,
        },
    )  # fmt: skip
    target = SageMakerTarget(store, config.config.aws, session=session, sleep=lambda s: None)
    plan = target.plan(request_for(config, None))
    assert plan.problems == [] and plan.warnings == []
    action = next(a for a in plan.actions if a.kind == ROLE_POLICY_KIND)
    assert action.name == f"{role.rsplit('/', 1)[-1]}/llmship-deploy-{name}"
    assert f"publish to {done}, {failed}" in action.detail

    target.apply(plan)
    policy = inline(session, role, f"llmship-deploy-{name}")
    objects = f"arn:aws:s3:::{elsewhere}"
    assert allowed(policy, "s3:GetObject", f"{objects}/given/model.tar.gz")
    assert not allowed(policy, "s3:GetObject", f"{objects}/given/other.tar.gz")
    assert allowed(policy, "s3:PutObject", f"{objects}/async/out/1.out")
    assert allowed(policy, "s3:PutObject", f"{objects}/async/failed/1.out")
    assert not allowed(policy, "s3:PutObject", f"{objects}/given/model.tar.gz")
    assert allowed(policy, "sns:Publish", done) and allowed(policy, "sns:Publish", failed)
    assert not allowed(policy, "sns:Publish", done.replace("done-", "other-"))
    assert allowed(policy, "kms:GenerateDataKey", key) and allowed(policy, "kms:Decrypt", key)

    target.destroy(name)
    assert f"llmship-deploy-{name}" not in inline_names(session, role)
    assert store.resources(name) == []


def test_a_topic_that_does_not_exist_is_a_plan_problem(tmp_path, session, store, no_quota_check):
    from llmship.target import request_for
    from llmship.targets.sagemaker.target import SageMakerTarget

    role, bucket = execution_role(session), new_bucket(session)
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:missing-{uuid.uuid4().hex[:6]}"
    config = deploy_config(
        tmp_path, bucket, role, name="nt", kind="async",
        model_data=f"s3://{bucket}/m.tar.gz", async_inference={"sns_success_topic": topic},
    )  # fmt: skip
    target = SageMakerTarget(store, config.config.aws, session=session, sleep=lambda s: None)
    plan = target.plan(request_for(config, None))
    assert any(f"SNS topic {topic} does not exist" in p for p in plan.problems)


# ---- item 7: another account's bucket and key are named in the plan ------------------------


def stubbed_clients(monkeypatch, **clients):
    monkeypatch.setattr(role_grants, "client", lambda session, service: clients[service])


def test_another_accounts_bucket_and_key_are_named_with_what_to_change(monkeypatch):
    """HeadBucket with ExpectedBucketOwner answers 403 for another account's bucket (S3
    User Guide, bucket owner condition); HeadObject names the object's KMS key."""
    s3 = boto3.client("s3", region_name=REGION, aws_access_key_id="k", aws_secret_access_key="s")
    stubbed_clients(monkeypatch, s3=s3)
    role = f"arn:aws:iam::{ACCOUNT}:role/llmship-demo-sagemaker"
    key = f"arn:aws:kms:{REGION}:{OTHER_ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    with Stubber(s3) as stubber:
        stubber.add_client_error(
            "head_bucket", "403", "Forbidden", 403,
            expected_params={"Bucket": "shared-models", "ExpectedBucketOwner": ACCOUNT},
        )  # fmt: skip
        stubber.add_response("head_bucket", {}, {"Bucket": "shared-models"})
        stubber.add_response(
            "head_object",
            {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key},
            {"Bucket": "shared-models", "Key": "llama/model.tar.gz"},
        )
        grant = plan_grant(
            None,
            role_arn=role,
            name="llmship-deploy-d",
            accesses=[S3Access("s3://shared-models/llama/model.tar.gz", "read")],
        )
        stubber.assert_no_pending_responses()
    assert grant.problems == []
    bucket_warning, key_warning = grant.warnings
    assert "bucket shared-models belongs to another AWS account" in bucket_warning
    assert f"allow the role {role} s3:GetObject on s3://shared-models/llama/model.tar.gz" in (
        bucket_warning
    )
    assert f"KMS key {key} of another AWS account: its key policy must allow" in key_warning
    assert "kms:Decrypt" in key_warning
    policy = {"g": grant.document}
    assert allowed(policy, "kms:Decrypt", key)
    assert allowed(policy, "s3:GetObject", "arn:aws:s3:::shared-models/llama/model.tar.gz")


def test_a_bucket_llmship_may_not_inspect_is_said_so(monkeypatch):
    s3 = boto3.client("s3", region_name=REGION, aws_access_key_id="k", aws_secret_access_key="s")
    stubbed_clients(monkeypatch, s3=s3)
    with Stubber(s3) as stubber:
        stubber.add_client_error("head_bucket", "403", "Forbidden", 403)
        stubber.add_client_error("head_bucket", "403", "Forbidden", 403)
        grant = plan_grant(
            None,
            role_arn=f"arn:aws:iam::{ACCOUNT}:role/r",
            name="llmship-deploy-d",
            accesses=[S3Access("s3://locked/results/", "write")],
        )
    assert grant.problems == []
    assert "may not inspect bucket locked" in grant.warnings[0]
    assert "s3:PutObject, s3:AbortMultipartUpload" in grant.warnings[0]
    assert allowed({"g": grant.document}, "s3:PutObject", "arn:aws:s3:::locked/results/a.out")
