"""Helpers the tests share."""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from llmship.config.loader import LoadedConfig, load_config_dict
from llmship.models.tiny import TinySpec

# The `llmship` command as a subprocess, with this interpreter.
LLMSHIP_CLI = [sys.executable, "-c", "from llmship.cli import main; main()"]

SMALL = TinySpec(hidden_size=64, intermediate_size=128, heads=4, kv_heads=2, layers=2)


def make_config(base_dir: Path, **sections) -> LoadedConfig:
    """A validated config rooted at base_dir; sections are merged over small defaults."""
    tree = {
        "model": {"max_length": 256},
        "train": {
            "epochs": 1,
            "batch_size": 8,
            "learning_rate": 5e-3,
            "save_steps": 1000,
            "logging_steps": 1,
            "lora": {"r": 16, "alpha": 16, "dropout": 0.0},
        },
        "eval": {"max_samples": 8, "generation": {"max_new_tokens": 16}},
    }
    for name, values in sections.items():
        merged = dict(tree.get(name, {}))
        for key, value in values.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
        tree[name] = merged
    return load_config_dict(tree, base_dir=base_dir, env={})


def memo_config(root: Path, base: Path, rows: int = 16, **sections) -> LoadedConfig:
    """A config training `base` on the first `rows` sample dialogues, all in train."""
    import json

    from llmship.data.samples import samsum_rows

    root.mkdir(parents=True, exist_ok=True)
    data = root / "memo.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in samsum_rows()[:rows]))
    sections["model"] = {"name_or_path": str(base), **sections.get("model", {})}
    sections["data"] = {
        "source": str(data),
        "validation_fraction": 0.0,
        "test_fraction": 0.0,
        **sections.get("data", {}),
    }
    return make_config(root, **sections)


def train_on_memo(root: Path, base: Path, rows: int = 16, **sections):
    """The run directory of a training run on memo_config."""
    from llmship.train.run import train

    run, _ = train(memo_config(root, base, rows, **sections))
    return run


def runtime(url: str):
    """boto3's sagemaker-runtime client pointed at a local server, one try per call (the
    tests assert the first answer, including errors boto3 would otherwise retry)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}),
    )


@contextmanager
def engine_server(artifact: Path, **settings):
    """`llmship serve` of `artifact` on a loopback port, with its engine (settings: the
    serve config)."""
    from llmship.config.serving import ServeConfig
    from llmship.serve.app import create_app
    from llmship.serve.background import running
    from llmship.serve.limits import limits_for

    app = create_app(artifact, "m", limits_for("realtime"), ServeConfig(**settings))
    with running(app) as url:
        yield url, app.state.model.backend.engine


def hf_toolkit_invoke(
    python: str, artifact: Path, requests: list[dict], tmp_path: Path, timeout: float = 300
) -> dict:
    """Answers of the real Hugging Face inference toolkit's handler service over `artifact`,
    run by `python` (the container's library versions): containers/hf_toolkit_invoke.py's
    last output line."""
    path = tmp_path / "requests.json"
    path.write_text(json.dumps(requests))
    script = Path(__file__).parent / "containers" / "hf_toolkit_invoke.py"
    done = subprocess.run(
        [python, str(script), str(artifact), str(path)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def assumable_role(name: str) -> str:
    """A role on the moto server that the test credentials may assume; its ARN."""
    from llmship.aws.session import client, make_session
    from llmship.config.schema import AwsConfig

    iam = client(make_session(AwsConfig(region="us-east-1")), "iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    return iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
