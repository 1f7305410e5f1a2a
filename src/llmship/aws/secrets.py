"""Secrets for jobs (HF_TOKEN) through AWS Secrets Manager, never through what AWS shows.

DescribeTrainingJob returns a job's hyperparameters and environment to anyone allowed
to describe it, and both land in logs and consoles. So a secret is stored in Secrets
Manager (tagged, recorded in state), the job's environment carries only the secret's
ARN under LLMSHIP_SECRET_<NAME>, and the job's execution role may read exactly that
secret (one inline policy, recorded too). The entry point reads the value with boto3
and sets <NAME> in its own process environment only.
"""

from __future__ import annotations

import json
import os
from collections.abc import MutableMapping

from llmship.aws.errors import aws_call, error_code, ignore_not_found, translate
from llmship.aws.iam import PolicyContext, WrittenPolicy, register_policies
from llmship.state import Kind, StateStore, Status, tag_list

# The names callers and tests import; the kinds themselves are llmship.state.Kind's.
SECRET_KIND = Kind.SECRET
ROLE_POLICY_KIND = Kind.IAM_ROLE_POLICY
ENV_PREFIX = "LLMSHIP_SECRET_"
VERSION = "2012-10-17"


def secret_name(project: str, deployment: str, name: str) -> str:
    """`llmship/<project>/<deployment>/<name>` (Secrets Manager allows / in names)."""
    return f"llmship/{project}/{deployment}/{name.lower().replace('_', '-')}"


def store_secret(
    secrets,
    name: str,
    value: str,
    *,
    tags: dict[str, str],
    store: StateStore,
    deployment: str,
    project: str,
    region: str,
) -> str:
    """Create (or update the value of) secret `name`; its ARN. Recorded before the call."""
    from botocore.exceptions import ClientError

    store.record_creating(Kind.SECRET, name, deployment, project, region)
    with aws_call("secretsmanager", "CreateSecret", name):
        try:
            arn = secrets.create_secret(
                Name=name,
                SecretString=value,
                Description="Written by llmship for a training job; deleted by llmship destroy.",
                Tags=tag_list(dict(sorted(tags.items()))),
            )["ARN"]
        except ClientError as exc:
            if error_code(exc) != "ResourceExistsException":
                raise
            arn = secrets.put_secret_value(SecretId=name, SecretString=value)["ARN"]
    store.set_status(Kind.SECRET, name, Status.UP, region, {"arn": arn})
    return arn


def read_policy(secret_arn: str) -> dict:
    """GetSecretValue on exactly one secret."""
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "ReadOneSecret",
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": secret_arn,
            }
        ],
    }


def policy_name(deployment: str) -> str:
    """The inline policy's name on the execution role (one per deployment)."""
    return f"llmship-secret-{deployment}"[:128]


def grant_read(
    iam,
    role_arn: str,
    secret_arn: str,
    *,
    store: StateStore,
    deployment: str,
    project: str,
) -> str:
    """Let the execution role read `secret_arn` (an inline policy); the policy's name."""
    role = role_arn.rsplit("/", 1)[-1]
    name = policy_name(deployment)
    record = f"{role}/{name}"
    store.record_creating(Kind.IAM_ROLE_POLICY, record, deployment, project)
    with aws_call("iam", "PutRolePolicy", record):
        iam.put_role_policy(
            RoleName=role, PolicyName=name, PolicyDocument=json.dumps(read_policy(secret_arn))
        )
    store.set_status(Kind.IAM_ROLE_POLICY, record, Status.UP, "", {"role": role, "policy": name})
    return name


def delete_secret(secrets, name: str) -> bool:
    """Delete `name` at once (no recovery window); False when it did not exist."""
    with ignore_not_found("secretsmanager", "DeleteSecret", name) as outcome:
        secrets.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    return not outcome.missing


def revoke_read(iam, record: str) -> bool:
    """Remove the inline policy recorded as `<role>/<policy>`; False when it was gone."""
    role, _, name = record.partition("/")
    with ignore_not_found("iam", "DeleteRolePolicy", record) as outcome:
        iam.delete_role_policy(RoleName=role, PolicyName=name)
    return not outcome.missing


def load_secrets_into(environ: MutableMapping[str, str] | None = None, client=None) -> list[str]:
    """Inside the job: for each LLMSHIP_SECRET_<NAME>=<arn>, set <NAME> to the secret's
    value in this process's environment (unless already set); the names set, never the
    values."""
    from botocore.exceptions import BotoCoreError, ClientError

    environ = os.environ if environ is None else environ
    wanted = {k.removeprefix(ENV_PREFIX): v for k, v in environ.items() if k.startswith(ENV_PREFIX)}
    loaded = []
    for name, arn in sorted(wanted.items()):
        if environ.get(name):  # a torchrun worker inherits what its launcher fetched
            continue
        secrets = client or _client_for(arn)
        try:
            value = secrets.get_secret_value(SecretId=arn)["SecretString"]
        except (ClientError, BotoCoreError) as exc:  # refused, or no credentials: say what to do
            raise translate(exc, "secretsmanager", "GetSecretValue", arn) from None
        environ[name] = value
        loaded.append(name)
    return loaded


def _client_for(arn: str):
    """A Secrets Manager client in the secret's own region (read from its ARN)."""
    from llmship.aws.session import client, make_session

    region = arn.split(":")[3] if arn.startswith("arn:") else None
    return client(make_session(region=region or None), "secretsmanager")


@register_policies("training-secret")
def _secret_policies(ctx: PolicyContext) -> list[WrittenPolicy]:
    arn = (
        f"arn:{ctx.partition}:secretsmanager:{ctx.region}:{ctx.account}:secret:"
        f"{secret_name(ctx.project, ctx.deployment, 'HF_TOKEN')}-AbCdEf"
    )
    return [WrittenPolicy(policy_name(ctx.deployment), read_policy(arn))]
