#!/usr/bin/env bash
# The training benchmark on one H100, in one command (about 4 minutes, no downloads):
#
#   bench/train_gpu.sh train-h100.json
#
# Random-init Llama-3.2-1B shape, bf16, LoRA r=16 on every linear layer, length-skewed
# synthetic data, 3 warm-up + 10 timed steps per variant, each variant in a fresh process:
#   plain                  the plain transformers + peft + AdamW loop, padded 8 x 1024
#   llmship                llmship's training step at the same 8 x 1024 (memory comparison)
#   llmship+gradient_checkpointing  the same, recomputing activations (memory target)
#   llmship@2048           llmship with 4 packed rows of 2048 tokens (same tokens per step)
#   llmship@2048+compile   the same with train.compile
#   qlora@2048             llmship on a 4-bit base (skipped when bitsandbytes is absent)
# Prints the table and writes the JSON (settings, date, one record per variant) to $1.
#
# Needs python3 with torch (CUDA), transformers and peft. llmship runs from src/; if
# pydantic is missing it is installed into a temporary directory from the wheels in
# .whl/train-bench (pip download them there beforehand on a machine with an index).
set -euo pipefail
out="$(realpath -m "${1:?usage: bench/train_gpu.sh OUT.json}")"
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if ! python3 -c "import pydantic" 2>/dev/null; then
  deps="$(mktemp -d)"
  trap 'rm -rf "$deps"' EXIT
  python3 -m pip install -q --no-index --find-links .whl/train-bench --target "$deps" pydantic
  export PYTHONPATH="$PYTHONPATH:$deps"
fi
variants="plain,llmship,llmship+gradient_checkpointing,llmship@2048,llmship@2048+compile,qlora@2048"
if ! python3 -c "import bitsandbytes" 2>/dev/null; then
  echo "QLoRA: skipped (bitsandbytes is not installed on this machine)"
  variants="${variants%,qlora@2048}"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 - "$out" "$variants" <<'PY'
import sys
from pathlib import Path

from llmship.bench.training import bench_train, format_table, save

out, variants = Path(sys.argv[1]), sys.argv[2].split(",")
settings = dict(shape="llama-3.2-1b", seq_len=1024, batch=8, steps=10, warmup=3, seed=0, lora_r=16)
results = bench_train(variants=variants, timeout=240, **settings)
print(format_table(results))
save(results, out, {**settings, "variants": variants})
print(f"saved {out}")
PY
