"""Judge the AWS calls the test suite made against the permission map and the printed
capability policies (the suite-wide check conftest.py runs at the end of a session).

Each call llmship's client factory recorded (LLMSHIP_AWS_CALL_LOG) from llmship's own
code (not a test's setup through the same factory) must be in the map
(llmship.aws.permissions), and each permission it needs must be allowed by the
policies of its command's capabilities (`capabilities_of`; all of them when the
command is not known), judged by llmship.aws.policy_eval. The suite runs many
projects, buckets and roles, none of them known to a recorded call: a call is judged
against the policies of each project and execution role the suite used (from the tags
and roles the calls carry), with the bucket a wildcard, and passes when one of them
allows it. Scoping to one
project, bucket and role is what tests/test_aws_permissions.py checks.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import cache
from pathlib import Path

from llmship.aws.capabilities import NEEDED_BY, TAG, capability_policy, policy_name
from llmship.aws.permissions import NO_PERMISSION, SOURCE_IDENTITY, actions_for, needs
from llmship.aws.policy_eval import allows

ACCOUNT = "123456789012"  # moto's
DEFAULT_PROJECT = "demo"
DEFAULT_REGION = "us-east-1"


def read_log(path: str | Path) -> list[dict]:
    """The recorded calls, one JSON object per line (a missing file: none)."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def audit(records: list[dict]) -> list[str]:
    """One line per problem: a call missing from the map, or a permission no policy of
    its command grants."""
    records = [r for r in records if _made_by_llmship(r)]
    projects = sorted({DEFAULT_PROJECT} | {p for r in records for p in _tag_values(r)})
    roles = _passed_roles(records)
    problems = []
    judged: set[tuple] = set()
    for record in records:
        service, operation = record["service"], record["operation"]
        params = record.get("params") or {}
        try:
            actions_for(service, operation)
        except KeyError:
            problems.append(f"{service} {operation}: not in the permission map")
            continue
        region = record.get("region") or DEFAULT_REGION
        capabilities = capabilities_of(record)
        # The suite repeats many calls exactly (polls, waits): judge each one once.
        key = (service, operation, json.dumps(params, sort_keys=True, default=str))
        if (*key, region, capabilities, record.get("command")) in judged:
            continue
        judged.add((*key, region, capabilities, record.get("command")))
        own = sorted(_tag_values(record))  # the call's own project first: most pass there
        order = own + [p for p in projects if p not in own]
        denied = _denied(service, operation, params, region, capabilities, order, roles)
        if denied:
            problems.append(
                f"{service} {operation} ({record.get('command') or 'any command'}): "
                f"{denied.action} on {denied.resource} {denied.conditions or ''} is allowed by "
                f"no statement of {', '.join(policy_name(c) for c in capabilities)}"
            )
    return sorted(set(problems))


# The capability a call of these services belongs to, whatever command makes it.
_SERVICE_CAPABILITY = {
    "bedrock": "bedrock",
    "bedrock-runtime": "bedrock",
    "lambda": "expose",
    "apigateway": "expose",
    "dynamodb": "expose",
}
# Commands run on any deployment. A deploying user holds what plain `aws bootstrap`
# prints (NEEDED_BY["deploy"]) and nothing else: these commands' calls for SageMaker
# endpoints (and the TTL, scaling and queues every destroy cleans up) must be in it.
_DEPLOYMENT_COMMANDS = {"destroy", "status", "invoke"}


def capabilities_of(record: dict) -> tuple[str, ...]:
    """The capabilities whose policies must allow a recorded call: a Bedrock or gateway
    call needs its own; a training job's (and its secret's) needs `train`; any other
    call of destroy, status and invoke needs what a deploying user holds; other
    commands need what NEEDED_BY names for them (every capability when unknown)."""
    service, operation = record["service"], record["operation"]
    command = (record.get("command") or "").split(" ")[0]
    if service in _SERVICE_CAPABILITY:
        return (_SERVICE_CAPABILITY[service],)
    if command in _DEPLOYMENT_COMMANDS:
        if "TrainingJob" in operation or service == "secretsmanager":
            return ("train",)
        return NEEDED_BY["deploy"]
    return NEEDED_BY.get(command, NEEDED_BY["all"])


def _made_by_llmship(record: dict) -> bool:
    """llmship's own calls; not those a test makes to set up or inspect moto."""
    origin = record.get("origin")
    return origin is None or origin.startswith(("llmship", "__main__"))


def summary(records: list[dict]) -> str:
    """Every distinct call recorded, with its count."""
    counts = Counter(
        f"{r['service']} {r['operation']}" + (f" [{r['command']}]" if r.get("command") else "")
        for r in records
    )
    return "\n".join(f"  {n:5d}  {call}" for call, n in sorted(counts.items()))


def _denied(service, operation, params, region, capabilities, projects, roles):
    """The first permission of the call no project's policies allow; None if all pass."""
    for project in projects:
        found = needs(service, operation, params, region=region, account=ACCOUNT, project=project)
        wanted = [n for n in found if n.action not in NO_PERMISSION | SOURCE_IDENTITY]
        own = (f"arn:aws:iam::{ACCOUNT}:role/llmship-{project}-sagemaker", None)
        for role, bedrock_role in [own, *roles]:
            policies = _policies(capabilities, region, project, role, bedrock_role)
            refused = [n for n in wanted if not allows(policies, n).allowed]
            if not refused:
                return None
    return refused[0]


@cache
def _policies(capabilities, region, project, role, bedrock_role) -> dict[str, dict]:
    return {
        policy_name(c, project): capability_policy(
            c,
            partition="aws",
            account=ACCOUNT,
            region=region,
            project=project,
            bucket="*",
            role_arn=role,
            bedrock_role_arn=bedrock_role,
        )
        for c in capabilities
    }


def _tag_values(record: dict) -> set[str]:
    """Projects a call names: the llmship:project tag anywhere in its parameters, or a
    secret's name."""
    found: set[str] = set()

    def walk(value) -> None:
        if isinstance(value, dict):
            if value.get("Key") == TAG or value.get("key") == TAG:
                found.add(str(value.get("Value", value.get("value"))))
            if TAG in value and isinstance(value[TAG], str):
                found.add(value[TAG])
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    params = record.get("params") or {}
    walk(params)
    secret = str(params.get("SecretId") or params.get("Name") or "")
    if record["service"] == "secretsmanager" and secret.startswith("llmship/"):
        found.add(secret.split("/")[1])  # aws.secrets.secret_name: llmship/<project>/...
    return found


def _passed_roles(records: list[dict]) -> list[tuple[str, str | None]]:
    """(execution role, Bedrock role) pairs to judge with: the roles the suite passed
    to SageMaker and Bedrock (each project's default roles are tried first)."""
    sagemaker: set[str] = set()
    bedrock: set[str | None] = {None}
    for r in records:
        params = r.get("params") or {}
        if r["service"] == "sagemaker":
            for key in ("ExecutionRoleArn", "RoleArn"):
                if isinstance(params.get(key), str):
                    sagemaker.add(params[key])
        if r["service"] == "iam" and str(params.get("PolicyName", "")).startswith(
            "llmship-secret-"
        ):  # aws.secrets.grant_read: only ever on the execution role
            sagemaker.add(f"arn:aws:iam::{ACCOUNT}:role/{params['RoleName']}")
        if r["service"] == "bedrock" and isinstance(params.get("roleArn"), str):
            bedrock.add(params["roleArn"])
    return [(s, b) for s in sorted(sagemaker) for b in sorted(bedrock, key=str)]
