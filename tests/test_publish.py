"""llmship publish: the model card and the exact files handed to huggingface_hub."""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import pytest
import yaml
from huggingface_hub import HfApi

from helpers import train_on_memo
from llmship.config.schema import EvalConfig
from llmship.errors import PackageError
from llmship.publish.hub import publish
from llmship.train.evaluation import evaluate


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory, tiny_llama):
    run = train_on_memo(
        tmp_path_factory.mktemp("publish"),
        tiny_llama,
        rows=20,
        model={"hf_token": "${HF_TOKEN:-}"},
        data={"validation_fraction": 0.1, "test_fraction": 0.1},
        train={"max_steps": 2},
    )
    evaluate(run, EvalConfig(max_samples=2, generation={"max_new_tokens": 4}))
    return run


def fake_api():
    """An HfApi double with the real signatures; it records what upload_folder was given."""
    api = mock.create_autospec(HfApi, instance=True)
    uploaded = {}

    def upload_folder(*, folder_path, repo_id, **kwargs):
        folder = Path(folder_path)
        uploaded.update({p.name: p.read_bytes() for p in folder.iterdir()})
        return mock.Mock(commit_url=f"https://huggingface.co/{repo_id}/commit/abc")

    api.upload_folder.side_effect = upload_folder
    return api, uploaded


def test_publish_merged_model_with_card(evaluated_run, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_CANARY_publish")
    api, uploaded = fake_api()
    published = publish(evaluated_run, "me/tiny-summarizer", license_id="apache-2.0", api=api)
    api.create_repo.assert_called_once_with(
        repo_id="me/tiny-summarizer", repo_type="model", private=True, exist_ok=True
    )
    assert sorted(uploaded) == [
        "README.md",
        "chat_template.jinja",
        "config.json",
        "generation_config.json",
        "llmship.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    assert uploaded["model.safetensors"] == (evaluated_run.model / "model.safetensors").read_bytes()
    assert published.files == tuple(sorted(uploaded))
    card = uploaded["README.md"].decode()
    metadata = yaml.safe_load(card.split("---")[1])
    report = json.loads(evaluated_run.eval_report.read_text())
    assert metadata["library_name"] == "transformers" and metadata["license"] == "apache-2.0"
    assert metadata["base_model"].endswith("tiny-llama")
    metrics = metadata["model-index"][0]["results"][0]["metrics"]
    assert {m["type"]: m["value"] for m in metrics} == {
        k: report[k] for k in ("rouge1", "rouge2", "rougeL")
    }
    for text in (
        "## Intended use",
        "## Training",
        "| method | lora |",
        "Summarize this dialogue",
        "inside the tokenizer's chat template",
    ):
        assert text in card
    assert all(b"hf_CANARY_publish" not in content for content in uploaded.values())


def test_publish_adapter_only(evaluated_run):
    api, uploaded = fake_api()
    publish(evaluated_run, "me/tiny-adapter", adapter_only=True, api=api)
    assert sorted(uploaded) == [
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
        "chat_template.jinja",
        "llmship.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    card = uploaded["README.md"].decode()
    assert yaml.safe_load(card.split("---")[1])["library_name"] == "peft"
    assert "A LoRA adapter for" in card


def test_publish_refuses_a_bare_repo_name(evaluated_run):
    with pytest.raises(PackageError, match="full repo id"):
        publish(evaluated_run, "tiny", api=fake_api()[0])
