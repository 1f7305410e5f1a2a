"""Wall time of commands that load no model: `--help`, `status`, `keys list`, `deploy --plan`.

Each command runs in a fresh process (as a user would start it), several times; the
median is printed as one JSON line. `deploy --plan` plans a SageMaker deployment against
a moto server on a loopback port (needs the dev extras), so it includes boto3 and the
calls the plan makes. The other commands run with an empty state store.

    .venv/bin/python bench/cli_startup.py --runs 7
    git archive BASE src | tar -x -C /tmp/base   # then, to compare:
    .venv/bin/python bench/cli_startup.py --runs 7 --src /tmp/base/src
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REGION = "us-west-2"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _deploy_config(root: Path, endpoint: str) -> Path:
    """A SageMaker deployment of an S3 artifact in a bucket that exists on the moto server."""
    import boto3

    bucket = f"llmship-bench-{time.time_ns()}"
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=endpoint)
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    config = {
        "project": {"name": "bench"},
        "model": {"name_or_path": "tiny"},
        "data": {"source": "d.jsonl"},
        "deploy": {
            "target": "sagemaker",
            "name": "bench-startup",
            "instance_type": "ml.m5.xlarge",
            "model_data": f"s3://{bucket}/m.tar.gz",
        },
        "aws": {
            "region": REGION,
            "bucket": bucket,
            "role_arn": "arn:aws:iam::123456789012:role/llmship-sagemaker",
        },
    }
    path = root / "llmship.yaml"
    path.write_text(json.dumps(config))
    return path


def _median_seconds(argv: list[str], env: dict[str, str], cwd: Path, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--src",
        type=Path,
        help="Run llmship from this source tree instead (e.g. an exported older commit's "
        "src/), with the same interpreter and libraries.",
    )
    args = parser.parse_args()

    from moto.server import ThreadedMotoServer

    # moto answers the calls it lacks (quotas, policy simulation) with 500s; the plan
    # copes, and their tracebacks are not the benchmark's output.
    logging.getLogger("werkzeug").disabled = True

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        with tempfile.TemporaryDirectory(prefix="llmship-startup-") as tmp:
            root = Path(tmp)
            env = {
                **os.environ,
                "LLMSHIP_HOME": str(root / "home"),
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": REGION,
                **({"PYTHONPATH": str(args.src.resolve())} if args.src else {}),
            }
            for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
                env.pop(name, None)
            empty = root / "empty"
            empty.mkdir()
            os.environ.update(env)
            config = _deploy_config(root, endpoint)
            cli = [str(Path(sys.executable).with_name("llmship"))]
            commands = {
                "llmship --help": ([*cli, "--help"], empty),
                "llmship status": ([*cli, "status"], empty),
                "llmship keys list": ([*cli, "keys", "list"], empty),
                "llmship deploy --plan": (
                    [*cli, "deploy", "--config", str(config), "--plan"],
                    root,
                ),
            }
            result = {
                "runs": args.runs,
                "src": str(args.src) if args.src else "installed",
                "median_s": {
                    name: round(_median_seconds(argv, env, cwd, args.runs), 3)
                    for name, (argv, cwd) in commands.items()
                },
            }
    finally:
        server.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
