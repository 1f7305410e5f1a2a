"""`llmship aws bootstrap` against moto IAM in server mode: the execution role, its trust
and least-privilege policies, idempotence, and the deploying user's policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmship.aws.iam import bootstrap, deployer_policy, trust_policy
from llmship.aws.session import client, make_session
from llmship.config.schema import AwsConfig
from llmship.errors import DeployError
from llmship.sagemaker.names import default_role_name
from llmship.state import StateStore

ACCOUNT = "123456789012"  # moto's account
BUCKET = "demo-artifacts"


@pytest.fixture()
def session(aws_env, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMSHIP_HOME", str(tmp_path / "home"))
    return make_session(AwsConfig(region="us-west-2"))


@pytest.fixture()
def iam(session):
    return client(session, "iam")


def _policies(iam, role: str) -> dict[str, dict]:
    names = iam.list_role_policies(RoleName=role)["PolicyNames"]
    return {n: iam.get_role_policy(RoleName=role, PolicyName=n)["PolicyDocument"] for n in names}


def _statements(documents: dict[str, dict]) -> list[dict]:
    return [s for doc in documents.values() for s in doc["Statement"]]


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def test_bootstrap_creates_a_tagged_sagemaker_role_recorded_in_state(session, iam):
    store = StateStore()
    done = bootstrap(session, project="demo", bucket=BUCKET, store=store)
    assert done.created and done.role_name == "llmship-demo-sagemaker"
    assert done.role_arn == f"arn:aws:iam::{ACCOUNT}:role/llmship-demo-sagemaker"
    role = iam.get_role(RoleName=done.role_name)["Role"]
    trust = role["AssumeRolePolicyDocument"]
    assert trust == trust_policy()
    assert trust["Statement"][0]["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    tags = {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=done.role_name)["Tags"]}
    assert tags["llmship:project"] == "demo"
    assert {"llmship:deployment", "llmship:run"} <= set(tags)
    [record] = [r for r in store.resources(project="demo") if r.kind == "iam:role"]
    assert record.name == done.role_name and record.status == "UP"
    assert record.details["arn"] == done.role_arn
    assert [e["event"] for e in store.history()] == ["creating", "up"]


def test_execution_policies_are_scoped_to_the_bucket_logs_and_ecr(session, iam):
    done = bootstrap(session, project="demo", bucket=BUCKET, store=StateStore())
    documents = _policies(iam, done.role_name)
    assert set(documents) == set(done.policy_names)
    for statement in _statements(documents):
        assert statement["Effect"] == "Allow"
        actions = _as_list(statement["Action"])
        resources = _as_list(statement["Resource"])
        services = {a.split(":")[0] for a in actions}
        assert len(services) == 1, statement  # one concern per statement
        service = services.pop()
        assert not any(a.endswith(":*") for a in actions), statement
        if service == "s3":
            assert all(
                r in (f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*") for r in resources
            )
        elif service == "logs":
            assert all(f":{ACCOUNT}:log-group:/aws/sagemaker/" in r for r in resources)
        elif service == "ecr":
            if actions == ["ecr:GetAuthorizationToken"]:
                assert resources == ["*"]
            else:
                assert {"ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"} <= set(actions)
                assert all(":repository/" in r for r in resources)
        else:
            assert actions == ["cloudwatch:PutMetricData"], statement
    s3_actions = {a for s in _statements(documents) for a in _as_list(s["Action"]) if "s3:" in a}
    assert {"s3:GetObject", "s3:PutObject", "s3:ListBucket"} <= s3_actions
    assert "s3:DeleteBucket" not in s3_actions


def test_second_bootstrap_is_a_no_op(session, iam):
    store = StateStore()
    first = bootstrap(session, project="demo", bucket=BUCKET, store=store)
    before = (_policies(iam, first.role_name), len(store.history()))
    calls: list[str] = []
    session.events.register("before-call.iam", lambda model, **_: calls.append(model.name))
    second = bootstrap(session, project="demo", bucket=BUCKET, store=store)
    assert calls and all(c.startswith(("Get", "List")) for c in calls), calls
    assert not second.created and second.role_arn == first.role_arn
    assert (_policies(iam, first.role_name), len(store.history())) == before
    assert [r.status for r in store.resources()] == ["UP"]


def test_bootstrap_repairs_a_drifted_role(session, iam):
    done = bootstrap(session, project="demo", bucket=BUCKET, store=StateStore())
    iam.put_role_policy(
        RoleName=done.role_name,
        PolicyName="llmship-s3",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
            }
        ),
    )
    iam.delete_role_policy(RoleName=done.role_name, PolicyName="llmship-logs")
    loose = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Principal": {"Service": "ec2.amazonaws.com"},
            }
        ],
    }
    iam.update_assume_role_policy(RoleName=done.role_name, PolicyDocument=json.dumps(loose))
    again = bootstrap(session, project="demo", bucket=BUCKET, store=StateStore())
    assert not again.created
    documents = _policies(iam, done.role_name)
    assert "llmship-logs" in documents
    assert iam.get_role(RoleName=done.role_name)["Role"]["AssumeRolePolicyDocument"] == (
        trust_policy()
    )
    assert all(
        BUCKET in r for s in documents["llmship-s3"]["Statement"] for r in _as_list(s["Resource"])
    )


def test_a_role_llmship_did_not_create_for_the_project_is_refused(session, iam):
    iam.create_role(RoleName="team-role", AssumeRolePolicyDocument=json.dumps(trust_policy()))
    with pytest.raises(DeployError, match=r"team-role.*something other than llmship"):
        bootstrap(session, project="demo", bucket=BUCKET, role_name="team-role")
    assert iam.list_role_policies(RoleName="team-role")["PolicyNames"] == []
    assert StateStore().resources() == []  # not recorded: destroy must never touch it
    bootstrap(session, project="other", bucket=BUCKET)
    with pytest.raises(DeployError, match="llmship project 'other'"):
        bootstrap(session, project="demo", bucket=BUCKET, role_name=default_role_name("other"))


def test_deployer_policy_is_scoped_to_the_role_and_the_projects_names():
    role = f"arn:aws:iam::{ACCOUNT}:role/llmship-Demo-sagemaker"
    policy = deployer_policy(
        account=ACCOUNT, region="eu-west-1", project="Demo", role_arn=role, bucket=BUCKET
    )
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert len(statements) == len(policy["Statement"])
    # The execution role may be passed, to SageMaker only.
    passing = [s for s in policy["Statement"] if "iam:PassRole" in _as_list(s["Action"])]
    assert statements["PassExecutionRole"]["Resource"] == role
    assert statements["PassExecutionRole"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }
    for statement in passing:  # every PassRole is limited by role and service
        assert "*" not in _as_list(statement["Resource"])
        assert "iam:PassedToService" in statement["Condition"]["StringEquals"]
    # SageMaker deletes by the project's names (lower case, as SageMaker writes names in
    # ARNs); creates and changes on any name only with the project's tag (any
    # deployment name works: llmship.aws.capabilities).
    sagemaker = statements["ProjectSageMakerResources"]
    assert set(sagemaker["Action"]) == {
        "sagemaker:DeleteEndpoint",
        "sagemaker:DeleteEndpointConfig",
        "sagemaker:DeleteModel",
    }
    assert set(sagemaker["Resource"]) == {
        f"arn:aws:sagemaker:eu-west-1:{ACCOUNT}:{kind}/demo-*"
        for kind in ("endpoint", "endpoint-config", "model")
    }
    for sid, key in (
        ("TaggedSageMakerCreates", "aws:RequestTag/llmship:project"),
        ("TaggedSageMakerResources", "aws:ResourceTag/llmship:project"),
    ):
        assert statements[sid]["Condition"]["StringEquals"] == {key: "Demo"}
    assert "sagemaker:CreateEndpoint" in statements["TaggedSageMakerCreates"]["Action"]
    assert "sagemaker:InvokeEndpoint*" in statements["TaggedSageMakerResources"]["Action"]
    for statement in policy["Statement"]:
        actions = _as_list(statement["Action"])
        if statement["Resource"] == "*":  # only reads and calls with no resource-level scope
            assert not any(
                a.startswith(("sagemaker:Create", "sagemaker:Delete", "s3:", "iam:"))
                for a in actions
            ), statement
        if any(a.startswith("s3:") for a in actions) and statement["Sid"].startswith("Project"):
            assert all(BUCKET in r for r in _as_list(statement["Resource"]))
    assert "sagemaker:*" not in json.dumps(policy) and '"*:*"' not in json.dumps(policy)
    # Quotas, metrics and logs are there; TTL and autoscaling are the operate policy's.
    actions = {a for s in policy["Statement"] for a in _as_list(s["Action"])}
    assert {
        "cloudwatch:GetMetricStatistics",
        "servicequotas:ListServiceQuotas",
        "servicequotas:GetServiceQuota",
        "logs:GetLogEvents",
        "s3:ListBucketMultipartUploads",
    } <= actions
    # Small enough for a customer managed policy (6,144 characters without whitespace).
    assert len(json.dumps(policy, separators=(",", ":"))) < 6144


def test_deployer_policy_follows_the_partition_of_the_role():
    policy = deployer_policy(
        account=ACCOUNT,
        region="cn-north-1",
        project="demo",
        role_arn=f"arn:aws-cn:iam::{ACCOUNT}:role/llmship-demo-sagemaker",
        bucket=BUCKET,
    )
    resources = [r for s in policy["Statement"] for r in _as_list(s["Resource"]) if r != "*"]
    assert resources and all(r.startswith("arn:aws-cn:") for r in resources)


# --- the CLI --------------------------------------------------------------------------


def _config(folder: Path, bucket: str | None = BUCKET) -> Path:
    aws = "aws:\n  region: us-west-2\n" + (f"  bucket: {bucket}\n" if bucket else "")
    path = folder / "llmship.yaml"
    path.write_text(
        "project:\n  name: clidemo\nmodel:\n  name_or_path: some/model\n"
        f"data:\n  source: data.jsonl\n{aws}"
    )
    return path


def test_cli_bootstrap_creates_bucket_and_role_and_prints_the_deployer_policies(session, tmp_path):
    """Plain bootstrap prints what a deploying user needs: `deploy` and `operate` (every
    destroy cancels a TTL schedule, which only `operate` grants)."""
    from llmship.aws.permissions import needs
    from llmship.aws.policy_eval import allows
    from llmship.cli import app

    runner = CliRunner()
    result = runner.invoke(
        app, ["aws", "bootstrap", "--config", str(_config(tmp_path)), "--create-bucket"]
    )
    assert result.exit_code == 0, result.output
    arn = f"arn:aws:iam::{ACCOUNT}:role/llmship-clidemo-sagemaker"
    assert arn in result.stderr and "aws.role_arn" in result.stderr
    policies = json.loads(result.stdout)
    assert sorted(policies) == ["llmship-clidemo-deploy", "llmship-clidemo-operate"]
    assert "attach both" in " ".join(result.stderr.split())
    assert {"Resource": arn}.items() <= policies["llmship-clidemo-deploy"]["Statement"][0].items()
    # what ttl.cancel_deletion calls on every destroy
    for service, operation, params in [
        ("scheduler", "DeleteSchedule", {"Name": "delete-x", "GroupName": "llmship"}),
        ("sqs", "GetQueueUrl", {"QueueName": "llmship-ttl-dlq-x"}),
    ]:
        for need in needs(service, operation, params, region="us-west-2", account=ACCOUNT):
            assert allows(policies, need).allowed, need
    s3 = client(session, "s3")
    tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=BUCKET)["TagSet"]}
    assert tags["llmship:project"] == "clidemo"
    kinds = {(r.kind, r.name, r.status) for r in StateStore().resources(project="clidemo")}
    assert kinds == {("s3:bucket", BUCKET, "UP"), ("iam:role", "llmship-clidemo-sagemaker", "UP")}
    again = runner.invoke(app, ["aws", "bootstrap", "--config", str(_config(tmp_path))])
    assert again.exit_code == 0 and "up to date" in again.stderr


def test_cli_bootstrap_does_not_claim_a_bucket_it_did_not_create(session, tmp_path):
    from llmship.cli import app

    client(session, "s3").create_bucket(
        Bucket="users-own", CreateBucketConfiguration={"LocationConstraint": "us-west-2"}
    )
    config = _config(tmp_path, bucket="users-own")
    result = CliRunner().invoke(app, ["aws", "bootstrap", "-c", str(config), "--create-bucket"])
    assert result.exit_code == 0, result.output
    assert [r.kind for r in StateStore().resources()] == ["iam:role"]


def test_cli_bootstrap_needs_a_bucket(session, tmp_path):
    from llmship.cli import app
    from llmship.errors import ConfigError

    result = CliRunner().invoke(app, ["aws", "bootstrap", "-c", str(_config(tmp_path, None))])
    assert isinstance(result.exception, ConfigError)
    assert "aws.bucket" in str(result.exception)
