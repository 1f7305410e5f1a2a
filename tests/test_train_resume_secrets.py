"""Resuming a local run whose config held a literal secret: the run directory kept only
the placeholder, so the secret comes from the current config or the environment, and
resuming with neither is a clear error, never a run that sends "<redacted>" as a token."""

from __future__ import annotations

import pytest

from llmship.config.loader import REDACTED, load_config
from llmship.errors import ConfigError
from llmship.runs import new_run
from llmship.train import run as train_run


class Started(Exception):
    """Raised where training would start: the test has what it came for."""


def _config(folder, token: str | None):
    line = f"  hf_token: {token}\n" if token is not None else ""
    path = folder / "llmship.yaml"
    path.write_text(
        "project: {name: demo}\n"
        f"model:\n  name_or_path: some/model\n{line}"
        "data: {source: data.jsonl}\n"
    )
    return load_config(path)


@pytest.fixture()
def saved_run(tmp_path, monkeypatch):
    """A run started from a config with a literal token (saved redacted), and the token
    its resume would train with."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    first = _config(tmp_path, "hf_literal_from_the_first_run")
    run = new_run(first, tmp_path / "runs")
    assert "hf_literal" not in run.config.read_text() and REDACTED in run.config.read_text()
    seen: dict = {}

    def start(loaded, env, reporter=None, callbacks=()):
        token = loaded.config.model.hf_token
        seen["token"] = token.get_secret_value() if token else None
        raise Started

    monkeypatch.setattr(train_run, "train_in_environment", start)

    def resume(current):
        with pytest.raises(Started):
            train_run.train(current, output=tmp_path / "runs", resume="latest")
        return seen["token"]

    return resume


def test_resume_takes_the_token_from_the_current_config(saved_run, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_from_the_environment")
    assert saved_run(_config(tmp_path, "hf_from_the_current_config")) == (
        "hf_from_the_current_config"
    )


def test_resume_takes_the_token_from_the_environment(saved_run, tmp_path, monkeypatch):
    current = _config(tmp_path, None)  # the config no longer names a token
    monkeypatch.setenv("HF_TOKEN", "hf_from_the_environment")
    assert saved_run(current) == "hf_from_the_environment"


def test_resume_without_a_token_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    run = new_run(_config(tmp_path, "hf_literal_from_the_first_run"), tmp_path / "runs")
    with pytest.raises(ConfigError) as info:
        train_run.train(_config(tmp_path, None), output=tmp_path / "runs", resume=run.root.name)
    message = str(info.value)
    assert "model.hf_token" in message and "HF_TOKEN" in message
    assert REDACTED not in message
