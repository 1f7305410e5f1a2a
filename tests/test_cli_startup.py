"""Commands that load no model do not import the libraries that load models.

Each command runs in a fresh interpreter with `python -X importtime`, which lists every
module the process imported; the test reads the top-level package names from it. Wall
times are not asserted here (they depend on the machine): bench/cli_startup.py measures
them and BENCHMARKS.md records them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import boto3
import pytest

from llmship.aws.s3 import ensure_bucket

MODEL_LIBRARIES = {"torch", "transformers", "peft", "datasets"}
AWS_LIBRARIES = {"boto3", "botocore"}
REGION = "us-west-2"

# The console script's entry point, started the way `llmship ...` starts it.
RUN_CLI = "import sys; sys.argv[0] = 'llmship'; from llmship.cli import main; main()"


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """An empty state store and key store, and no llmship.yaml in the working directory."""
    monkeypatch.setenv("LLMSHIP_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)


def imported_packages(importtime_log: str) -> set[str]:
    """Top-level package names from `-X importtime` lines such as
    'import time:   512 |   1024 |     transformers.utils.hub'."""
    names = set()
    for line in importtime_log.splitlines():
        if not line.startswith("import time:"):
            continue
        name = line.rsplit("|", 1)[-1].strip()
        if name and name != "imported package":
            names.add(name.split(".")[0])
    return names


def run_cli(*args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", RUN_CLI, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},  # the plan's table, uncut
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done, imported_packages(done.stderr)


def test_the_importtime_log_is_read():
    log = (
        "import time: self [us] | cumulative | imported package\n"
        "import time:       130 |        130 |   _io\n"
        "import time:       512 |       1024 |     transformers.utils.hub\n"
        "some warning line | not an import\n"
    )
    assert imported_packages(log) == {"_io", "transformers"}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--help",), "From a base LLM"),
        (("status",), "no deployments recorded"),
        (("keys", "list"), ""),
    ],
    ids=["help", "status", "keys-list"],
)
def test_commands_that_load_no_model_import_no_model_or_aws_library(args, expected):
    done, imported = run_cli(*args)
    assert expected in done.stdout
    assert "llmship" in imported  # the log was read
    assert imported & (MODEL_LIBRARIES | AWS_LIBRARIES) == set()


def test_deploy_plan_imports_no_model_library(aws_env, tmp_path):
    """A SageMaker plan talks to AWS (boto3 is expected) but loads no model."""
    bucket = f"llmship-startup-{time.time_ns()}"
    ensure_bucket(boto3.client("s3", region_name=REGION), bucket, REGION, {})
    config = {
        "project": {"name": "demo"},  # the permission audit's project for untagged calls
        "model": {"name_or_path": "tiny"},
        "data": {"source": "d.jsonl"},
        "deploy": {
            "target": "sagemaker",
            "name": "startup-plan",
            "instance_type": "ml.m5.xlarge",
            "model_data": f"s3://{bucket}/m.tar.gz",
        },
        "aws": {
            "region": REGION,
            "bucket": bucket,
            "role_arn": "arn:aws:iam::123456789012:role/llmship-demo-sagemaker",
        },
    }
    path = tmp_path / "llmship.yaml"
    path.write_text(json.dumps(config))
    done, imported = run_cli("deploy", "--config", str(path), "--plan")
    assert "sagemaker:endpoint" in done.stdout
    assert "boto3" in imported
    assert imported & MODEL_LIBRARIES == set()


def test_quieting_the_libraries_holds_when_transformers_is_imported_later():
    """quiet_libraries() no longer imports transformers; what it sets must still apply
    when a command that loads a model imports it afterwards."""
    check = (
        "from llmship.cli._common import quiet_libraries; quiet_libraries(); "
        "import sys; assert 'transformers' not in sys.modules; "
        "from transformers.utils import logging; "
        "print(logging.get_verbosity(), logging.is_progress_bar_enabled())"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TRANSFORMERS_VERBOSITY", "HF_HUB_DISABLE_PROGRESS_BARS")
    }
    done = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    import logging

    assert done.stdout.split() == [str(logging.ERROR), "False"]


def test_config_sections_build_their_validators_on_first_use():
    """Importing the CLI builds no config validator (about 0.2 s for all of them);
    loading a config builds them and validates as before."""
    check = (
        "import llmship.cli; from llmship.config.section import Section\n"
        "def every(cls):\n"
        "    for sub in cls.__subclasses__():\n"
        "        yield sub\n"
        "        yield from every(sub)\n"
        "built = [c.__name__ for c in every(Section) if c.__pydantic_complete__]\n"
        "assert not built, built\n"
        "from llmship.config.schema import AwsConfig\n"
        "assert AwsConfig(region='us-west-2').region == 'us-west-2'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
