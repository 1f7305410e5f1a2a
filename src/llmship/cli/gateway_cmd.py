"""`llmship gateway`, `gateway stats`, `keys create|list|revoke` and `expose`: thin over
llmship.gateway."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from llmship.cli._common import ConfigOption, SetOption, confirmer, console, load, load_if_present
from llmship.errors import DeployError

gateway_app = typer.Typer(
    help="The authenticated API gateway in front of your routes (OpenAI routes, playground).",
    invoke_without_command=True,
    no_args_is_help=False,
)
keys_app = typer.Typer(help="API keys for the gateway: shown once, stored hashed.")


def _gateway_config(config: Path | None, set_: list[str] | None):
    """(GatewayConfig, base_dir, LoadedConfig | None): the config file's gateway section, or
    the defaults when there is no config file (keys and stats work anywhere)."""
    from llmship.config.gateway import GatewayConfig

    loaded = load_if_present(config, set_)
    if loaded is None:
        return GatewayConfig(), Path.cwd(), None
    return loaded.config.gateway, loaded.base_dir, loaded


def _store(config: Path | None, set_: list[str] | None):
    from llmship.gateway.backends import open_store

    gateway, _, loaded = _gateway_config(config, set_)
    if gateway.store == "dynamodb":
        from llmship.aws.session import make_session

        return open_store("dynamodb", table=gateway.table, session=make_session(loaded.config.aws))
    return open_store("sqlite")


@gateway_app.callback()
def gateway(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option(help="Address (default: gateway.host).", show_default=False)
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port (default: gateway.port).", show_default=False)
    ] = None,
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """Serve the gateway: /v1/chat/completions, /v1/completions, /v1/models (OpenAI, SSE
    streaming), /endpoints/ROUTE/invocations (toolkit payloads) and /playground, in front of
    the routes in the config's `gateway:` section.

    Example: llmship gateway --port 8000, then open http://127.0.0.1:8000/playground
    """
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from llmship.gateway.app import create_gateway_app

    settings, base_dir, _ = _gateway_config(config, set_)
    if not settings.routes:
        raise DeployError(
            "gateway.routes is empty: add a route, e.g. gateway: {routes: {summarize: "
            "{targets: [{local: http://127.0.0.1:8080}]}}}"
        )
    app = create_gateway_app(settings, _store(config, set_), base_dir=base_dir)
    address = f"http://{host or settings.host}:{port or settings.port}"
    console.print(f"gateway on {address} (playground: {address}/playground)", highlight=False)
    uvicorn.run(app, host=host or settings.host, port=port or settings.port, log_level="warning")


@gateway_app.command("stats")
def stats(
    hours: Annotated[float, typer.Option(help="How far back to count.")] = 24.0,
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """Per-key usage from the request log: requests, errors, tokens, latency.

    Example: llmship gateway stats --hours 168
    """
    from rich.table import Table

    from llmship.gateway.stats import usage_by_key

    store = _store(config, set_)
    rows = usage_by_key(store.logs(time.time() - hours * 3600))
    names = {record.key_id: record.name for record in store.list_keys()}
    table = Table(title=f"gateway usage, last {hours:g} h")
    table.add_column("key", no_wrap=True)
    for column in ("name", "req", "err", "in tok", "out tok", "p50 ms", "max ms", "routes"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.key_id,
            names.get(row.key_id, "(no valid key)" if row.key_id == "-" else ""),
            str(row.requests),
            str(row.errors),
            str(row.prompt_tokens),
            str(row.completion_tokens),
            f"{row.p50_latency_ms:.0f}",
            f"{row.max_latency_ms:.0f}",
            ", ".join(row.routes),
        )
    console.print(table)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="A label for the key (who or what uses it).")],
    route: Annotated[
        list[str] | None,
        typer.Option("--route", "-r", help="A route the key may use (repeatable; default: all)."),
    ] = None,
    rpm: Annotated[
        int | None,
        typer.Option(help="Requests per minute (default: gateway.requests_per_minute)."),
    ] = None,
    tpd: Annotated[
        int | None, typer.Option(help="Tokens per day (default: gateway.tokens_per_day).")
    ] = None,
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """Make an API key; it is printed once and only its hash is kept.

    Example: llmship keys create ci-bot --route summarize --rpm 30 --tpd 50000
    """
    from llmship.gateway.keys import new_key

    settings, _, loaded = _gateway_config(config, set_)
    key, record = new_key(
        name,
        route or ["*"],
        requests_per_minute=rpm or settings.requests_per_minute,
        tokens_per_day=tpd or settings.tokens_per_day,
    )
    _store(config, set_).put_key(record)
    for line in _sync(record, loaded):
        console.print(line, highlight=False)
    console.print(f"key id {record.key_id} ({name}), routes: {', '.join(record.routes)}")
    console.print("the key (shown once; store it now):")
    typer.echo(key)


@keys_app.command("list")
def keys_list(config: ConfigOption = None, set_: SetOption = None) -> None:
    """List keys: id, name, routes, limits, created, revoked (never the keys themselves)."""
    from rich.table import Table

    table = Table()
    for column in ("id", "name", "routes", "req/min", "tokens/day", "created", "status"):
        table.add_column(column)
    for record in _store(config, set_).list_keys():
        table.add_row(
            record.key_id,
            record.name,
            ", ".join(record.routes),
            str(record.requests_per_minute),
            str(record.tokens_per_day),
            time.strftime("%Y-%m-%d %H:%M", time.localtime(record.created)),
            "active" if record.active else "revoked",
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (from `llmship keys list`).")],
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """Revoke a key: every later request with it gets 401."""
    store = _store(config, set_)
    record = store.get_key(key_id)
    if record is None:
        raise DeployError(f"no key with id {key_id!r}; `llmship keys list` shows the ids")
    revoked = record.revoke(time.time())
    store.put_key(revoked)
    for line in _sync(revoked, _gateway_config(config, set_)[2]):
        console.print(line, highlight=False)
    console.print(f"revoked {key_id} ({record.name})")


def _sync(record, loaded) -> list[str]:
    """Carry a key change to every gateway exposed on AWS (their table and API keys),
    with the config's AWS settings (profile, assumed role) when there is a config."""
    from llmship.gateway.aws_expose import exposed_deployments, sync_key
    from llmship.state import StateStore

    store = StateStore()
    lines = []
    for resources in exposed_deployments(store).values():
        lines += sync_key(resources, record, aws=loaded.config.aws if loaded else None)
    return lines


def expose(
    route: Annotated[str, typer.Argument(help="The route to expose (a gateway.routes name).")],
    target: Annotated[str, typer.Option(help="Where: aws (Lambda + API Gateway).")] = "aws",
    plan: Annotated[bool, typer.Option("--plan", help="Print what would be created.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask first.")] = False,
    destroy: Annotated[
        bool, typer.Option("--destroy", help="Remove what expose created for the route.")
    ] = False,
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """Expose a route on AWS: the gateway as a Lambda function (zip without torch) behind an
    API Gateway REST API with a usage plan and API keys mapped from llmship keys, a DynamoDB
    table for keys, counters and logs, and a role that may invoke only the route's targets.

    Examples: llmship expose summarize --plan | llmship expose summarize --yes |
    llmship expose summarize --destroy --yes (or: llmship destroy <project>-gw-summarize)
    """
    from llmship.aws.session import make_session
    from llmship.gateway import aws_expose
    from llmship.state import StateStore
    from llmship.target import carry_out

    if target != "aws":
        raise DeployError(f"expose --target: {target!r} is not known; use aws")
    loaded = load(config, set_)
    store = StateStore()
    if destroy:
        name = aws_expose.deployment_name(loaded.config.project.name, route)
        if not confirmer(yes, f"expose --destroy deletes {name}")(
            f"Delete the exposed gateway {name}?"
        ):
            raise typer.Exit(1)
        for line in aws_expose.destroy(store, name, session=make_session(loaded.config.aws)):
            console.print(f"deleted {line}", highlight=False)
        return
    session = make_session(loaded.config.aws)
    the_plan = aws_expose.plan(loaded, route, session=session, keys=_store(config, set_))

    def show(exposing: aws_expose.ExposePlan) -> None:
        console.print(exposing.describe(), highlight=False)

    if plan:
        show(the_plan)
        return
    exposed = carry_out(
        the_plan,
        lambda exposing: aws_expose.apply(exposing, store=store, session=session),
        show=show,
        confirm=confirmer(yes, f"exposing {route} creates a public API, functions and a role"),
    )
    if exposed is None:
        raise typer.Exit(1)
    console.print(f"[green]exposed[/] {route} at {exposed.url}", highlight=False)
    console.print(
        f"try: curl -H 'Authorization: Bearer <key>' {exposed.url}/v1/models", highlight=False
    )


def register(app: typer.Typer) -> None:
    app.add_typer(gateway_app, name="gateway")
    app.add_typer(keys_app, name="keys")
    app.command("expose")(expose)
