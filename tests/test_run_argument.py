"""Every command that takes a run takes it the same way: a run directory, a run id under
the runs directory, or "latest" (the newest run), through one resolver."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmship.cli import app
from llmship.errors import TrainError
from llmship.runs import resolve_run_argument

runner = CliRunner()


def make_run(root: Path, run_id: str, model: Path | None = None) -> Path:
    """A run directory (its config.yaml marks it as one), holding a copy of `model`."""
    run = root / run_id
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("project:\n  name: runs\n")
    if model is not None:
        shutil.copytree(model, run / "model")
    return run


def test_latest_id_and_path_resolve_alike(tmp_path):
    root = tmp_path / "runs"
    older, newer = make_run(root, "20260101-120000"), make_run(root, "20260102-090000")
    (root / "not-a-run").mkdir()
    assert resolve_run_argument("latest", root) == newer
    assert resolve_run_argument("20260101-120000", root) == older
    assert resolve_run_argument(str(older), root) == older
    model_dir = tmp_path / "some-model"
    assert resolve_run_argument(model_dir, root) == model_dir  # left to the command to judge


def test_latest_without_runs_says_how_to_make_one(tmp_path):
    with pytest.raises(TrainError, match=r"no runs under .*runs; run `llmship train` first"):
        resolve_run_argument("latest", tmp_path / "runs")


def test_package_latest_builds_the_newest_run(tmp_path, tiny_llama, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no llmship.yaml: runs are under ./runs
    make_run(tmp_path / "runs", "20260101-120000")  # no model: packaging it would fail
    newest = make_run(tmp_path / "runs", "20260102-090000", model=tiny_llama)
    result = runner.invoke(app, ["package", "latest"])
    assert result.exit_code == 0, result.output
    assert (newest / "artifact" / "model.tar.gz").is_file()


def test_package_by_run_id_follows_the_configured_runs_dir(tmp_path, tiny_llama, monkeypatch):
    """The runs directory comes from the config, which needs no model or data for this."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "llmship.yaml").write_text("project:\n  runs_dir: experiments\n")
    run = make_run(tmp_path / "experiments", "20260103-080000", model=tiny_llama)
    result = runner.invoke(app, ["package", "20260103-080000", "--format", "uncompressed"])
    assert result.exit_code == 0, result.output
    assert (run / "artifact" / "model" / "code" / "inference.py").is_file()


@pytest.mark.slow
def test_generate_latest_uses_the_newest_run(tmp_path, trained, monkeypatch):
    run, _ = trained
    monkeypatch.chdir(tmp_path)
    make_run(tmp_path / "runs", "20260101-120000")  # no model: generating with it would fail
    shutil.copytree(run.root, tmp_path / "runs" / "20260102-090000")
    result = runner.invoke(app, ["generate", "latest", "--input", "Anna: hi\nTom: hello"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip()
