"""`llmship aws check` and `llmship aws smoke`.

The check: moto has no SimulatePrincipalPolicy, so the simulator's answers come from
botocore's Stubber on a real IAM client, in the shapes of the IAM API reference
(SimulatePrincipalPolicy: EvaluationResults with EvalActionName, EvalResourceName,
EvalDecision "allowed" | "explicitDeny" | "implicitDeny", MatchedStatements,
MissingContextValues; a real answer is quoted in aws-containers/amazon-ecs-exec-checker#70).
AccessDenied is worded as IAM's "Troubleshoot access denied error messages" page shows
("User: ARN is not authorized to perform: ACTION on resource: ARN because no
identity-based policy allows the ACTION action"). IAM Identity Center roles live under
the path /aws-reserved/sso.amazonaws.com/ (IAM Identity Center user guide, "Using
service-linked roles" and permission sets: roles named AWSReservedSSO_<set>_<id>); a
session ARN (arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION) omits that path.

The smoke test runs end to end on moto (server mode): it asks first with the expected
cost, deploys the tiny model serverless through the ordinary SageMaker deploy path,
invokes it, destroys everything, and writes every request id and error to its report,
also when the invoke fails. moto's endpoints are InService at once and its
InvokeEndpoint answers a canned body; the failing invoke is injected with a botocore
before-call handler that answers as SageMaker does when the model's container errs
(aws/amazon-sagemaker-examples#4324: ModelError, "Received server error (500) from
primary and could not load the entire response body").
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.stub import Stubber

from llmship.aws.check import (
    SESSION_CAVEAT,
    SSO_PATH,
    check_principal,
    principal_of,
)
from llmship.aws.permissions import Need, granting_statement
from llmship.aws.s3 import ensure_bucket
from llmship.config.loader import load_config_dict
from llmship.deploy.smoke import expected_cost, run_smoke

REGION = "us-west-2"
ROLE = "arn:aws:iam::123456789012:role/llmship-sagemaker"
FAST = {"sleep": lambda s: None, "poll_seconds": 0.01}


# ---- the check (Stubber on a real IAM client) ---------------------------------------

ACCOUNT = "123456789012"
MODEL_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/demo-x-20260101120000"
TAGGED = {"aws:RequestTag/llmship:project": "demo"}
SSO_ROLE = "AWSReservedSSO_AdministratorAccess_0123456789abcdef"
POLICY = {"Version": "2012-10-17", "Statement": [{"Sid": "Deploy", "Effect": "Allow"}]}


@pytest.fixture()
def iam():
    """A real IAM client (its service model validates every stubbed request/answer)."""
    client = boto3.client(
        "iam", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def _role(arn: str, path: str = "/") -> dict:
    name = arn.rsplit("/", 1)[-1]
    return {
        "Role": {
            "Path": path,
            "RoleName": name,
            "RoleId": "AROAEXAMPLEROLEID0001",
            "Arn": arn,
            "CreateDate": datetime(2026, 1, 1, tzinfo=UTC),
        }
    }


def _result(action: str, resource: str, decision: str, missing=()) -> dict:
    return {
        "EvalActionName": action,
        "EvalResourceName": resource,
        "EvalDecision": decision,
        "MatchedStatements": [],
        "MissingContextValues": list(missing),
    }


def test_an_assumed_role_session_is_simulated_as_its_role(iam):
    client, stub = iam
    role = f"arn:aws:iam::{ACCOUNT}:role/team/llmship-deployer"
    stub.add_response("get_role", _role(role, "/team/"), {"RoleName": "llmship-deployer"})
    found = principal_of(f"arn:aws:sts::{ACCOUNT}:assumed-role/llmship-deployer/alice", client)
    assert found.source_arn == role  # the path comes from GetRole, not the session ARN
    assert found.account == ACCOUNT and SESSION_CAVEAT in found.caveats


def test_an_sso_session_maps_to_its_role_under_the_sso_path(iam):
    client, stub = iam
    role = f"arn:aws:iam::{ACCOUNT}:role{SSO_PATH}us-west-2/{SSO_ROLE}"
    stub.add_response("get_role", _role(role, f"{SSO_PATH}us-west-2/"), {"RoleName": SSO_ROLE})
    session_arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/{SSO_ROLE}/alice@example.com"
    assert principal_of(session_arn, client).source_arn == role


def test_an_sso_role_whose_path_cannot_be_read_is_not_guessed(iam):
    client, stub = iam
    stub.add_client_error(
        "get_role",
        service_error_code="AccessDenied",
        service_message=(
            f"User: arn:aws:sts::{ACCOUNT}:assumed-role/{SSO_ROLE}/alice@example.com is not "
            f"authorized to perform: iam:GetRole on resource: role {SSO_ROLE} because no "
            "identity-based policy allows the iam:GetRole action"
        ),
        http_status_code=403,
    )
    found = principal_of(
        f"arn:aws:sts::{ACCOUNT}:assumed-role/{SSO_ROLE}/alice@example.com", client
    )
    assert found.source_arn is None
    assert "GetRole" in found.why_not and SSO_PATH in found.why_not


@pytest.mark.parametrize(
    ("arn", "why"),
    [
        (f"arn:aws:iam::{ACCOUNT}:root", "root user cannot be simulated"),
        (f"arn:aws:sts::{ACCOUNT}:federated-user/bob", "session policy"),
    ],
)
def test_root_and_federated_callers_cannot_be_simulated_and_get_the_policy(iam, arn, why):
    client, _ = iam  # no stubbed answer: any IAM call would fail the test
    found = principal_of(arn, client)
    report = check_principal(
        client, found, [Need("sagemaker:CreateModel", MODEL_ARN)], who="you", policy=POLICY
    )
    assert not report.simulated and report.policy == POLICY
    text = "\n".join(report.lines())
    assert "not checked" in text and "cannot be simulated" in text and why in text
    assert json.loads(report.policy_text()) == POLICY


def test_a_denied_action_is_printed_with_the_statement_that_grants_it(iam):
    client, stub = iam
    role = f"arn:aws:iam::{ACCOUNT}:role/deployer"
    needs = [
        Need("sagemaker:CreateModel", MODEL_ARN, TAGGED),
        Need("sagemaker:AddTags", MODEL_ARN, TAGGED),
        Need("iam:PassRole", role, {"iam:PassedToService": "sagemaker.amazonaws.com"}),
    ]
    stub.add_response(
        "simulate_principal_policy",
        {
            "EvaluationResults": [
                _result("sagemaker:CreateModel", MODEL_ARN, "implicitDeny"),
                _result("sagemaker:AddTags", MODEL_ARN, "allowed"),
            ],
            "IsTruncated": False,
        },
        {
            "PolicySourceArn": role,
            "ActionNames": ["sagemaker:CreateModel", "sagemaker:AddTags"],
            "ResourceArns": [MODEL_ARN],
            "ContextEntries": [
                {
                    "ContextKeyName": "aws:RequestTag/llmship:project",
                    "ContextKeyValues": ["demo"],
                    "ContextKeyType": "string",
                }
            ],
        },
    )
    stub.add_response(
        "simulate_principal_policy",
        {"EvaluationResults": [_result("iam:PassRole", role, "explicitDeny")]},
        {
            "PolicySourceArn": role,
            "ActionNames": ["iam:PassRole"],
            "ResourceArns": [role],
            "ContextEntries": [
                {
                    "ContextKeyName": "iam:PassedToService",
                    "ContextKeyValues": ["sagemaker.amazonaws.com"],
                    "ContextKeyType": "string",
                }
            ],
        },
    )
    found = principal_of(role, client)
    report = check_principal(client, found, needs, who="you", policy=POLICY)
    assert report.simulated and not report.ok
    assert [f.need.action for f in report.denied] == ["sagemaker:CreateModel", "iam:PassRole"]
    statement = granting_statement(needs[0])  # the project is the create's tag
    assert statement == "llmship-demo-deploy / TaggedSageMakerCreates"
    lines = report.lines()
    assert lines[0].endswith("2 of 3 permissions missing")
    assert f"  missing   sagemaker:CreateModel on {MODEL_ARN}: granted by {statement}" in lines
    passrole = next(line for line in lines if "iam:PassRole" in line)
    assert "explicitly denied" in passrole
    assert report.policy == POLICY  # printed: something is missing


def test_missing_context_values_are_unchecked_not_denied(iam):
    client, stub = iam
    role = f"arn:aws:iam::{ACCOUNT}:role/deployer"
    endpoint = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/demo-x"
    stub.add_response(
        "simulate_principal_policy",
        {
            "EvaluationResults": [
                _result(
                    "sagemaker:DeleteEndpoint",
                    endpoint,
                    "implicitDeny",
                    missing=["aws:ResourceTag/llmship:project"],
                )
            ]
        },
    )
    need = Need("sagemaker:DeleteEndpoint", endpoint)
    report = check_principal(client, principal_of(role, client), [need], who="you", policy=POLICY)
    [finding] = report.findings
    assert finding.decision == "unchecked" and report.ok and report.denied == []
    [line] = [line for line in report.lines() if "DeleteEndpoint" in line]
    assert line.startswith("  unchecked") and "aws:ResourceTag/llmship:project" in line


def test_a_refused_simulation_says_why_prints_the_policy_and_goes_on(iam):
    client, stub = iam
    role = f"arn:aws:iam::{ACCOUNT}:role/deployer"
    stub.add_client_error(
        "simulate_principal_policy",
        service_error_code="AccessDenied",
        service_message=(
            f"User: arn:aws:sts::{ACCOUNT}:assumed-role/deployer/alice is not authorized to "
            f"perform: iam:SimulatePrincipalPolicy on resource: {role} because no "
            "identity-based policy allows the iam:SimulatePrincipalPolicy action"
        ),
        http_status_code=403,
    )
    report = check_principal(
        client,
        principal_of(role, client),
        [Need("sagemaker:CreateModel", MODEL_ARN)],
        who="you",
        policy=POLICY,
    )
    assert not report.simulated and report.findings == []
    text = "\n".join(report.lines())
    assert "not checked" in text and "refused (AccessDenied" in text
    assert "iam:SimulatePrincipalPolicy" in text
    assert json.loads(report.policy_text()) == POLICY


# ---- the smoke test (moto) --------------------------------------------------------


@pytest.fixture()
def bucket(aws_env):
    name = f"llmship-smoke-{time.time_ns()}"
    ensure_bucket(boto3.client("s3", region_name=REGION), name, REGION, {})
    return name


@pytest.fixture()
def small_model(monkeypatch, tiny_llama):
    """The session's tiny model stands in for a fresh one (same code path, less time)."""
    from llmship.models import tiny

    monkeypatch.setattr(
        tiny, "create_tiny_model", lambda out, arch: shutil.copytree(tiny_llama, out)
    )


def _config(tmp_path, bucket: str):
    tree = {
        "project": {"name": "demo"},
        "model": {"name_or_path": "tiny", "max_length": 256},
        "data": {"source": "d.jsonl"},
        "aws": {"region": REGION, "bucket": bucket, "role_arn": ROLE},
    }
    return load_config_dict(tree, base_dir=tmp_path, env={}).config


def _endpoints() -> list[str]:
    sm = boto3.client("sagemaker", region_name=REGION)
    return [e["EndpointName"] for e in sm.list_endpoints(MaxResults=100)["Endpoints"]]


def _model_error(**_):
    """What SageMaker Runtime answers when the container fails the request (HTTP 424)."""
    message = (
        "Received server error (500) from primary and could not load the entire response "
        "body. See https://us-west-2.console.aws.amazon.com/cloudwatch/home?region=us-west-2"
        "#logEventViewer:group=/aws/sagemaker/Endpoints/demo in account 123456789012 for "
        "more information."
    )
    parsed = {
        "Error": {"Code": "ModelError", "Message": message},
        "ResponseMetadata": {"RequestId": "0b7c6b8e-1f3a-4c2d-9e8f-7a6b5c4d3e2f"},
    }
    return AWSResponse("https://runtime.sagemaker", 424, {}, None), parsed


def test_smoke_asks_first_deploys_invokes_destroys_and_reports_request_ids(
    store, bucket, tmp_path, small_model
):
    questions, said = [], []
    report = tmp_path / "smoke.json"
    result = run_smoke(
        _config(tmp_path, bucket),
        confirm=lambda q: questions.append(q) or True,
        report_path=report,
        store=store,
        say=said.append,
        workdir=tmp_path / "work",
        session=boto3.Session(region_name=REGION),
        target_options=FAST,
    )
    assert result.ok, result.steps
    name = result.deployment
    assert name.startswith("demo-smoke-")
    [question] = questions
    assert f"serverless endpoint {name}" in question and expected_cost() in question
    assert [s.name for s in result.steps] == [
        "model",
        "plan",
        "confirm",
        "deploy",
        "invoke",
        "destroy",
    ]
    assert name not in _endpoints() and store.resources(name) == []
    uploaded = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=bucket)
    assert uploaded.get("KeyCount", 0) == 0  # the artifact went with the endpoint

    written = json.loads(report.read_text())
    assert written["ok"] and written["deployment"] == name and written["errors"] == []
    calls = {(r["service"], r["operation"]) for r in written["requests"]}
    assert {
        ("sagemaker", "CreateModel"),
        ("sagemaker", "CreateEndpointConfig"),
        ("sagemaker", "CreateEndpoint"),
        ("sagemaker-runtime", "InvokeEndpoint"),
        ("sagemaker", "DeleteEndpoint"),
        ("s3", "PutObject"),
    } <= calls
    assert all(r["request_id"] for r in written["requests"])
    created = next(r for r in written["requests"] if r["operation"] == "CreateEndpoint")
    assert created["names"]["EndpointName"] == name
    text = report.read_text()
    assert "testing" not in text  # the (fake) access key never reaches the report
    assert "Environment" not in text


def test_smoke_tears_down_when_invoke_fails_and_reports_the_error(
    store, bucket, tmp_path, small_model
):
    session = boto3.Session(region_name=REGION)
    session.events.register("before-call.sagemaker-runtime.InvokeEndpoint", _model_error)
    report = tmp_path / "smoke.json"
    result = run_smoke(
        _config(tmp_path, bucket),
        confirm=lambda q: True,
        report_path=report,
        store=store,
        say=lambda text: None,
        workdir=tmp_path / "work",
        session=session,
        target_options=FAST,
    )
    assert not result.ok and result.failure.name == "invoke"
    assert "ModelError" in result.failure.detail
    assert [s.name for s in result.steps][-1] == "destroy" and result.steps[-1].ok
    assert result.deployment not in _endpoints() and store.resources(result.deployment) == []

    written = json.loads(report.read_text())
    [error] = written["errors"]
    assert (error["service"], error["operation"], error["status"]) == (
        "sagemaker-runtime",
        "InvokeEndpoint",
        424,
    )
    assert error["error_code"] == "ModelError"
    assert error["request_id"] == "0b7c6b8e-1f3a-4c2d-9e8f-7a6b5c4d3e2f"
    assert "container_logs" in written
    assert any(r["operation"] == "DeleteEndpoint" for r in written["requests"])


def test_smoke_creates_nothing_when_declined(store, bucket, tmp_path, small_model):
    result = run_smoke(
        _config(tmp_path, bucket),
        confirm=lambda q: False,
        report_path=tmp_path / "smoke.json",
        store=store,
        say=lambda text: None,
        workdir=tmp_path / "work",
        session=boto3.Session(region_name=REGION),
        target_options=FAST,
    )
    assert result.cancelled and not result.ok
    assert result.deployment not in _endpoints() and store.resources() == []
    written = json.loads((tmp_path / "smoke.json").read_text())
    operations = {r["operation"] for r in written["requests"]}
    assert not any(op.startswith(("Create", "Put")) for op in operations)


def test_smoke_command_refuses_to_create_without_a_terminal_or_yes(
    store, bucket, tmp_path, small_model
):
    from typer.testing import CliRunner

    from llmship.cli import app

    config = tmp_path / "llmship.yaml"
    config.write_text(
        "project: {name: demo}\nmodel: {name_or_path: tiny}\ndata: {source: d.jsonl}\n"
        f"aws: {{region: {REGION}, bucket: {bucket}, role_arn: '{ROLE}'}}\n"
    )
    report = tmp_path / "smoke.json"
    result = CliRunner().invoke(app, ["aws", "smoke", "-c", str(config), "--report", str(report)])
    assert result.exit_code != 0
    assert "pass --yes" in str(result.exception) + result.output
    assert json.loads(report.read_text())["steps"][-1]["name"] == "confirm"
    assert store.resources() == []


# ---- the commands: `aws check`, and the section `deploy --plan` shows ----------------


def _answer(status: int, parsed: dict):
    def handler(**_):
        return AWSResponse("https://aws.example", status, {}, None), parsed

    return handler


def _config_file(tmp_path, bucket: str, **deploy) -> str:
    path = tmp_path / "llmship.yaml"
    path.write_text(
        json.dumps(
            {
                "project": {"name": "demo"},
                "model": {"name_or_path": "tiny"},
                "data": {"source": "d.jsonl"},
                "deploy": {"target": "sagemaker", "name": "demo-x", **deploy},
                "aws": {"region": REGION, "bucket": bucket, "role_arn": ROLE},
            }
        )
    )
    return str(path)


def test_check_command_says_why_when_simulation_is_refused_and_prints_the_policy(
    aws_env, tmp_path, monkeypatch
):
    from typer.testing import CliRunner

    from llmship.aws import session as sessions
    from llmship.cli import app

    session = boto3.Session(region_name=REGION)
    caller_arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/deployer/alice"
    session.events.register(
        "before-call.sts.GetCallerIdentity",
        _answer(200, {"UserId": "AROAEXAMPLE:alice", "Account": ACCOUNT, "Arn": caller_arn}),
    )
    session.events.register(
        "before-call.iam.GetRole", _answer(200, _role(f"arn:aws:iam::{ACCOUNT}:role/deployer"))
    )
    refused = {
        "Error": {
            "Code": "AccessDenied",
            "Message": f"User: {caller_arn} is not authorized to perform: "
            "iam:SimulatePrincipalPolicy on resource: "
            f"arn:aws:iam::{ACCOUNT}:role/deployer because no identity-based policy allows "
            "the iam:SimulatePrincipalPolicy action",
        },
        "ResponseMetadata": {"RequestId": "5d1c0b8e-0000-4000-8000-000000000000"},
    }
    session.events.register("before-call.iam.SimulatePrincipalPolicy", _answer(403, refused))
    monkeypatch.setattr(sessions, "make_session", lambda aws: session)

    config = _config_file(tmp_path, "demo-bucket", kind="serverless")
    result = CliRunner().invoke(app, ["aws", "check", "-c", config, "--for", "deploy"])
    assert result.exit_code == 0, result.output
    assert f"you (arn:aws:iam::{ACCOUNT}:role/deployer): not checked" in result.output
    assert "refused (AccessDenied" in result.output
    policies = json.loads(result.output[result.output.index("{") :])
    # deploy and operate: destroy and the deployment options need both
    assert sorted(policies) == ["llmship-demo-deploy", "llmship-demo-operate"]
    actions = {a for p in policies.values() for s in p["Statement"] for a in np_list(s["Action"])}
    assert {"sagemaker:CreateModel", "scheduler:DeleteSchedule"} <= actions


def np_list(value) -> list:
    return value if isinstance(value, list) else [value]


def test_deploy_plan_shows_the_permission_check(store, bucket, tmp_path):
    from typer.testing import CliRunner

    from llmship.cli import app

    config = _config_file(
        tmp_path, bucket, kind="serverless", model_data=f"s3://{bucket}/m/model.tar.gz"
    )
    result = CliRunner().invoke(app, ["deploy", "-c", config, "--plan"])
    assert result.exit_code == 0, result.output
    assert "permissions:" in result.output
    # moto's caller (arn:aws:sts::123456789012:user/moto) is no IAM user or role
    assert "not checked" in result.output and "cannot be simulated" in result.output
    assert "llmship aws check --for deploy" in result.output


def test_the_planned_expose_calls_are_allowed_by_the_expose_policy(tmp_path):
    """`aws check --for expose` planned the gateway's function as `llmship-<deployment>`
    and was told it is denied; `expose` names it `<deployment>` and its role
    `llmship-<deployment>` (gateway/aws_expose.py): the plan uses the same names."""
    from llmship.aws.capabilities import capability_policy
    from llmship.aws.permissions import needs
    from llmship.aws.policy_eval import allows
    from llmship.deploy.planned_calls import calls_for
    from llmship.gateway.aws_expose import deployment_name

    tree = {
        "project": {"name": "demo"},
        "model": {"name_or_path": "tiny"},
        "data": {"source": "d.jsonl"},
        "aws": {"region": REGION, "bucket": "demo-bucket", "role_arn": ROLE},
        "gateway": {"routes": {"chat": {"targets": [{"sagemaker": "demo-x"}]}}},
    }
    config = load_config_dict(tree, base_dir=tmp_path, env={}).config
    expose = capability_policy(
        "expose",
        partition="aws",
        account=ACCOUNT,
        region=REGION,
        project="demo",
        bucket="demo-bucket",
        role_arn=ROLE,
    )
    planned = calls_for("expose", config, deployment=deployment_name("demo", "chat"))
    assert {("lambda", "CreateFunction"), ("iam", "CreateRole")} <= {c[:2] for c in planned}
    for service, operation, params in planned:
        found = needs(service, operation, params, region=REGION, account=ACCOUNT, project="demo")
        for need in found:
            assert allows({"llmship-demo-expose": expose}, need).allowed, need
