# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv and install what they need; torch goes first so that
# nothing else pulls a different (multi-GB CUDA) build.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# A second environment pinned like the AWS Hugging Face PyTorch inference container
# (transformers 4.51.3, inference toolkit 2.6.0): artifacts are tested against it, and the
# training entry point runs under it with what its requirements.txt adds.
HF4 ?= .venv-hf4
HF4_STAMP := $(HF4)/.installed

.PHONY: demo test lint venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e '.[dev,aws]'
	touch $(STAMP)

$(HF4_STAMP): Makefile
	$(PYTHON) -m venv $(HF4)
	$(HF4)/bin/python -m pip install -q "$(TORCH)"
	$(HF4)/bin/python -m pip install -q "transformers==4.51.3" \
		"sagemaker-huggingface-inference-toolkit==2.6.0" "multi-model-server==1.1.11" \
		"safetensors" "peft==0.15.2" pydantic python-dotenv rich tensorboard
	touch $(HF4_STAMP)

demo: $(STAMP)
	$(VENV)/bin/llmship demo

test: $(STAMP) $(HF4_STAMP)
	LLMSHIP_HF4_PYTHON=$(HF4)/bin/python $(VENV)/bin/pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/vulture
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) $(HF4) demo-run .pytest_cache
