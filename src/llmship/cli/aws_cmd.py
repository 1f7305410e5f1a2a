"""`llmship aws ...`: one-time AWS account setup for a project."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from llmship.cli._common import ConfigOption, SetOption, err_console, load

app = typer.Typer(help="AWS account setup: the SageMaker execution role.", no_args_is_help=True)


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
    print_policy: Annotated[
        str | None,
        typer.Option(
            "--print-policy",
            help="Only print the managed policies for deploy (with operate), operate, train, "
            "bedrock, expose or all, as JSON {policy name: document}; creates nothing and "
            "calls no AWS API.",
            show_default=False,
        ),
    ] = None,
    account: Annotated[
        str | None,
        typer.Option(
            "--account",
            help="Account id for --print-policy (default: the one in aws.role_arn).",
            show_default=False,
        ),
    ] = None,
    caller_arn: Annotated[
        str | None,
        typer.Option(
            "--caller-arn",
            help="The role (or user) that will hold the printed policies, so `aws check` "
            "may simulate exactly it (default: the holder's own IAM user, and the project's "
            "and IAM Identity Center roles).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Create (or bring up to date) the project's SageMaker execution role, scoped to
    aws.bucket, and print the IAM policies a deploying user needs (deploy and operate, as
    JSON {policy name: document} on stdout). With --print-policy, only print the policies
    of a capability, creating nothing.

    Examples: llmship aws bootstrap --create-bucket > deployer-policies.json
              llmship aws bootstrap --print-policy all --account 123456789012 > policies.json
    """
    from llmship.aws.capabilities import NEEDED_BY
    from llmship.aws.iam import BOOTSTRAP, bootstrap
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
    if print_policy is not None:
        _print_policies(settings, print_policy, account=account, caller_arn=caller_arn)
        return
    session = make_session(settings.aws)
    store = StateStore(owner="sagemaker")  # the bootstrap role and bucket
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
        f"The policies a deploying user needs ({', '.join(NEEDED_BY['deploy'])}: destroy "
        "and the deployment options need both) follow on stdout as {policy name: document}; "
        "create each as a customer managed policy and attach both (`--print-policy all` "
        "prints every capability's, creating nothing):",
        highlight=False,
    )
    partition, account = done.role_arn.split(":")[1], done.role_arn.split(":")[4]
    policies = _policies(
        settings,
        "deploy",
        partition=partition,
        account=account,
        region=session.region_name,
        role_arn=done.role_arn,
        caller_arn=caller_arn,
    )
    typer.echo(json.dumps(policies, indent=2))


def _print_policies(settings, capability: str, *, account: str | None, caller_arn) -> None:
    """The managed policies of `capability` on stdout, built from the config alone."""
    from llmship.aws.capabilities import NEEDED_BY
    from llmship.errors import ConfigError
    from llmship.sagemaker.names import default_role_name

    aws = settings.aws
    if capability not in NEEDED_BY and capability not in NEEDED_BY["all"]:
        choices = ", ".join(dict.fromkeys([*NEEDED_BY, *NEEDED_BY["all"]]))
        raise ConfigError(f"--print-policy {capability}: one of {choices}")
    if not aws.region:
        raise ConfigError("aws.region is not set: the policies name it; set aws.region")
    role_arn = aws.role_arn
    account = account or (role_arn.split(":")[4] if role_arn else None)
    if not account:
        raise ConfigError(
            "--print-policy needs the account id: pass --account, or set aws.role_arn"
        )
    partition = role_arn.split(":")[1] if role_arn else _partition(aws.region)
    role_arn = role_arn or f"arn:{partition}:iam::{account}:role/" + default_role_name(
        settings.project.name
    )
    policies = _policies(
        settings,
        capability,
        partition=partition,
        account=account,
        region=aws.region,
        role_arn=role_arn,
        caller_arn=caller_arn,
    )
    err_console.print(
        "Create each as a customer managed policy and attach it, e.g. aws iam create-policy "
        "--policy-name NAME --policy-document file://NAME.json",
        highlight=False,
    )
    typer.echo(json.dumps(policies, indent=2))


def _policies(
    settings,
    capability: str,
    *,
    partition: str,
    account: str,
    region: str,
    role_arn: str,
    caller_arn,
) -> dict[str, dict]:
    """{policy name: document} of what `capability` needs (NEEDED_BY: deploy is two)."""
    from llmship.aws.capabilities import NEEDED_BY, capability_policy, outside_data, policy_name

    return {
        policy_name(name, settings.project.name): capability_policy(
            name,
            partition=partition,
            account=account,
            region=region,
            project=settings.project.name,
            bucket=settings.aws.bucket,
            role_arn=role_arn,
            bedrock_role_arn=settings.bedrock.role_arn,
            caller_arn=caller_arn,
            outside_data=outside_data(settings, partition),
        )
        for name in NEEDED_BY.get(capability, (capability,))
    }


def _partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    return "aws-us-gov" if region.startswith("us-gov-") else "aws"


def _create_bucket(session, bucket: str, project: str, store, deployment: str) -> None:
    """The bucket, created unless it exists; recorded in state only when llmship made it."""
    from llmship.aws.s3 import ensure_bucket
    from llmship.aws.session import client
    from llmship.state import Kind, Status, tags

    region = session.region_name
    known = any((r.kind, r.name) == (Kind.S3_BUCKET, bucket) for r in store.resources())
    if not known:
        store.record_creating(Kind.S3_BUCKET, bucket, deployment, project, region)
    bucket_tags = tags(project, deployment, deployment)
    created = ensure_bucket(client(session, "s3"), bucket, region, bucket_tags)
    if created or known:
        store.set_status(Kind.S3_BUCKET, bucket, Status.UP, region)
        if created:
            err_console.print(f"created bucket s3://{bucket} in {region}", highlight=False)
    else:
        store.remove(Kind.S3_BUCKET, bucket, region)  # the user's own bucket: not ours to destroy


@app.command("smoke")
def smoke_command(
    config: ConfigOption = None,
    set_: SetOption = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask before creating the endpoint.")
    ] = False,
    report: Annotated[
        Path | None,
        typer.Option(
            help="Where to write the report (default: ./llmship-smoke-<UTC time>.json).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Prove the account works in minutes, for cents: deploy the tiny model on a serverless
    endpoint (billed per request), invoke it once, then destroy everything (also when a
    step fails). Every AWS request id and error goes to a JSON report for bug reports.

    Example: llmship aws smoke --report smoke.json
    """
    from datetime import UTC, datetime

    from llmship.cli._common import confirmer, console
    from llmship.deploy.smoke import run_smoke
    from llmship.errors import DeployError
    from llmship.progress import RichReporter
    from llmship.state import StateStore

    settings = load(config, set_).config
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    path = report or Path(f"llmship-smoke-{stamp}.json")
    result = run_smoke(
        settings,
        confirm=confirmer(yes, "the smoke test creates a serverless endpoint, then deletes it"),
        report_path=path,
        store=StateStore(),
        say=lambda text: console.print(text, highlight=False, markup=False),
        reporter=RichReporter(),
    )
    if result.answer is not None:
        console.print(f"the endpoint answered: {result.answer!r}", highlight=False, markup=False)
    console.print(f"report: {result.report}", highlight=False)
    if result.cancelled:
        raise typer.Exit(1)
    if not result.ok:
        failed = result.failure
        raise DeployError(
            f"smoke test failed at {failed.name}: {failed.detail}; the report {result.report} "
            "lists every AWS request id and error (attach it to a bug report)"
        )
    console.print("[green]smoke test passed[/]: deployed, invoked and destroyed")


@app.command("check")
def check_command(
    config: ConfigOption = None,
    set_: SetOption = None,
    for_: Annotated[
        str,
        typer.Option(
            "--for", help="What to check: deploy, train, bedrock or expose (default: deploy)."
        ),
    ] = "deploy",
) -> None:
    """Ask IAM's policy simulator, before anything is created, whether you (and the
    SageMaker execution role) may make exactly the calls the command would make; print
    each missing permission with the llmship policy statement that grants it.

    Example: llmship aws check --for train
    """
    from llmship.deploy.planned_calls import CAPABILITIES

    if for_ not in CAPABILITIES:
        raise typer.BadParameter(f"{for_!r}; one of {', '.join(CAPABILITIES)}", param_hint="--for")
    loaded = load(config, set_)
    deployment = _deployment_for(loaded, for_)
    reports = permission_check(loaded, for_, deployment=deployment)
    for line in _report_lines(reports):
        typer.echo(line)
    for report in reports:
        if report.policy is not None:
            typer.echo(
                f"The policies that grant what `{for_}` needs (attach each to {report.who}):"
            )
            typer.echo(report.policy_text())
    if any(report.denied for report in reports):
        raise typer.Exit(1)


def permission_check(loaded, capability: str, *, deployment: str, run_id: str = "none", spec=None):
    """The check's reports for `capability` run with `loaded`'s settings."""
    from llmship.aws.check import run_check
    from llmship.aws.session import make_session
    from llmship.deploy.planned_calls import calls_for, role_needs

    settings = loaded.config
    calls = calls_for(capability, settings, deployment=deployment, run_id=run_id, spec=spec)
    return run_check(
        make_session(settings.aws),
        capability=capability,
        calls=calls,
        project=settings.project.name,
        bucket=settings.aws.bucket,
        role_arn=settings.aws.role_arn,
        roles=role_needs(capability, settings, deployment=deployment),
    )


def show_permission_check(
    loaded, capability: str, *, deployment: str, run_id: str = "none", spec=None
) -> None:
    """The permission check as a short section of a plan; it never stops the command."""
    from llmship.cli._common import console

    try:
        reports = permission_check(
            loaded, capability, deployment=deployment, run_id=run_id, spec=spec
        )
    except Exception as exc:  # advisory: a check that cannot run must not block the plan
        console.print(f"permissions: not checked ({exc})", highlight=False, markup=False)
        return
    for line in _report_lines(reports):
        console.print(line, highlight=False, markup=False)
    if any(report.policy is not None for report in reports):
        console.print(
            f"  `llmship aws check --for {capability}` prints the policy to attach",
            highlight=False,
            markup=False,
        )


def _report_lines(reports) -> list[str]:
    return ["permissions:"] + [f"  {line}" for report in reports for line in report.lines()]


def _deployment_for(loaded, capability: str) -> str:
    """The deployment name the checked command would use (no run: `<project>`)."""
    config = loaded.config
    if capability == "expose" and config.gateway.routes:
        from llmship.gateway.aws_expose import deployment_name

        return deployment_name(config.project.name, next(iter(config.gateway.routes)))
    from llmship.target import request_for

    return request_for(loaded, None).name
