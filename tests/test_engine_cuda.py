"""The engine's GPU path: decode steps replayed from CUDA graphs answer exactly as the
same static steps run eagerly. Runs only where a CUDA device is present."""

from __future__ import annotations

import time

import pytest

from helpers import SMALL
from llmship.models.tiny import create_tiny_model

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device (the engine's GPU path)"
)


@pytest.fixture(scope="module")
def model_and_tokenizer(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory = create_tiny_model(tmp_path_factory.mktemp("cuda") / "llama", "llama", SMALL)
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.bfloat16).to("cuda")
    return model, AutoTokenizer.from_pretrained(directory)


def _answers(engine, prompts, params, stagger: float = 0.0) -> list[str]:
    handles = []
    for prompt in prompts:
        handles.append(engine.submit(prompt, params))
        time.sleep(stagger)
    return [handle.result().text for handle in handles]


def test_graph_replay_equals_eager_static_steps(model_and_tokenizer):
    from llmship.engine.engine import Engine
    from llmship.engine.sampling import SamplingParams

    model, tokenizer = model_and_tokenizer
    generator = torch.Generator().manual_seed(0)
    lengths = [5, 17, 40, 3, 64, 9, 33, 12, 50, 7, 21, 2]
    prompts = [
        torch.randint(3, SMALL.vocab_size, (n,), generator=generator).tolist() for n in lengths
    ]
    params = SamplingParams(max_new_tokens=40, ignore_eos=True)
    eager = Engine(model, tokenizer, max_batch=8, max_len=512, cuda_graphs=False)
    try:
        expected = _answers(eager, prompts, params)
    finally:
        eager.close()
    graphs = Engine(model, tokenizer, max_batch=8, max_len=512)
    try:
        assert _answers(graphs, prompts, params) == expected
        assert _answers(graphs, prompts, params, stagger=0.01) == expected
        assert graphs.decode_step.graphs_enabled, "capture failed: see the warning in the log"
        assert len(graphs.decode_step._graphs) >= 2
    finally:
        graphs.close()
    assert len(set(expected)) >= 6
