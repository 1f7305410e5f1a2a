"""No secret ever in output, logs, files or requests: canary values for the AWS keys and
session token, HF_TOKEN (and model.hf_token in the config) and API keys; every command
the CLI registers (found by walking the typer app, so new commands are covered) runs in
a failing variant and with LLMSHIP_DEBUG=1 (the verbose mode: tracebacks shown), and a
few succeed against moto. Searched: stdout/stderr, tracebacks, llmship's log records,
every file under the project (run dirs, config snapshots, artifacts) and LLMSHIP_HOME
(state store, upload markers), and every request moto received (its recorder).

The access key id travels in each request's Authorization header and the session token
in X-Amz-Security-Token, as SigV4 requires: those two headers are the only places they
may appear. The secret access key itself must appear nowhere.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import traceback
import urllib.request

import pytest
import typer.main
from typer.testing import CliRunner

from llmship.cli import app

CANARIES = {
    "AWS_ACCESS_KEY_ID": "AKIACANARY0000000042",
    "AWS_SECRET_ACCESS_KEY": "canarySecretAccessKey/0000000000000000042",
    "AWS_SESSION_TOKEN": "canarySessionToken00000000000000000042",
    "HF_TOKEN": "hf_canaryEnvToken000000000000042",
    "HUGGING_FACE_HUB_TOKEN": "hf_canaryHubToken000000000000042",
    "OPENAI_API_KEY": "sk-canaryOpenAiKey00000000000042",
    "LLMSHIP_API_KEY": "lsk_canaryApiKey00000000000000042",
}
CONFIG_TOKEN = "hf_canaryConfigToken00000000042"
ALL = [*CANARIES.values(), CONFIG_TOKEN]
# where a canary may legitimately travel: (header, canary)
SIGNING_HEADERS = {
    "authorization": CANARIES["AWS_ACCESS_KEY_ID"],
    "x-amz-security-token": CANARIES["AWS_SESSION_TOKEN"],
}
REGION = "us-west-2"


def commands() -> list[list[str]]:
    """Every leaf command of the CLI, as its word path."""
    out = []

    def walk(command, path):
        if hasattr(command, "commands"):
            for name, child in command.commands.items():
                walk(child, [*path, name])
        else:
            out.append((path, command))

    walk(typer.main.get_command(app), [])
    return out


def failing_args(path: list[str], command) -> list[list[str]]:
    """Invocations of `command` that must fail (a bad override, missing things)."""
    options = {o for p in command.params for o in p.opts}
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    positional = ["no-such-thing"] * len(arguments)
    # a command without arguments would run for real (a benchmark, the demo): a usage
    # error instead, plus its known fast failure when it has one
    variants = [[*path, *positional] if arguments else [*path, "--no-such-option"]]
    variants += [[*path, *extra] for extra in FAST_FAILURES.get(" ".join(path), [])]
    if "--set" in options:
        variants.append([*path, *positional, "--set", "no.such.key=1", "--config", "llmship.yaml"])
    elif "--config" in options:
        variants.append([*path, *positional, "--config", "missing.yaml"])
    return variants


FAST_FAILURES = {
    "bench train": [["--shape", "no-such-shape"]],
    "bench serve": [["--model", "no-such-model", "--num-prompts", "1"]],
    "init": [["--template", "no-such-template", "--dir", "new"]],
}
SUCCEEDING = [
    ["config", "show", "--config", "llmship.yaml"],
    ["deploy", "--config", "llmship.yaml", "--plan"],
    ["aws", "bootstrap", "--config", "llmship.yaml"],
    ["status", "--discover", "--config", "llmship.yaml"],
    ["destroy", "--all", "--yes"],
]


@pytest.fixture()
def project(tmp_path, monkeypatch, aws_env):
    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LLMSHIP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    bucket = f"llmship-secrets-{time.time_ns()}"
    import boto3

    boto3.client("s3", region_name=REGION).create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    (tmp_path / "data.jsonl").write_text('{"prompt": "a", "completion": "b"}\n')
    (tmp_path / "llmship.yaml").write_text(
        json.dumps(
            {
                "project": {"name": "canary"},
                "model": {"name_or_path": "./no-model", "hf_token": CONFIG_TOKEN},
                "data": {"source": "data.jsonl"},
                "deploy": {
                    "target": "sagemaker",
                    "name": "canary-dep",
                    "instance_type": "ml.m5.xlarge",
                    "model_data": f"s3://{bucket}/m.tar.gz",
                },
                "aws": {
                    "region": REGION,
                    "bucket": bucket,
                    "role_arn": "arn:aws:iam::123456789012:role/llmship-canary-sagemaker",
                },
            }
        )
    )
    return tmp_path


def recorder(base: str, action: str) -> bytes:
    request = urllib.request.Request(f"{base}/moto-api/recorder/{action}", method="POST")
    if action == "download-recording":
        request.method = "GET"
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read()


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(self.format(record))


def test_no_canary_leaks_from_any_command(project, aws_env, tmp_path, monkeypatch):
    from moto.moto_api import recorder as moto_recorder

    # the recording goes to a file of its own (moto's default is the working directory)
    monkeypatch.setattr(moto_recorder, "_location", str(tmp_path / "moto-recording"))
    recorder(aws_env, "reset-recording")
    recorder(aws_env, "start-recording")
    logs = Records()
    logging.getLogger("llmship").addHandler(logs)
    logging.getLogger("llmship").setLevel(logging.DEBUG)
    runner = CliRunner()
    outputs: dict[str, str] = {}
    ran = 0
    timings: dict[str, float] = {}
    try:
        invocations = [args for path, cmd in commands() for args in failing_args(path, cmd)]
        for args in invocations + SUCCEEDING:
            for debug in ("", "1"):
                monkeypatch.setenv("LLMSHIP_DEBUG", debug)
                started = time.monotonic()
                result = runner.invoke(app, args)
                timings[" ".join(args)] = time.monotonic() - started
                text = result.output
                if result.exception is not None and not isinstance(result.exception, SystemExit):
                    text += "".join(traceback.format_exception(result.exception))
                    text += str(result.exception)
                outputs[f"{' '.join(args)} (debug={debug or 0})"] = text
                ran += 1
    finally:
        logging.getLogger("llmship").removeHandler(logs)
        recorder(aws_env, "stop-recording")
    assert len({" ".join(a[:2]) for a, _ in [(p, c) for p, c in commands()]}) >= 20
    assert ran >= 2 * len(commands())
    # the successful runs did reach AWS (moto) and wrote state
    assert any("canary-dep" in out for key, out in outputs.items() if "--plan" in key)

    leaks = []
    for where, text in outputs.items():
        leaks += [f"{where}: {c[:12]}" for c in ALL if c in text]
    leaks += [f"log: {c[:12]}" for c in ALL for line in logs.lines if c in line]
    # everything but the user's own config (it holds model.hf_token by the user's choice)
    written = [
        p
        for p in tmp_path.rglob("*")
        if p.is_file() and p.name != "moto-recording" and p != tmp_path / "llmship.yaml"
    ]
    assert any(p.name == "state.db" for p in written)
    for path in written:
        data = path.read_bytes()
        leaks += [f"{path.relative_to(tmp_path)}: {c[:12]}" for c in ALL if c.encode() in data]

    recording = recorder(aws_env, "download-recording").decode()
    requests = [json.loads(line) for line in recording.splitlines() if line.strip()]
    assert len(requests) >= 5, "moto recorded the AWS calls"
    for request in requests:
        headers = {k.lower(): str(v) for k, v in (request.get("headers") or {}).items()}
        for header, canary in SIGNING_HEADERS.items():
            headers.pop(header, None) if canary in headers.get(header, "") else None
        where = f"request {request.get('method')} {request.get('url', '')[:80]}"
        body = request.get("body") or ""
        if request.get("body_encoded"):
            body = base64.b64decode(body).decode("utf-8", "replace")
        visible = json.dumps({"url": request.get("url"), "headers": headers, "body": body})
        leaks += [f"{where}: {c[:12]}" for c in ALL if c in visible]
        # the secret key never travels, not even in the signing headers
        assert CANARIES["AWS_SECRET_ACCESS_KEY"] not in json.dumps(request)
    assert leaks == []
    slow = {args: round(t) for args, t in timings.items() if t > 10}
    assert slow == {}, "a failing variant ran for real; give it a fast failure"


def test_a_leak_would_be_caught(tmp_path):
    """The search finds a canary where one is planted (the test above can fail)."""
    planted = tmp_path / "runs" / "r1" / "config.yaml"
    planted.parent.mkdir(parents=True)
    planted.write_text(f"hf_token: {CONFIG_TOKEN}\n")
    found = [
        p for p in tmp_path.rglob("*") if p.is_file() and CONFIG_TOKEN.encode() in p.read_bytes()
    ]
    assert found == [planted]
