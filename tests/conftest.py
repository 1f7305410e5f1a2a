"""Shared fixtures: tiny models and sample data, built once per session, nothing downloaded."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from helpers import SMALL, train_on_memo
from llmship.cli._common import quiet_libraries
from llmship.data.samples import write_sample
from llmship.models.tiny import create_tiny_model

quiet_libraries()

# Every AWS call llmship's clients make in this session (subprocesses too) is recorded
# here and judged at the end against the permission map and the printed policies.
_OWN_CALL_LOG = "LLMSHIP_AWS_CALL_LOG" not in os.environ
if _OWN_CALL_LOG:
    os.environ["LLMSHIP_AWS_CALL_LOG"] = str(
        Path(tempfile.mkdtemp(prefix="llmship-calls-")) / "calls.jsonl"
    )


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    return create_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama", "llama", SMALL)


@pytest.fixture(scope="session")
def tiny_t5(tmp_path_factory) -> Path:
    return create_tiny_model(tmp_path_factory.mktemp("models") / "tiny-t5", "t5", SMALL)


@pytest.fixture(scope="session")
def samsum_file(tmp_path_factory) -> Path:
    return write_sample("samsum", tmp_path_factory.mktemp("data") / "samsum.jsonl")


@pytest.fixture(scope="session")
def bio_file(tmp_path_factory) -> Path:
    return write_sample("bio-qa", tmp_path_factory.mktemp("data") / "bio.jsonl")


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tiny_llama):
    """A run that learned to summarize (20 steps) and its packaged tar.gz artifact, shared
    by the serving and invocation tests."""
    from llmship.package.build import build_artifact

    root = tmp_path_factory.mktemp("trained")
    run = train_on_memo(
        root,
        tiny_llama,
        train={"max_steps": 20, "learning_rate": 1e-2},
        eval={"generation": {"max_new_tokens": 12}},
    )
    artifact = build_artifact(run.root, root / "model.tar.gz")
    return run, artifact.path


@pytest.fixture(scope="session")
def engine_artifact(tiny_llama, tmp_path_factory) -> Path:
    """llmship's own artifact of the tiny model: served by the engine."""
    from llmship.package.build import build_artifact

    out = tmp_path_factory.mktemp("engine") / "artifact"
    return build_artifact(tiny_llama, out, "uncompressed", "5.5.3").path


@pytest.fixture()
def store(tmp_path, monkeypatch):
    """A state store of the test's own ($LLMSHIP_HOME under tmp_path)."""
    from llmship.state import StateStore

    monkeypatch.setenv("LLMSHIP_HOME", str(tmp_path / "home"))
    return StateStore()


@pytest.fixture(scope="session")
def moto_server():
    """moto in server mode on a loopback port: real HTTP, boto3 unchanged."""
    from moto.server import ThreadedMotoServer

    from llmship.serve.background import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture()
def aws_env(moto_server, monkeypatch):
    """Point every boto3 client at the moto server, with throwaway credentials."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    return moto_server


@pytest.fixture()
def session(aws_env):
    """A boto3 session on the moto server."""
    import boto3

    return boto3.Session(region_name="us-west-2")


def pytest_sessionfinish(session, exitstatus):
    """Fail the run when a recorded AWS call is missing from the permission map or not
    allowed by the policies `llmship aws bootstrap --print-policy` prints."""
    from permission_audit import audit, read_log, summary

    log = Path(os.environ["LLMSHIP_AWS_CALL_LOG"])
    records = read_log(log)
    if _OWN_CALL_LOG:
        shutil.rmtree(log.parent, ignore_errors=True)
    problems = audit(records) if records else []
    if not problems:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    write = reporter.write_line if reporter else print
    write(f"\nAWS permission audit: {len(problems)} problem(s) in {len(records)} recorded calls:")
    for problem in problems:
        write(f"  {problem}")
    write("Recorded calls (count, service operation [command]):")
    write(summary(records))
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
