"""`llmship deploy`, `llmship status` and `llmship destroy`: thin over llmship.deploy."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from llmship.cli._common import (
    ConfigOption,
    OutputOption,
    SetOption,
    confirmer,
    console,
    load,
    load_if_present,
)
from llmship.errors import DeployError

if TYPE_CHECKING:
    from llmship.config.loader import LoadedConfig
    from llmship.config.schema import AwsConfig
    from llmship.target import DeploymentStatus


def _aws_settings(loaded: LoadedConfig | None) -> AwsConfig:
    """The config's aws section, else the defaults (status and destroy work anywhere)."""
    from llmship.config.schema import AwsConfig

    return loaded.config.aws if loaded else AwsConfig()


def deploy(
    run: Annotated[
        str | None,
        typer.Argument(
            help="Run directory, run id or 'latest' (none: deploy.model_data, "
            "model_package_arn or hub_model_id).",
            show_default=False,
        ),
    ] = None,
    config: ConfigOption = None,
    set_: SetOption = None,
    output: OutputOption = None,
    target: Annotated[
        str | None,
        typer.Option(
            help="local, sagemaker, bedrock or bedrock-import (default: deploy.target).",
            show_default=False,
        ),
    ] = None,
    plan_only: Annotated[
        bool,
        typer.Option("--plan", help="Show what would be created and its cost; create nothing."),
    ] = False,
    yes: Annotated[
        bool,
        typer.Option("--yes", "-y", help="Create resources billed by the hour without asking."),
    ] = False,
    ttl: Annotated[
        str | None,
        typer.Option(
            help="Delete the endpoint after this long, e.g. 8h (scheduled in AWS).",
            show_default=False,
        ),
    ] = None,
    create_s3_endpoint: Annotated[
        bool,
        typer.Option(
            "--create-s3-endpoint",
            help="VPC deploys: add an S3 gateway endpoint when the subnets cannot reach S3.",
        ),
    ] = False,
) -> None:
    """Deploy a run's model (or an S3 artifact, model package or hub model): show the plan
    and its price, ask, create, wait until it serves.

    Examples: llmship deploy latest --target sagemaker --plan | llmship deploy latest --ttl 8h
    """
    from llmship.cli._plan import render
    from llmship.cli._targets import get_target
    from llmship.progress import RichReporter
    from llmship.runs import find_run
    from llmship.state import StateStore
    from llmship.target import carry_out, request_for

    overrides = list(set_ or [])
    if target:
        overrides.append(f"deploy.target={target}")
    if ttl:
        overrides.append(f"deploy.ttl={ttl}")
    if create_s3_endpoint:
        overrides.append("deploy.vpc.create_s3_endpoint=true")
    loaded = load(config, overrides)
    chosen_deploy = loaded.config.deploy
    if chosen_deploy.target == "sagemaker" and chosen_deploy.hub_model_id is None:
        # The instance is sized, and TGI's token limits set, from model.max_length.
        loaded.require("model", command="deploy --target sagemaker")
    found = find_run(loaded, run, output) if run else None
    request = request_for(loaded, found)
    chosen = get_target(loaded.config.deploy.target, StateStore(), loaded.config.aws)
    plan = chosen.plan(request)
    if plan_only:
        console.print(render(plan))
        if loaded.config.deploy.target != "local":
            from llmship.cli.aws_cmd import show_permission_check

            capability = "deploy" if loaded.config.deploy.target == "sagemaker" else "bedrock"
            show_permission_check(
                loaded,
                capability,
                deployment=plan.deployment,
                run_id=request.run_id,
                spec=plan.spec if capability == "deploy" else None,
            )
        return
    billed = f"deploying {plan.deployment} creates resources billed by the hour"
    deployed = carry_out(
        plan,
        lambda plan: chosen.apply(plan, reporter=RichReporter()),
        show=lambda plan: console.print(render(plan)),
        confirm=confirmer(yes, f"{billed} ({plan.cost.describe()})"),
    )
    if deployed is None:
        raise typer.Exit(1)
    console.print(f"[green]{deployed.deployment}[/] is {deployed.status} at {deployed.address}")
    for message in deployed.messages:
        console.print(message)
    console.print(f"next: llmship invoke {deployed.deployment} --prompt '...'")


def status(
    refresh: Annotated[
        bool, typer.Option(help="Check every recorded resource in AWS; forget what is gone.")
    ] = False,
    idle: Annotated[
        float | None,
        typer.Option(
            help="Flag endpoints with no invocations in this many hours.", show_default=False
        ),
    ] = None,
    discover: Annotated[
        bool,
        typer.Option(
            help="Find llmship-tagged resources in AWS (this project, or all without a "
            "config) and list those the state store does not record."
        ),
    ] = False,
    adopt: Annotated[
        bool,
        typer.Option(help="With --discover: record what was found, so `destroy` removes it."),
    ] = False,
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """List recorded deployments with their live state, instance, price, spend and TTL.

    Examples: llmship status | llmship status --refresh --idle 24 |
    llmship status --discover --adopt
    """
    from llmship.cli._targets import get_target
    from llmship.state import StateStore
    from llmship.target import recorded, target_of

    store = StateStore()
    loaded = load_if_present(config, set_)
    aws = _aws_settings(loaded)
    if adopt and not discover:
        raise DeployError("--adopt records what --discover finds: pass both")
    if discover:  # this project's resources, or every project's without a config
        _discover(store, aws, loaded.config.project.name if loaded else None, adopt)
    rows, notes = [], []
    for deployment, resources in recorded(store).items():
        chosen = get_target(target_of(resources), store, aws)
        if refresh:
            for gone in chosen.refresh(resources):
                notes.append(f"{deployment}: {gone.kind} {gone.name} no longer exists; forgotten")
            resources = store.resources(deployment)
            if not resources:
                continue
        row = chosen.status(deployment, resources, idle_hours=idle)
        rows.append(row)
        notes += [f"{deployment}: {note}" for note in row.notes]
    if not rows:
        console.print("no deployments recorded")
    else:
        _print_status(rows)
    for note in notes:
        console.print(note, highlight=False)


STATUS_COLUMNS = (
    "deployment",
    "target",
    "state",
    "instance",
    "per hour",
    "spent",
    "ttl left",
    "at",
)

UNBOUNDED_WIDTH = 10_000


def _status_cells(row: DeploymentStatus) -> dict[str, str]:
    """One deployment's cells by column (rich markup: an idle deployment's state in yellow)."""
    return dict(
        zip(
            STATUS_COLUMNS,
            (
                row.deployment,
                row.target,
                f"[yellow]{row.state} (idle)[/]" if row.idle else row.state,
                row.instance,
                "-" if row.hourly_usd is None else f"${row.hourly_usd:.2f}",
                "-" if row.spent_usd is None else f"${row.spent_usd:.2f}",
                _duration(row.ttl_left),
                row.address,
            ),
            strict=True,
        )
    )


def _print_status(rows: list[DeploymentStatus]) -> None:
    """One table where the terminal is wide enough to show every cell uncut. A narrower one
    (an 80-column terminal cut every cell to "sagema…") gets a block per deployment: its
    name on a line of its own, then state, price and TTL, then the rest, all in full."""
    table = Table(*STATUS_COLUMNS)
    for row in rows:
        table.add_row(*_status_cells(row).values())
    unbounded = console.options.update_width(UNBOUNDED_WIDTH)  # measured where nothing is cut
    if console.measure(table, options=unbounded).maximum <= console.width:
        console.print(table)
        return
    for row in rows:
        cells = _status_cells(row)
        console.print(f"[bold]{row.deployment}[/]", highlight=False)
        for line in (
            f"{cells['state']} · per hour {cells['per hour']} · ttl left {cells['ttl left']}",
            f"{row.target} · {row.instance} · spent {cells['spent']}",
            f"at {row.address}",
        ):
            console.print(Padding(Text.from_markup(line), (0, 0, 0, 2), expand=False))


def _discover(store, aws, project: str | None, adopt: bool) -> None:
    from llmship.aws.session import make_session
    from llmship.deploy import discover

    found = discover.discover(make_session(aws), project=project, bucket=aws.bucket)
    missing = discover.missing_from(store, found)
    whose = f"project {project}" if project else "any project"
    console.print(
        f"found {len(found)} llmship-tagged resources of {whose}; "
        f"{len(missing)} not in the state store",
        highlight=False,
    )
    if missing:
        table = Table("kind", "name", "deployment", "project", "region")
        for item in missing:
            table.add_row(item.kind, item.name, item.deployment, item.project, item.region)
        console.print(table)
    if adopt and missing:
        adopted = discover.adopt(store, missing)
        names = sorted({item.deployment for item in adopted})
        console.print(
            f"adopted {len(adopted)} resources of {', '.join(names)}; "
            "`llmship destroy NAME` removes them",
            highlight=False,
        )
    elif missing:
        console.print("`llmship status --discover --adopt` records them", highlight=False)


def _duration(value: timedelta | None) -> str:
    if value is None:
        return "-"
    minutes = int(value.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m"


def destroy(
    name: Annotated[
        str | None, typer.Argument(help="The deployment to remove.", show_default=False)
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Remove every recorded deployment.")] = False,
    purge: Annotated[
        bool, typer.Option(help="Also delete the uploaded artifacts and the endpoint's logs.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask first.")] = False,
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """Delete a deployment's endpoint, configs, models, scaling, TTL schedule and S3 gateway
    endpoint (and with --purge its artifacts and logs). Safe to run again.

    Examples: llmship destroy my-project-20260101-120000 | llmship destroy --all --yes
    """
    from llmship.cli._targets import get_target
    from llmship.state import StateStore
    from llmship.target import recorded, target_of

    if bool(name) == all_:
        raise DeployError("give a deployment name or --all (not both); `llmship status` lists them")
    store = StateStore()
    deployments = recorded(store)
    names = list(deployments) if all_ else [name]
    if name and name not in deployments:
        console.print(f"nothing recorded for {name}: already gone")
        return
    if not names:
        console.print("no deployments recorded")
        return
    listing = ", ".join(names)
    if not confirmer(yes, f"destroy deletes {listing}")(f"Delete {listing}?"):
        raise typer.Exit(1)
    aws = _aws_settings(load_if_present(config, set_))
    for deployment in names:
        chosen = get_target(target_of(deployments[deployment]), store, aws)
        for line in chosen.destroy(deployment, purge=purge):
            console.print(f"deleted {line}", highlight=False)
        left = store.resources(deployment)
        if left:
            for r in left:
                why = r.details.get("kept") or "--purge deletes artifacts"
                console.print(f"{deployment}: kept {r.kind} {r.name} ({why})", highlight=False)
        else:
            console.print(f"[green]{deployment} is gone[/]")


def register(app: typer.Typer) -> None:
    app.command("deploy")(deploy)
    app.command("status")(status)
    app.command("destroy")(destroy)
