"""The transformers llmship runs on is the one it is tested with, and llmship calls it
without deprecated arguments, so a transformers release that removes them breaks
nothing. (code/inference.py is tested under the container's own transformers in
test_container_compat.py.)"""

from __future__ import annotations

import tomllib
import warnings
from pathlib import Path

import pytest
import transformers
from packaging.requirements import Requirement
from packaging.version import Version

from helpers import SMALL
from llmship.engine.engine import Engine
from llmship.engine.sampling import SamplingParams
from llmship.models.tiny import create_tiny_model

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def declared_transformers() -> Requirement:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    requirements = [Requirement(line) for line in project["dependencies"]]
    return next(r for r in requirements if r.name == "transformers")


def test_the_installed_transformers_is_in_the_declared_range():
    declared = declared_transformers()
    installed = Version(transformers.__version__)
    assert installed in declared.specifier, (
        f"transformers {installed} is installed, but llmship supports (and its tests run) "
        f"only {declared}: install that range, or test this version and widen the range "
        "in pyproject.toml"
    )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = create_tiny_model(tmp_path_factory.mktemp("support") / "llama", "llama", SMALL)
    model = transformers.AutoModelForCausalLM.from_pretrained(path)
    return model, transformers.AutoTokenizer.from_pretrained(path)


@pytest.mark.parametrize("static_decode", [False, True], ids=["dynamic", "static"])
def test_the_engine_calls_the_model_without_deprecated_arguments(tiny, static_decode):
    """Prefill and decode steps (both decode paths) with deprecation warnings as errors:
    one raised on the engine's thread fails the request with it as the error."""
    model, tokenizer = tiny
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        warnings.simplefilter("error", DeprecationWarning)
        engine = Engine(model, tokenizer, max_batch=2, max_len=64, static_decode=static_decode)
        try:
            output = engine.submit(
                [1, 2, 3], SamplingParams(max_new_tokens=4, ignore_eos=True)
            ).result()
        finally:
            engine.close()
    assert output.error is None
    assert output.finish_reason == "length" and output.completion_tokens == 4
