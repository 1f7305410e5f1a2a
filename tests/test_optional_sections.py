"""A config kept for the gateway, `invoke` or `status` names neither `model` nor `data`:
only the commands that read a section require it, and say which key and which command."""

from __future__ import annotations

import textwrap

import pytest
import yaml
from typer.testing import CliRunner

from llmship.aws.runtime import InvokeResult
from llmship.cli import app
from llmship.config.loader import load_config, load_config_dict
from llmship.errors import ConfigError

runner = CliRunner()

GATEWAY_ONLY = """\
project:
  name: gw-only
gateway:
  routes:
    summarize:
      targets:
        - {local: "http://127.0.0.1:8080"}
"""


@pytest.fixture()
def gateway_project(tmp_path, monkeypatch):
    """A directory whose llmship.yaml has a gateway section and no model or data."""
    monkeypatch.setenv("LLMSHIP_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "llmship.yaml").write_text(GATEWAY_ONLY)
    return tmp_path


def test_keys_and_stats_work_without_model_or_data(gateway_project):
    made = runner.invoke(app, ["keys", "create", "bot", "--route", "summarize"])
    assert made.exit_code == 0, made.output
    listed = runner.invoke(app, ["keys", "list"])
    assert listed.exit_code == 0, listed.output
    assert "bot" in listed.stdout
    stats = runner.invoke(app, ["gateway", "stats"])
    assert stats.exit_code == 0, stats.output


def test_status_and_config_show_work_without_model_or_data(gateway_project):
    status = runner.invoke(app, ["status"])
    assert status.exit_code == 0, status.output
    shown = runner.invoke(app, ["config", "show"])
    assert shown.exit_code == 0, shown.output
    tree = yaml.safe_load(shown.stdout)
    assert "model" not in tree and "data" not in tree
    assert tree["gateway"]["routes"]["summarize"]["targets"][0]["local"].startswith("http://")


def test_invoke_works_without_model_or_data(gateway_project, monkeypatch):
    sent = {}

    def answer(runtime, name, *, body, content_type, accept=None):
        sent.update(name=name, body=body)
        return InvokeResult(b'[{"generated_text": "hi there"}]', "application/json")

    monkeypatch.setattr("llmship.aws.runtime.invoke", answer)
    result = runner.invoke(
        app,
        [
            "invoke",
            "my-endpoint",
            "--target",
            "sagemaker",
            "--prompt",
            "hello",
            "--endpoint-url",
            "http://127.0.0.1:9",
        ],
    )
    assert result.exit_code == 0, result.output
    assert sent["name"] == "my-endpoint" and b"hello" in sent["body"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["train"], "model: required by `llmship train`, but not given; add a model: section"),
        (["train"], "data: required by `llmship train`, but not given; add a data: section"),
        (["data", "prepare"], "model: required by `llmship data prepare`"),
        (["data", "export"], "data: required by `llmship data export`"),
        (["train", "--target", "bedrock"], "data: required by `llmship train --target bedrock`"),
    ],
)
def test_a_command_names_the_section_it_needs(gateway_project, args, expected):
    result = runner.invoke(app, args)
    assert isinstance(result.exception, ConfigError), result.output
    message = str(result.exception)
    assert message.startswith("llmship.yaml: ") and expected in message
    assert not (gateway_project / "runs").exists()  # refused before any work


def test_bedrock_training_does_not_ask_for_a_model(gateway_project):
    result = runner.invoke(app, ["train", "--target", "bedrock"])
    assert isinstance(result.exception, ConfigError), result.output
    assert "data: required by `llmship train --target bedrock`" in str(result.exception)
    assert "model:" not in str(result.exception)


def test_sagemaker_deploy_needs_the_model_section(gateway_project):
    result = runner.invoke(app, ["deploy", "--target", "sagemaker", "--plan"])
    assert isinstance(result.exception, ConfigError), result.output
    assert "model: required by `llmship deploy --target sagemaker`" in str(result.exception)


def test_the_library_loader_still_requires_both_by_default(tmp_path):
    """`llmship.load_config` loads what a run needs, as before; every problem at once."""
    path = tmp_path / "llmship.yaml"
    path.write_text(GATEWAY_ONLY + "train:\n  epochs: 0\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    message = str(info.value)
    assert message.splitlines()[0].endswith("3 problems in the config")
    assert "  - model: required, but not given" in message
    assert "  - data: required, but not given" in message
    assert "train.epochs (line 9)" in message


def test_require_names_the_command(tmp_path):
    loaded = load_config_dict(yaml.safe_load(GATEWAY_ONLY), base_dir=tmp_path, require=())
    assert loaded.config.model is None and loaded.config.data is None
    with pytest.raises(ConfigError, match=r"model: required by `llmship eval`"):
        loaded.require("model", command="eval")
    full = load_config_dict(
        {"model": {"name_or_path": "m"}, "data": {"source": "d.jsonl"}}, base_dir=tmp_path
    )
    assert full.require("model", "data", command="train") is full


def test_unknown_key_in_an_optional_section_lists_its_keys(tmp_path):
    path = tmp_path / "llmship.yaml"
    path.write_text(textwrap.dedent("model:\n  name_or_pth: x\n"))
    with pytest.raises(ConfigError, match=r"allowed here: name_or_path, kind, revision"):
        load_config(path, env={}, require=())
