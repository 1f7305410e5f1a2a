"""An artifact answers in the AWS Hugging Face PyTorch inference container exactly as
llmship does: the real sagemaker-huggingface-inference-toolkit 2.6.0 handler service,
in-process, in a separate environment pinned like the container (transformers 4.51.3).

The model has Llama 3's rope settings and a wide init, so attention (and so rope)
decides the output: a config that 4.51.3 misreads changes the answers, which the
negative controls show.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from helpers import LLMSHIP_CLI, SMALL, hf_toolkit_invoke, train_on_memo
from llmship.config.schema import GenerationConfig
from llmship.data.samples import samsum_rows
from llmship.models.generation import generate, load_finetuned
from llmship.models.tiny import create_tiny_model
from llmship.package.build import build_artifact

LLAMA3_ROPE = {
    "rope_type": "llama3",
    "rope_theta": 500000.0,
    "factor": 32.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 64,
}
DIALOGUES = [r["dialogue"] for r in samsum_rows()[300:306]]
MAX_NEW = 12


@pytest.fixture(scope="module")
def hf4_python() -> str:
    python = os.environ.get("LLMSHIP_HF4_PYTHON")
    if not python:
        pytest.skip("needs the transformers 4.51.3 environment: run `make test`")
    python = os.path.abspath(python)  # not resolve(): that would leave the venv
    assert os.path.isfile(python), f"LLMSHIP_HF4_PYTHON={python} does not exist"
    return python


@pytest.fixture(scope="module")
def llama3_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("llama3")
    base = create_tiny_model(
        root / "base",
        "llama",
        SMALL.__class__(**{**SMALL.__dict__, "rope_parameters": LLAMA3_ROPE}),
    )
    run = train_on_memo(
        root,
        base,
        data={"system_prompt": "Be brief."},
        train={"max_steps": 2},
        eval={"generation": {"max_new_tokens": MAX_NEW}},
    )
    return run


def toolkit_request(text: str) -> dict:
    return {
        "body": json.dumps({"inputs": text, "parameters": {"max_new_tokens": MAX_NEW}}),
        "content_type": "application/json",
        "accept": "application/json",
    }


def llmship_outputs(run) -> list[str]:
    model = load_finetuned(run.model)
    params = GenerationConfig(max_new_tokens=MAX_NEW)
    return [generate(model, [{"dialogue": d}], params)[0] for d in DIALOGUES]


def texts(result: dict) -> list[str]:
    return [
        json.loads(r["body"])[0]["generated_text"] if "body" in r else None
        for r in result["results"]
    ]


def test_toolkit_answers_exactly_as_llmship(hf4_python, llama3_run, tmp_path):
    artifact = build_artifact(llama3_run.root, tmp_path / "art", "uncompressed").path
    result = hf_toolkit_invoke(
        hf4_python, artifact, [toolkit_request(d) for d in DIALOGUES], tmp_path
    )
    assert result["transformers"] == "4.51.3"
    expected = llmship_outputs(llama3_run)
    assert len(set(expected)) >= 3  # continuations differ from prompt to prompt
    assert texts(result) == expected
    assert all(r["content_type"] == "application/json" for r in result["results"])
    config = result["config"]
    assert config["rope_theta"] == 500000.0
    assert config["rope_scaling"] == {k: v for k, v in LLAMA3_ROPE.items() if k != "rope_theta"}
    assert config["torch_dtype"] == "float32"
    local = json.loads((llama3_run.model / "config.json").read_text())
    for field in (
        "vocab_size",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
        "max_position_embeddings",
        "rms_norm_eps",
        "tie_word_embeddings",
        "bos_token_id",
        "eos_token_id",
        "pad_token_id",
    ):
        assert config[field] == local[field], field


def test_negative_controls_fail_the_same_test(hf4_python, llama3_run, tmp_path):
    # The transformers 5 config as saved: 4.51.3 drops rope_parameters without a word.
    artifact = build_artifact(llama3_run.root, tmp_path / "art", "uncompressed").path
    shutil.copy(llama3_run.model / "config.json", artifact / "config.json")
    result = hf_toolkit_invoke(
        hf4_python, artifact, [toolkit_request(d) for d in DIALOGUES], tmp_path
    )
    assert result["config"]["rope_theta"] == 10000.0  # silently wrong
    assert texts(result) != llmship_outputs(llama3_run)
    # Everything as transformers 5 saved it: the tokenizer does not even load.
    shutil.copy(llama3_run.model / "tokenizer_config.json", artifact / "tokenizer_config.json")
    result = hf_toolkit_invoke(hf4_python, artifact, [toolkit_request(DIALOGUES[0])], tmp_path)
    [failure] = result["results"]
    assert failure["status"] == 400 and "TokenizersBackend" in failure["body"]


def test_toolkit_error_responses(hf4_python, llama3_run, tmp_path):
    artifact = build_artifact(llama3_run.root, tmp_path / "art", "uncompressed").path
    full = llmship_outputs(llama3_run)[0]
    words = full.split()
    assert len(words) >= 3
    stop = words[1]
    requests = [
        {"body": "not json", "content_type": "application/json", "accept": "application/json"},
        {"body": "a,b", "content_type": "text/csv", "accept": "application/json"},
        {
            "body": json.dumps({"inputs": "x", "parameters": {"max_new_tokens": 2, "bogus": 1}}),
            "content_type": "application/json",
            "accept": "application/json",
        },
        {
            "body": json.dumps(
                {"inputs": DIALOGUES[0], "parameters": {"max_new_tokens": MAX_NEW, "stop": [stop]}}
            ),
            "content_type": "application/json",
            "accept": "application/json",
        },
    ]
    result = hf_toolkit_invoke(hf4_python, artifact, requests, tmp_path)
    bad_json, csv, bogus, stopped = result["results"]
    # The toolkit answers every handler failure with 400 and multi-model-server's body.
    assert bad_json["status"] == 400
    assert json.loads(bad_json["body"])["type"] == "InternalServerException"
    assert csv["status"] == 400 and "unsupported content type" in csv["body"]
    assert bogus["status"] == 400 and "unknown parameters: bogus" in bogus["body"]
    text = json.loads(stopped["body"])[0]["generated_text"]
    assert text == full[: full.index(stop)]


def test_serve_emulate_hf_pytorch_answers_like_llmship_serve(hf4_python, llama3_run, tmp_path):
    import signal

    import httpx

    from llmship.serve.app import create_app
    from llmship.serve.background import free_port, running, wait_until_healthy
    from llmship.serve.limits import limits_for
    from llmship.serve.server import resolve_artifact

    artifact = build_artifact(llama3_run.root, tmp_path / "model.tar.gz").path
    port = free_port()
    command = [
        *LLMSHIP_CLI,
        "serve",
        str(artifact),
        "--emulate",
        "hf-pytorch",
        "--port",
        str(port),
    ]
    process = subprocess.Popen(
        command,
        env={**os.environ, "LLMSHIP_HF_PYTORCH_PYTHON": hf4_python},
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(
            url, process, 180, healthy=lambda response: response.json() == {"status": "Healthy"}
        )
        body = json.dumps({"inputs": DIALOGUES[0], "parameters": {"max_new_tokens": MAX_NEW}})
        emulated = httpx.post(
            f"{url}/invocations",
            content=body,
            timeout=60,
            headers={"Content-Type": "application/json"},
        )
        refused = httpx.post(
            f"{url}/invocations", content=b"a,b", timeout=60, headers={"Content-Type": "text/csv"}
        )
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    assert emulated.status_code == 200
    assert emulated.headers["content-type"] == "application/json"
    assert refused.status_code == 400  # the toolkit's status for every failure (ours: 415)
    model_dir = resolve_artifact(artifact, tmp_path / "ours")
    with running(create_app(model_dir, "x", limits_for("realtime"))) as ours:
        local = httpx.post(
            f"{ours}/invocations",
            content=body,
            timeout=60,
            headers={"Content-Type": "application/json"},
        )
    assert json.loads(emulated.text) == local.json()
    assert local.json() == [{"generated_text": llmship_outputs(llama3_run)[0]}]
