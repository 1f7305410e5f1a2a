"""The CLI end to end: demo, config show, init, create-tiny, data, train, eval, generate."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpers import LLMSHIP_CLI
from llmship.cli import app

runner = CliRunner()


def llmship(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*LLMSHIP_CLI, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    done = llmship("demo", "--dir", "work", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for stage in (
        "1/7 model",
        "2/7 data",
        "3/7 train",
        "4/7 eval",
        "5/7 generate",
        "6/7 package",
        "7/7 serve",
    ):
        assert stage in done.stdout
    [run] = (tmp_path / "work" / "runs").iterdir()
    report = json.loads((run / "eval" / "report.json").read_text())
    assert report["rougeL"] > 0.5  # it learned the task; an untrained model scores near 0
    assert (run / "plots" / "loss.png").is_file()
    assert (run / "model" / "model.safetensors").is_file()
    summary = done.stdout.split("->", 1)[1].split("6/7")[0].strip()
    assert "will" in summary
    assert (run / "artifact" / "model.tar.gz").is_file()
    # boto3 got the same summary back from the served artifact, and a real stream.
    assert f'[{{"generated_text": "{summary}"}}]' in " ".join(done.stdout.split())
    assert "validate: 0 errors" in done.stdout
    streamed = int(done.stdout.split("streamed ")[1].split()[0])
    assert streamed >= 2


def project(tmp_path: Path, tiny_llama: Path, samsum_file: Path) -> Path:
    (tmp_path / "llmship.yaml").write_text(
        textwrap.dedent(f"""\
        model:
          name_or_path: {tiny_llama}
          max_length: 256
          hf_token: ${{HF_TOKEN:-}}
        data:
          source: {samsum_file}
          max_rows: 24
        train:
          max_steps: 3
          batch_size: 4
        eval:
          max_samples: 4
          generation:
            max_new_tokens: 8
        """)
    )
    return tmp_path / "llmship.yaml"


def test_train_eval_generate_commands(tmp_path, tiny_llama, samsum_file, monkeypatch):
    monkeypatch.chdir(tmp_path)
    project(tmp_path, tiny_llama, samsum_file)
    result = runner.invoke(app, ["train", "--set", "train.max_steps=2"])
    assert result.exit_code == 0, result.output
    assert "trained 2 steps" in result.output
    result = runner.invoke(app, ["train", "--resume", "latest", "--set", "train.max_steps=4"])
    assert result.exit_code == 0, result.output
    assert "trained 4 steps" in result.output
    assert len(list((tmp_path / "runs").iterdir())) == 1  # resumed in place
    result = runner.invoke(app, ["eval", "latest"])
    assert result.exit_code == 0, result.output
    assert "ROUGE-1" in result.output and "(4 test rows)" in result.output
    [run] = (tmp_path / "runs").iterdir()
    result = runner.invoke(app, ["generate", str(run), "--input", "Anna: hi\nTom: hello"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["data", "prepare", "--out", "prepared"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "prepared" / "train" / "train.jsonl").is_file()


def test_config_show_applies_overrides_and_masks_secrets(
    tmp_path, tiny_llama, samsum_file, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    project(tmp_path, tiny_llama, samsum_file)
    monkeypatch.setenv("HF_TOKEN", "hf_CANARY_show_me_not")
    result = runner.invoke(app, ["config", "show", "--set", "train.epochs=7"])
    assert result.exit_code == 0, result.output
    assert "epochs: 7" in result.output
    assert "hf_CANARY_show_me_not" not in result.output
    assert "hf_token: '**********'" in result.output


def test_bad_config_fails_before_any_work_with_exit_2(tmp_path, tiny_llama, samsum_file):
    project(tmp_path, tiny_llama, samsum_file)
    done = llmship("train", "--set", "train.lora.r=0", cwd=tmp_path)
    assert done.returncode == 2
    assert "error:" in done.stderr and "train.lora.r (--set train.lora.r)" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists()


def test_init_and_create_tiny_and_sample(tmp_path):
    result = runner.invoke(app, ["init", "--template", "qa-flan-t5", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "llmship.yaml").read_text().startswith("# Project.")
    assert (tmp_path / "data" / "qa.jsonl").is_file()
    result = runner.invoke(app, ["model", "create-tiny", "--arch", "t5", str(tmp_path / "t5")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "t5" / "model.safetensors").is_file()
    config = json.loads((tmp_path / "t5" / "config.json").read_text())
    assert config["model_type"] == "t5"
    result = runner.invoke(app, ["data", "sample", "samsum", str(tmp_path / "s.jsonl")])
    assert result.exit_code == 0
    assert len((tmp_path / "s.jsonl").read_text().splitlines()) == 800


def test_package_and_validate_commands_follow_the_config(
    tmp_path, tiny_llama, samsum_file, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    project(tmp_path, tiny_llama, samsum_file)
    with (tmp_path / "llmship.yaml").open("a") as handle:
        handle.write("package:\n  format: uncompressed\n  transformers_version: 5.5.3\n")
    assert runner.invoke(app, ["train", "--set", "train.max_steps=1"]).exit_code == 0
    [run] = (tmp_path / "runs").iterdir()
    result = runner.invoke(app, ["package", str(run)])
    assert result.exit_code == 0, result.output
    artifact = run / "artifact" / "model"
    assert (artifact / "code" / "inference.py").is_file()
    # Written for transformers 5.5.3 as configured: the files are left as transformers 5 saves
    # them, which a 4.51.3 container would refuse.
    assert json.loads((artifact / "tokenizer_config.json").read_text())["tokenizer_class"] == (
        "TokenizersBackend"
    )
    assert runner.invoke(app, ["validate", str(artifact)]).exit_code == 0
    refused = runner.invoke(app, ["validate", str(artifact), "--transformers-version", "4.51.3"])
    assert refused.exit_code == 1 and "TokenizersBackend" in refused.output
    small = runner.invoke(app, ["validate", str(artifact), "--instance-memory-gib", "0.0001"])
    assert small.exit_code == 1 and "do not fit" in small.output
