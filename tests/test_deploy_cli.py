"""`llmship deploy / status / destroy` end to end (moto server), the local target (a real
background `llmship serve`), and the small pure parts: names, limits, cost, plan."""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from typer.testing import CliRunner

from llmship.aws.s3 import ensure_bucket
from llmship.cli import app
from llmship.cli._plan import render
from llmship.errors import DeployError
from llmship.runs import RunDir
from llmship.sagemaker import names
from llmship.sagemaker.cost import HOURS_PER_MONTH, Cost, running_cost
from llmship.sagemaker.limits import LIMITS
from llmship.state import StateStore
from llmship.target import Action, DeploymentStatus, Plan, recorded, request_for
from llmship.targets.local.target import SERVER_KIND, LocalTarget

REGION = "us-west-2"
ROLE = "arn:aws:iam::123456789012:role/llmship-sagemaker"


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMSHIP_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture()
def quota_ok(monkeypatch):
    """moto has no Service Quotas listing; quotas.py has its own tests."""
    from llmship.targets.sagemaker import quotas

    monkeypatch.setattr(
        quotas,
        "check_instance_quota",
        lambda session, instance, count, usage="endpoint": quotas.QuotaCheck(
            True, "q", "L-1", 5.0, count, "quota 'q' (L-1) is 5"
        ),
    )


def test_names_fit_sagemakers_rules():
    name = names.default_name("a-very-long-project-name-of-32ch", "20260101-120000-2")
    assert len(name) <= names.MAX_DEPLOYMENT_NAME and name.endswith("20260101-120000-2")
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    version = names.versioned("x" * 48, at)
    assert version == "x" * 48 + "-20260102030405" and len(version) == 63
    taken = {"d-20260102030405", "d-20260102030406"}
    assert names.new_version("d", taken.__contains__, at) == "d-20260102030407"
    for bad in ("", "-a", "a-", "a_b", "x" * 64):
        with pytest.raises(DeployError, match="not a valid name"):
            names.check_name(bad)


def test_limits_table_and_cost():
    assert (LIMITS["realtime"].max_payload_bytes, LIMITS["realtime"].timeout_s) == (6 << 20, 60)
    serverless = LIMITS["serverless"]
    assert (serverless.max_payload_bytes, serverless.gpu, serverless.vpc) == (4 << 20, False, False)
    assert serverless.memory_mb == (1024, 2048, 3072, 4096, 5120, 6144)
    assert (LIMITS["async"].max_payload_bytes, LIMITS["async"].timeout_s) == (1 << 30, 3600)
    assert Cost(1.5, "").monthly_usd == 1.5 * HOURS_PER_MONTH
    assert running_cost(0.5, created=0, now=3 * 3600) == 1.5
    assert running_cost(None, 0, 10) is None


def test_plan_renders_actions_prices_and_problems():
    from rich.console import Console

    plan = Plan(
        target="sagemaker",
        deployment="demo",
        project="p",
        region=REGION,
        kind="realtime",
        actions=[
            Action("create", "sagemaker:model", "demo-1"),
            Action("create", "sagemaker:endpoint", "demo", "realtime", 1.21),
        ],
        cost=Cost(1.21, ""),
        instance="ml.g5.xlarge",
        instance_reason="cheapest that fits 3.1 GiB",
        problems=["aws.role_arn is not set"],
    )
    console = Console(record=True, width=160)
    console.print(render(plan))
    text = console.export_text()
    for expected in ("sagemaker:endpoint", "$1.21", "$883.30/month", "cheapest that fits"):
        assert expected in text
    assert "problem: aws.role_arn is not set" in text
    assert plan.bills_hourly
    with pytest.raises(DeployError, match=r"aws\.role_arn is not set"):
        plan.check()


def write_config(tmp_path, bucket: str, name: str) -> str:
    path = tmp_path / "llmship.yaml"
    path.write_text(
        json.dumps(
            {
                "project": {"name": "cli"},
                "model": {"name_or_path": "tiny"},
                "data": {"source": "d.jsonl"},
                "deploy": {
                    "target": "sagemaker",
                    "name": name,
                    "instance_type": "ml.m5.xlarge",
                    "model_data": f"s3://{bucket}/m.tar.gz",
                },
                "aws": {"region": REGION, "bucket": bucket, "role_arn": ROLE},
            }
        )
    )
    return str(path)


def test_cli_plan_confirm_deploy_status_destroy(aws_env, quota_ok, tmp_path, monkeypatch):
    from llmship.cli._common import console

    monkeypatch.setattr(console, "width", 200)  # the tables' columns, uncut
    bucket = f"llmship-cli-{time.time_ns()}"
    ensure_bucket(boto3.client("s3", region_name=REGION), bucket, REGION, {})
    name = f"cli-{time.time_ns() % 10**8}"
    config = write_config(tmp_path, bucket, name)
    runner = CliRunner()
    sm = boto3.client("sagemaker", region_name=REGION)

    def endpoints():
        return [e["EndpointName"] for e in sm.list_endpoints(MaxResults=100)["Endpoints"]]

    result = runner.invoke(app, ["deploy", "--config", config, "--plan"])
    assert result.exit_code == 0, result.output
    assert "create" in result.output and "$0.23" in result.output and "$167.90" in result.output
    assert name not in endpoints() and StateStore().resources() == []

    result = runner.invoke(app, ["deploy", "--config", config])  # no terminal, no --yes
    assert isinstance(result.exception, DeployError)
    assert "pass --yes" in str(result.exception) and "$0.23/h" in str(result.exception)
    assert name not in endpoints()

    result = runner.invoke(app, ["deploy", "--config", config, "--yes"])
    assert result.exit_code == 0, result.output
    assert f"{name} is InService" in result.output and name in endpoints()

    result = runner.invoke(app, ["status", "--config", config])
    assert result.exit_code == 0, result.output
    assert name in result.output and "InService" in result.output
    assert "1 x ml.m5.xlarge" in result.output and "$0.23" in result.output

    result = runner.invoke(app, ["destroy", name, "--config", config])
    assert isinstance(result.exception, DeployError) and "--yes" in str(result.exception)
    result = runner.invoke(app, ["destroy", name, "--config", config, "--yes"])
    assert result.exit_code == 0, result.output
    assert f"{name} is gone" in result.output and name not in endpoints()
    result = runner.invoke(app, ["destroy", name, "--config", config, "--yes"])
    assert result.exit_code == 0 and "already gone" in result.output
    assert recorded(StateStore()) == {}


@pytest.mark.slow
def test_local_target_serves_a_run_in_the_background(tiny_llama, tmp_path):
    from helpers import make_config

    root = tmp_path / "runs" / "20260101-120000"
    shutil.copytree(tiny_llama, root / "model")
    (root / "config.yaml").write_text("{}\n")
    loaded = make_config(
        tmp_path,
        model={"name_or_path": str(tiny_llama)},
        data={"source": "d.jsonl"},
        project={"name": "local"},
    )
    store = StateStore()
    target = LocalTarget(store, start_timeout_s=180)
    plan = target.plan(request_for(loaded, RunDir(root)))
    assert plan.deployment == "local-20260101-120000" and not plan.bills_hourly
    deployed = target.apply(plan)
    try:
        record = store.resources(plan.deployment)[0]
        assert (record.kind, record.status) == (SERVER_KIND, "UP")
        pid = record.details["pid"]
        status = target.status(plan.deployment, store.resources(plan.deployment))
        assert status.state == "running" and status.address == deployed.address
        body = json.dumps({"inputs": "Hello", "parameters": {"max_new_tokens": 4}}).encode()
        answer = json.loads(target.invoke(plan.deployment, body))
        assert isinstance(answer[0]["generated_text"], str)
        again = target.plan(request_for(loaded, RunDir(root)))
        assert any("already runs locally" in p for p in again.problems)
    finally:
        assert target.destroy(plan.deployment) == [f"{SERVER_KIND} {plan.deployment}"]
    assert store.resources() == []
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert target.destroy(plan.deployment) == []


@pytest.mark.slow
def test_deploy_local_then_invoke_it_by_name(tiny_llama, tmp_path, monkeypatch):
    """The next step `deploy --target local` prints works as printed: no --target, no
    endpoint URL, no AWS credentials."""
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "runs" / "20260101-120000"
    shutil.copytree(tiny_llama, root / "model")
    (root / "config.yaml").write_text("{}\n")
    config = tmp_path / "llmship.yaml"
    config.write_text(
        json.dumps(
            {
                "project": {"name": "mine"},
                "model": {"name_or_path": str(tiny_llama)},
                "data": {"source": "d.jsonl"},
            }
        )
    )
    runner = CliRunner()
    name = "mine-20260101-120000"
    deployed = runner.invoke(app, ["deploy", str(root), "--target", "local", "-c", str(config)])
    assert deployed.exit_code == 0, deployed.output
    try:
        assert f"next: llmship invoke {name} --prompt" in deployed.output
        answer = runner.invoke(
            app, ["invoke", name, "--prompt", "Hello", "--param", "max_new_tokens=4"]
        )
        assert answer.exit_code == 0, answer.output
        assert answer.stdout.strip()
        streamed = runner.invoke(
            app, ["invoke", name, "--prompt", "Hello", "--param", "max_new_tokens=4", "--stream"]
        )
        assert streamed.exit_code == 0, streamed.output
    finally:
        gone = runner.invoke(app, ["destroy", name, "--yes"])
        assert gone.exit_code == 0, gone.output
    assert recorded(StateStore()) == {}


class GivenStatus:
    """A target that reports the given rows (the layout is under test here, not AWS)."""

    def __init__(self, rows: dict[str, DeploymentStatus]):
        self.rows = rows

    def status(self, deployment, resources, *, idle_hours=None) -> DeploymentStatus:
        return self.rows[deployment]


STATUS_ROWS = [
    DeploymentStatus(
        deployment="summarizer-prod-20260101-120000",
        target="sagemaker",
        address="summarizer-prod-20260101-120000",
        state="InService",
        instance="1 x ml.g5.2xlarge",
        hourly_usd=1.52,
        spent_usd=3.04,
        ttl_left=timedelta(hours=7, minutes=59),
        idle=True,
        resources=5,
    ),
    DeploymentStatus(
        deployment="local-20260101-120000",
        target="local",
        address="http://127.0.0.1:8080",
        state="running",
        instance="this machine",
        hourly_usd=None,
        spent_usd=None,
        ttl_left=None,
        idle=None,
        resources=1,
    ),
]


@pytest.mark.parametrize("columns", [80, 200])
def test_status_shows_names_states_prices_and_ttls_whole_at_any_width(
    columns, tmp_path, monkeypatch
):
    from llmship.cli import _targets as targets
    from llmship.cli._common import console

    monkeypatch.chdir(tmp_path)
    store = StateStore()
    for row in STATUS_ROWS:
        store.record_creating("sagemaker:endpoint", row.deployment, row.deployment, "p")
    given = GivenStatus({row.deployment: row for row in STATUS_ROWS})
    monkeypatch.setattr(targets, "get_target", lambda *args, **kwargs: given)
    monkeypatch.setattr(console, "width", None)  # follow COLUMNS, as in a terminal
    result = CliRunner().invoke(app, ["status"], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    assert max(len(line) for line in result.output.splitlines()) <= columns
    for whole in (
        *("summarizer-prod-20260101-120000", "InService (idle)", "$1.52", "7h59m", "$3.04"),
        *("1 x ml.g5.2xlarge", "local-20260101-120000", "running", "http://127.0.0.1:8080"),
    ):
        assert whole in result.output
    if columns == 200:  # the table, as before
        header = next(line for line in result.output.splitlines() if "deployment" in line)
        for column in ("target", "state", "instance", "per hour", "spent", "ttl left", "at"):
            assert column in header
    else:  # a block per deployment: what matters first
        assert "deployment" not in result.output
        assert "InService (idle) · per hour $1.52 · ttl left 7h59m" in result.output
