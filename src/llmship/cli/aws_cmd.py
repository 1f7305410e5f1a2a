"""`llmship aws ...`: one-time AWS account setup for a project."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from llmship.cli._common import ConfigOption, SetOption, err_console, load

app = typer.Typer(help="AWS account setup: the SageMaker execution role.", no_args_is_help=True)

BUCKET_KIND = "s3:bucket"


@app.command("bootstrap")
def bootstrap_command(
    config: ConfigOption = None,
    set_: SetOption = None,
    role_name: Annotated[
        str | None,
        typer.Option(
            "--role-name",
            help="Execution role name (default: llmship-<project.name>-sagemaker).",
            show_default=False,
        ),
    ] = None,
    create_bucket: Annotated[
        bool,
        typer.Option(
            "--create-bucket",
            help="Create aws.bucket first (private, encrypted, tagged) if it does not exist.",
        ),
    ] = False,
) -> None:
    """Create (or bring up to date) the project's SageMaker execution role, scoped to
    aws.bucket, and print the IAM policy a deploying user needs (JSON on stdout).

    Example: llmship aws bootstrap --create-bucket > deployer-policy.json
    """
    from llmship.aws.iam import BOOTSTRAP, bootstrap, deployer_policy
    from llmship.aws.session import make_session
    from llmship.errors import ConfigError
    from llmship.state import StateStore

    settings = load(config, set_).config
    project, bucket = settings.project.name, settings.aws.bucket
    if not bucket:
        raise ConfigError(
            "aws.bucket is not set: the execution role is scoped to one bucket; set aws.bucket "
            "in llmship.yaml or pass --set aws.bucket=NAME (add --create-bucket to create it)"
        )
    session = make_session(settings.aws)
    store = StateStore()
    if create_bucket:
        _create_bucket(session, bucket, project, store, BOOTSTRAP)
    done = bootstrap(session, project=project, bucket=bucket, role_name=role_name, store=store)
    state = "created" if done.created else "up to date"
    err_console.print(
        f"SageMaker execution role {state}: {done.role_arn}\n"
        f"  policies: {', '.join(done.policy_names)} (S3 only on {bucket}, logs only in "
        "/aws/sagemaker/*, ECR pulls, metrics)\n"
        f"  put it in llmship.yaml as aws.role_arn: {done.role_arn}\n"
        "  (a new role takes a few seconds before SageMaker can assume it)\n"
        "The policy a deploying user needs follows on stdout; attach it as a customer "
        "managed policy:",
        highlight=False,
    )
    account = done.role_arn.split(":")[4]
    policy = deployer_policy(
        account=account,
        region=session.region_name,
        project=project,
        role_arn=done.role_arn,
        bucket=bucket,
    )
    typer.echo(json.dumps(policy, indent=2))


def _create_bucket(session, bucket: str, project: str, store, deployment: str) -> None:
    """The bucket, created unless it exists; recorded in state only when llmship made it."""
    from llmship.aws.s3 import ensure_bucket
    from llmship.aws.session import client

    region = session.region_name
    known = any((r.kind, r.name) == (BUCKET_KIND, bucket) for r in store.resources())
    if not known:
        store.record_creating(BUCKET_KIND, bucket, deployment, project, region)
    tags = {"llmship:project": project, "llmship:deployment": deployment, "llmship:run": deployment}
    created = ensure_bucket(client(session, "s3"), bucket, region, tags)
    if created or known:
        store.set_status(BUCKET_KIND, bucket, "UP", region)
        if created:
            err_console.print(f"created bucket s3://{bucket} in {region}", highlight=False)
    else:
        store.remove(BUCKET_KIND, bucket, region)  # the user's own bucket: not ours to destroy
