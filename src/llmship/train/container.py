"""`llmship train --target local-container`: the SageMaker training contract, here.

The job's own source (source.py) runs in a subprocess under a temporary /opt/ml tree
laid out as SageMaker lays it out, with the same hyperparameters, channels and SM_*
environment the training toolkit gives a job (names from sagemaker-training-toolkit's
environment.py: SM_CHANNELS, SM_CHANNEL_<NAME>, SM_HPS, SM_HP_<NAME>, SM_HOSTS,
SM_CURRENT_HOST, SM_NUM_GPUS, SM_MODEL_DIR, SM_OUTPUT_DATA_DIR, ...), started as the
toolkit starts it: `python llmship_train.py --key value ...` in /opt/ml/code. Another
Python (--python, e.g. a virtual environment holding the container's library versions)
can run it. So the contract is tested without AWS or Docker.

    <tmp>/opt/ml/code/                 the job's source (llmship, launcher, config)
    <tmp>/opt/ml/input/config/         hyperparameters.json, resourceconfig.json,
                                       inputdataconfig.json
    <tmp>/opt/ml/input/data/<channel>/ train, validation (and model for a local base)
    <tmp>/opt/ml/model/                SM_MODEL_DIR
    <tmp>/opt/ml/output/data/          SM_OUTPUT_DATA_DIR
    <tmp>/opt/ml/checkpoints  ->       the run's checkpoints/ (SageMaker's S3 sync: a
                                       rerun with --resume continues from them)

Afterwards the run directory holds what a job leaves: model.tar.gz (SM_MODEL_DIR
archived, as SageMaker uploads it), model/ and output/ (metrics), and job.json.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmship.config.loader import LoadedConfig, reload_saved
from llmship.errors import TrainError
from llmship.runs import RunDir, find_run, new_run
from llmship.train.source import PROGRAM, write_source

HOST = "algo-1"
CHANNELS = ("train", "validation")
JOB_FILE = "job.json"


@dataclass(frozen=True)
class ContainerResult:
    """What the local container run left in the run directory."""

    run: RunDir
    model_tar: Path
    model_dir: Path
    metrics: Path
    lines: tuple[str, ...]


def to_cmd_args(hyperparameters: dict[str, Any]) -> list[str]:
    """The toolkit's argument list: sorted keys, `--key value` (`-k` for one letter),
    dicts as k=v pairs, None as an empty string, everything else str()."""
    args = []
    for key in sorted(hyperparameters):
        value = hyperparameters[key]
        args.append(f"--{key}" if len(key) > 1 else f"-{key}")
        if isinstance(value, dict):
            args.append(",".join(f"{k}={v}" for k, v in sorted(value.items())))
        else:
            args.append("" if value is None else str(value))
    return args


def decode_hyperparameters(encoded: dict[str, str]) -> dict[str, Any]:
    """hyperparameters.json as the toolkit reads it: each value JSON-decoded if it can be."""
    out = {}
    for key, value in encoded.items():
        try:
            out[key] = json.loads(value)
        except (TypeError, ValueError):
            out[key] = value
    return out


def _env_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def sm_environment(root: Path, hyperparameters: dict[str, Any], num_gpus: int) -> dict[str, str]:
    """The SM_* variables the training toolkit sets for the user's program."""
    channels = sorted(p.name for p in (root / "input/data").iterdir() if p.is_dir())
    user = {k: v for k, v in hyperparameters.items() if not k.startswith("sagemaker_")}
    resource = json.loads((root / "input/config/resourceconfig.json").read_text())
    data_config = json.loads((root / "input/config/inputdataconfig.json").read_text())
    module = PROGRAM.removesuffix(".py")
    env: dict[str, Any] = {
        "hosts": resource["hosts"],
        "network_interface_name": resource["network_interface_name"],
        "hps": user,
        "user_entry_point": PROGRAM,
        "framework_params": {},
        "resource_config": resource,
        "input_data_config": data_config,
        "output_data_dir": str(root / "output/data"),
        "channels": channels,
        "current_host": resource["current_host"],
        "current_instance_type": resource["current_instance_type"],
        "current_instance_group": resource["current_group_name"],
        "current_instance_group_hosts": resource["hosts"],
        "instance_groups": [resource["current_group_name"]],
        "is_hetero": False,
        "module_name": module,
        "log_level": 20,
        "framework_module": None,
        "input_dir": str(root / "input"),
        "input_config_dir": str(root / "input/config"),
        "output_dir": str(root / "output"),
        "num_cpus": os.cpu_count() or 1,
        "num_gpus": num_gpus,
        "num_neurons": 0,
        "model_dir": str(root / "model"),
        "module_dir": str(root / "code"),
        "user_args": to_cmd_args(user),
        "output_intermediate_dir": str(root / "output/intermediate"),
    }
    env["training_env"] = {k: v for k, v in env.items() if k != "user_args"}
    for name in channels:
        env[f"channel_{name}"] = str(root / "input/data" / name)
    for key, value in user.items():
        env[f"hp_{key}"] = value
    return {f"SM_{key.upper()}": _env_value(value) for key, value in env.items()}


@dataclass
class ContainerJob:
    """A prepared /opt/ml tree and the command that runs the job's program in it."""

    run: RunDir
    root: Path
    command: list[str]
    environ: dict[str, str]

    def start(self) -> subprocess.Popen:
        """Start the program (stdout and stderr merged, line by line)."""
        return subprocess.Popen(
            self.command,
            cwd=self.root / "code",
            env=self.environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )

    def collect(
        self, process: subprocess.Popen, on_line: Callable[[str], None] = print
    ) -> ContainerResult:
        """Stream the program's output to `on_line` until it exits; then archive the model
        as SageMaker would and copy model/ and output/ into the run. The tree goes either
        way; the program is killed if this is interrupted."""
        tail: deque[str] = deque(maxlen=30)
        lines: list[str] = []
        try:
            for line in process.stdout:
                line = line.rstrip("\n")
                lines.append(line)
                tail.append(line)
                on_line(line)
            code = process.wait()
            if code != 0:
                shown = "\n    ".join(tail)
                raise TrainError(
                    f"the training program exited with status {code}; last lines:\n    {shown}"
                    "\n  its checkpoints are kept: `llmship train --target local-container "
                    f"--resume {self.run.run_id}` continues"
                )
            return self._keep_results(tuple(lines))
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            shutil.rmtree(self.root.parent.parent, ignore_errors=True)

    def _keep_results(self, lines: tuple[str, ...]) -> ContainerResult:
        from llmship.package.targz import write_targz

        model_tar = self.run.root / "model.tar.gz"
        model_tar.unlink(missing_ok=True)
        write_targz(self.root / "model", model_tar)
        kept = ((self.root / "model", self.run.model), (self.root / "output/data", self.run.output))
        for source, target in kept:
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target)
        record = {"target": "local-container", "model_data": str(model_tar)}
        (self.run.root / JOB_FILE).write_text(json.dumps(record, indent=2) + "\n")
        return ContainerResult(self.run, model_tar, self.run.model, self.run.metrics, lines)


def prepare_container(
    loaded: LoadedConfig,
    *,
    output: str | Path | None = None,
    resume: str | None = None,
    python: str | None = None,
    num_gpus: int | None = None,
    on_line: Callable[[str], None] = print,
) -> ContainerJob:
    """A run directory (new, with its data prepared, or `resume`d) and the /opt/ml tree
    and command that train it like a SageMaker job would."""
    from llmship.sagemaker.images import training_framework
    from llmship.train.run import prepare_run_data

    if resume:
        run = find_run(loaded, resume, output)
        loaded = reload_saved(run.config, loaded)
    else:
        run = new_run(loaded, output)
        report = prepare_run_data(loaded, run)
        on_line(
            f"data: {report.rows['train']} train / {report.rows['validation']} validation rows; "
            f"{sum(report.dropped.values())} dropped as too long"
        )
    root = Path(tempfile.mkdtemp(prefix="llmship-container-")) / "opt" / "ml"
    framework = training_framework(loaded.config.train.sagemaker.transformers_version)
    write_source(root / "code", loaded, framework["pytorch"], framework["transformers"])
    data_config = {}
    for split in CHANNELS:
        files = sorted(run.channel(split).glob("*.jsonl"))
        if files:
            (root / "input/data" / split).mkdir(parents=True)
            for path in files:
                shutil.copy2(path, root / "input/data" / split / path.name)
            data_config[split] = {
                "TrainingInputMode": "File",
                "S3DistributionType": "FullyReplicated",
                "RecordWrapperType": "None",
            }
    base = Path(loaded.resolve_path(loaded.config.model.name_or_path))
    if base.is_dir():  # the job gets a local base model as the model channel
        (root / "input/data").mkdir(parents=True, exist_ok=True)
        (root / "input/data/model").symlink_to(base.resolve(), target_is_directory=True)
        data_config["model"] = dict(data_config.get("train", {}))
    run.checkpoints.mkdir(parents=True, exist_ok=True)
    (root / "checkpoints").symlink_to(run.checkpoints.resolve(), target_is_directory=True)
    for directory in ("model", "output/data", "output/intermediate", "input/config"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    from llmship.train.sagemaker_job import hyperparameters

    encoded = hyperparameters(
        loaded,
        {
            "sagemaker_program": PROGRAM,
            "sagemaker_submit_directory": str(root / "code"),
            "sagemaker_container_log_level": 20,
            "sagemaker_job_name": f"local-{run.run_id}",
            "checkpoint-dir": str(root / "checkpoints"),
        },
    )
    resource = {
        "current_host": HOST,
        "current_instance_type": "local",
        "current_group_name": "homogeneousCluster",
        "hosts": [HOST],
        "instance_groups": [
            {"instance_group_name": "homogeneousCluster", "instance_type": "local", "hosts": [HOST]}
        ],
        "network_interface_name": "eth0",
    }
    config_dir = root / "input/config"
    (config_dir / "hyperparameters.json").write_text(json.dumps(encoded))
    (config_dir / "resourceconfig.json").write_text(json.dumps(resource))
    (config_dir / "inputdataconfig.json").write_text(json.dumps(data_config))
    decoded = decode_hyperparameters(encoded)
    gpus = _visible_gpus() if num_gpus is None else num_gpus
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    environ.update(sm_environment(root, decoded, gpus))
    environ["TRAINING_JOB_NAME"] = f"local-{run.run_id}"
    environ.pop("PYTHONPATH", None)  # the job imports llmship from its own source only
    user = {k: v for k, v in decoded.items() if not k.startswith("sagemaker_")}
    command = [python or sys.executable, PROGRAM, *to_cmd_args(user)]
    return ContainerJob(run, root, command, environ)


def run_local_container(
    loaded: LoadedConfig,
    *,
    output: str | Path | None = None,
    resume: str | None = None,
    python: str | None = None,
    num_gpus: int | None = None,
    on_line: Callable[[str], None] = print,
) -> ContainerResult:
    """Prepare, run and collect: the local equivalent of a SageMaker training job."""
    job = prepare_container(
        loaded, output=output, resume=resume, python=python, num_gpus=num_gpus, on_line=on_line
    )
    return job.collect(job.start(), on_line)


def _visible_gpus() -> int:
    import torch

    return torch.cuda.device_count()
