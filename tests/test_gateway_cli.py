"""The commands: keys create|list|revoke, gateway stats, expose --plan / --destroy."""

from __future__ import annotations

import time

import boto3
import yaml
from typer.testing import CliRunner

from llmship.cli import app
from llmship.gateway.keys import KEY_PATTERN, matches
from llmship.gateway.sqlite_store import SqliteStore
from llmship.gateway.store import RequestLog

runner = CliRunner()


def test_keys_lifecycle_and_stats(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMSHIP_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    made = runner.invoke(app, ["keys", "create", "bot", "--route", "sum", "--rpm", "5"])
    assert made.exit_code == 0, made.output
    key = made.stdout.strip().splitlines()[-1]
    assert KEY_PATTERN.match(key)
    store = SqliteStore(tmp_path / "home" / "gateway.db")
    (record,) = store.list_keys()
    assert matches(key, record) and record.routes == ("sum",)
    assert (record.requests_per_minute, record.tokens_per_day) == (5, 100_000)

    listed = runner.invoke(app, ["keys", "list"])
    assert record.key_id in listed.stdout and "active" in listed.stdout
    assert key not in listed.stdout

    store.log(RequestLog(time.time(), record.key_id, "sum", "local:x", 200, 12.0, 7, 5, False))
    store.log(RequestLog(time.time(), "-", "-", "-", 401, 1.0, 0, 0, False))
    stats = runner.invoke(app, ["gateway", "stats"])
    assert stats.exit_code == 0, stats.output
    row = next(line for line in stats.stdout.splitlines() if record.key_id in line)
    assert "bot" in row and " 7 " in row and " 5 " in row

    revoked = runner.invoke(app, ["keys", "revoke", record.key_id])
    assert revoked.exit_code == 0 and store.get_key(record.key_id).revoked is not None
    assert "revoked" in runner.invoke(app, ["keys", "list"]).stdout
    missing = runner.invoke(app, ["keys", "revoke", "ffffffffffff"])
    assert missing.exit_code != 0


def test_expose_plan_creates_nothing(aws_env, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMSHIP_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    config = {
        "project": {"name": "cli"},
        "model": {"name_or_path": "base"},
        "data": {"source": "data.jsonl"},
        "gateway": {"routes": {"r": {"targets": [{"sagemaker": "ep"}]}}},
    }
    (tmp_path / "llmship.yaml").write_text(yaml.safe_dump(config))
    planned = runner.invoke(app, ["expose", "r", "--plan"])
    assert planned.exit_code == 0, planned.output
    assert "cli-gw-r" in planned.stdout and "per million" in planned.stdout
    assert "endpoint/ep" in planned.stdout
    assert boto3.client("lambda").list_functions()["Functions"] == []
    gone = runner.invoke(app, ["expose", "r", "--destroy", "--yes"])
    assert gone.exit_code == 0, gone.output


def test_gateway_without_routes_says_what_to_add(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from llmship.errors import DeployError

    result = runner.invoke(app, ["gateway"])
    assert isinstance(result.exception, DeployError)
    assert "gateway.routes is empty" in str(result.exception)
