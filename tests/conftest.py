"""Shared fixtures: tiny models and sample data, built once per session, nothing downloaded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from helpers import SMALL, train_on_memo
from llmship.cli._common import quiet_libraries
from llmship.data.samples import write_sample
from llmship.models.tiny import create_tiny_model

quiet_libraries()


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
