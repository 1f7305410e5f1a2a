"""Shared fixtures: tiny models and sample data, built once per session, nothing downloaded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from helpers import SMALL
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
