"""`llmship train --target local-container`: the job's own source runs in a subprocess
under a temporary /opt/ml tree with the channels, hyperparameters and SM_* environment
the SageMaker training toolkit gives a job; the run gets model.tar.gz, model/ and
metrics; an interrupted run resumes from its checkpoints; the artifact loads in the
transformers 4.51.3 inference environment; and two processes train under DDP.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import time

import pytest

from helpers import memo_config
from llmship.errors import TrainError
from llmship.train.container import (
    decode_hyperparameters,
    prepare_container,
    run_local_container,
    to_cmd_args,
)
from llmship.train.metrics import read_metrics

pytestmark = pytest.mark.slow


def _quiet(line: str) -> None:
    pass


def test_toolkit_argument_rules():
    decoded = decode_hyperparameters(
        {"config": '"llmship.yaml"', "train.epochs": "3", "train.max_steps": "null", "x": "raw"}
    )
    assert decoded == {
        "config": "llmship.yaml",
        "train.epochs": 3,
        "train.max_steps": None,
        "x": "raw",
    }
    assert to_cmd_args({**decoded, "train.merge": True, "lst": ["a"]}) == [
        "--config", "llmship.yaml", "--lst", "['a']", "--train.epochs", "3",
        "--train.max_steps", "", "--train.merge", "True", "-x", "raw",
    ]  # fmt: skip


def test_contract_and_end_to_end(tmp_path, tiny_llama):
    loaded = memo_config(tmp_path, tiny_llama, train={"max_steps": 4, "save_steps": 2})
    job = prepare_container(loaded, num_gpus=0, on_line=_quiet)
    root, env = job.root, job.environ
    # the tree and environment SageMaker's toolkit gives the program
    assert (root / "code/llmship_train.py").is_file()
    assert (root / "code/llmship/train/entrypoint.py").is_file()
    assert "torch==" in (root / "code/requirements.txt").read_text()
    channels = ["model", "train", "validation"]
    assert sorted(p.name for p in (root / "input/data").iterdir()) == channels
    hps = json.loads((root / "input/config/hyperparameters.json").read_text())
    assert json.loads(hps["train.max_steps"]) == 4 and json.loads(hps["config"]) == "llmship.yaml"
    resource = json.loads((root / "input/config/resourceconfig.json").read_text())
    assert resource["current_host"] == "algo-1" and resource["hosts"] == ["algo-1"]
    assert env["SM_MODEL_DIR"] == str(root / "model")
    assert env["SM_OUTPUT_DATA_DIR"] == str(root / "output/data")
    assert env["SM_CHANNEL_TRAIN"] == str(root / "input/data/train")
    assert json.loads(env["SM_CHANNELS"]) == channels
    assert json.loads(env["SM_HOSTS"]) == ["algo-1"] and env["SM_CURRENT_HOST"] == "algo-1"
    assert env["SM_NUM_GPUS"] == "0" and env["SM_HP_TRAIN.MAX_STEPS"] == "4"
    assert json.loads(env["SM_HPS"])["train.max_steps"] == 4
    assert "sagemaker_program" not in json.loads(env["SM_HPS"])
    assert json.loads(env["SM_USER_ARGS"]) == job.command[2:]
    assert job.command[1] == "llmship_train.py"

    lines: list[str] = []
    result = job.collect(job.start(), lines.append)
    assert not root.exists()  # the temporary tree is gone
    assert any("trained 4 steps" in line for line in lines)
    assert [r["step"] for r in read_metrics(result.metrics) if "loss" in r] == [1, 2, 3, 4]
    with tarfile.open(result.model_tar) as tar:
        names = set(tar.getnames())
    # the job's model.tar.gz is the deployable artifact for the inference container
    assert {"config.json", "model.safetensors", "llmship.json", "code/inference.py"} <= names
    config = json.loads((result.model_dir / "config.json").read_text())
    assert config["transformers_version"] == "4.51.3" and "rope_parameters" not in config
    assert json.loads((result.run.root / "job.json").read_text())["model_data"] == str(
        result.model_tar
    )
    assert sorted(p.name for p in result.run.checkpoints.iterdir()) == [
        "step-0000002",
        "step-0000004",
    ]


def test_interrupted_run_resumes_from_checkpoints(tmp_path, tiny_llama):
    # Enough steps that the first checkpoint is seen before the run ends: older ones are
    # pruned (save_total_limit), so wait for any step-N, not for step 2 itself.
    loaded = memo_config(tmp_path, tiny_llama, train={"max_steps": 60, "save_steps": 2})
    job = prepare_container(loaded, num_gpus=0, on_line=_quiet)
    process = job.start()
    deadline = time.monotonic() + 240
    while not any(job.run.checkpoints.glob("step-*")):
        assert process.poll() is None and time.monotonic() < deadline, "no checkpoint came"
        time.sleep(0.02)
    process.kill()  # a spot interruption
    with pytest.raises(TrainError, match="--resume"):
        job.collect(process, _quiet)
    kept = sorted(p.name for p in job.run.checkpoints.iterdir())
    assert kept and not (job.run.model / "config.json").exists()

    lines: list[str] = []
    result = run_local_container(loaded, resume=job.run.run_id, num_gpus=0, on_line=lines.append)
    resumed = next(line for line in lines if "resuming from" in line)
    start = int(resumed.split("resuming from step-")[1].split()[0])
    assert f"step-{start:07d}" in kept and start >= 2
    # the output of the killed process is lost, as a job's is: the metrics run on from
    # the checkpoint, no step twice, none missing
    steps = [r["step"] for r in read_metrics(result.metrics) if "loss" in r]
    assert steps == list(range(start + 1, 61))
    assert any("trained 60 steps" in line for line in lines)


def _hf4_python() -> str:
    python = os.environ.get("LLMSHIP_HF4_PYTHON")
    if not python:
        pytest.skip("needs the transformers 4.51.3 environment: run `make test`")
    check = subprocess.run(
        [python, "-c", "import peft, pydantic, dotenv, rich, tensorboard"], capture_output=True
    )
    if check.returncode != 0:
        pytest.skip("the transformers 4.51.3 environment lacks the job's requirements.txt")
    return os.path.abspath(python)


def test_entry_point_under_transformers_4(tmp_path, tiny_llama):
    """The entry point trains under the library versions of a transformers 4.x image."""
    from llmship.package.compat import write_v4_files

    python = _hf4_python()
    # the tiny base is written by transformers 5: give it 4.x files, as hub models have
    base = tmp_path / "base"
    shutil.copytree(tiny_llama, base)
    write_v4_files(base, base, "4.51.3")
    loaded = memo_config(tmp_path, base, train={"max_steps": 2})
    lines: list[str] = []
    result = run_local_container(loaded, python=python, num_gpus=0, on_line=lines.append)
    assert any("trained 2 steps" in line for line in lines), "\n".join(lines[-20:])
    assert (result.model_dir / "code/inference.py").is_file()


def test_artifact_loads_in_the_inference_environment(tmp_path, tiny_llama):
    """A model trained with transformers 5 loads under 4.51.3 (the inference container
    deploy chooses) and computes the same logits as here."""
    python = _hf4_python()
    loaded = memo_config(tmp_path, tiny_llama, train={"max_steps": 2})
    result = run_local_container(loaded, num_gpus=0, on_line=_quiet)
    script = (
        "import sys, json, torch\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        "d = sys.argv[1]\n"
        "tok = AutoTokenizer.from_pretrained(d)\n"
        "model = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32).eval()\n"
        "ids = tok('Anna: lunch at 1?', return_tensors='pt').input_ids\n"
        "with torch.no_grad():\n"
        "    print(json.dumps(model(ids).logits[0, -1, :16].tolist()))\n"
    )
    done = subprocess.run(
        [python, "-c", script, str(result.model_dir)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(result.model_dir)
    model = AutoModelForCausalLM.from_pretrained(result.model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        ours = model(tok("Anna: lunch at 1?", return_tensors="pt").input_ids).logits[0, -1, :16]
    assert torch.allclose(ours, torch.tensor(theirs), atol=1e-4)


def test_two_processes_train_under_ddp(tmp_path, tiny_llama):
    """SM_NUM_GPUS=2 on a CPU host: the entry point starts torchrun with two processes
    (Gloo); rank 0 alone writes checkpoints, metrics and the model."""
    loaded = memo_config(tmp_path, tiny_llama, train={"max_steps": 2, "batch_size": 4})
    lines: list[str] = []
    result = run_local_container(loaded, num_gpus=2, on_line=lines.append)
    assert any("--nproc_per_node=2" in line for line in lines)
    assert sum("trained 2 steps" in line for line in lines) == 1  # rank 0 only
    assert [r["step"] for r in read_metrics(result.metrics) if "loss" in r] == [1, 2]
    assert (result.model_dir / "model.safetensors").is_file()
    assert sorted(p.name for p in result.run.checkpoints.iterdir()) == ["step-0000002"]
