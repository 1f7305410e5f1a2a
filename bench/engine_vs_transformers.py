"""The engine against plain transformers, in one process, on the same model and prompts.

Without HTTP in between, so the figures are the engine's step and nothing else:
  - the engine with 8 requests at once (closed loop: a finished request is replaced by
    the next, `--prompts` in all) against transformers' static batch of 8 (one
    `generate()` over 8 prompts, repeated over the same prompts);
  - the engine with one request at a time against one `generate()` per prompt.
Every answer is `--output-len` tokens (EOS ignored), greedy. transformers runs on its
own copy of the model (the engine repacks its linears in place). Both use this
process's torch threads (stated in the output). Each measurement is repeated
`--repeats` times, interleaved, and the medians are compared.

    python bench/engine_vs_transformers.py --shape cpu-small --input-len 128 --output-len 64

Prints one JSON line: tokens/s of each side and the ratios.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

from llmship.serve.openmp import prefer_passive_waiting

prefer_passive_waiting()  # as in `llmship serve` and both benchmark servers

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from llmship.bench.runner import SHAPES  # noqa: E402
from llmship.bench.serving import random_prompts  # noqa: E402
from llmship.engine.engine import Engine  # noqa: E402
from llmship.engine.sampling import SamplingParams  # noqa: E402
from llmship.models.tiny import create_tiny_model  # noqa: E402


def engine_rate(engine: Engine, prompts: list[list[int]], length: int, concurrency: int) -> float:
    """Output tokens/s with `concurrency` requests in flight until every prompt is done."""
    params = SamplingParams(max_new_tokens=length, ignore_eos=True)
    pending = list(prompts)
    started = time.perf_counter()
    running = [engine.submit(pending.pop(0), params) for _ in range(min(concurrency, len(pending)))]
    tokens = 0
    while running:
        output = running.pop(0).result()
        tokens += output.completion_tokens
        if pending:
            running.append(engine.submit(pending.pop(0), params))
    return tokens / (time.perf_counter() - started)


def generate_rate(model, prompts: list[list[int]], length: int, batch: int, pad: int) -> float:
    """Output tokens/s of transformers' generate() over `batch` prompts at a time."""
    started = time.perf_counter()
    tokens = 0
    with torch.inference_mode():
        for first in range(0, len(prompts), batch):
            ids = torch.tensor(prompts[first : first + batch])
            out = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=length,
                min_new_tokens=length,
                do_sample=False,
                pad_token_id=pad,
            )
            tokens += (out.shape[1] - ids.shape[1]) * ids.shape[0]
    return tokens / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="cpu-small", choices=sorted(SHAPES))
    parser.add_argument("--input-len", type=int, default=128)
    parser.add_argument("--output-len", type=int, default=64)
    parser.add_argument("--prompts", type=int, default=16, help="per measurement at 8")
    parser.add_argument("--single-prompts", type=int, default=4, help="per measurement at 1")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="llmship-bench-") as workdir:
        model_dir = create_tiny_model(Path(workdir) / args.shape, "llama", SHAPES[args.shape])
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        plain = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        served = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    prompts = random_prompts(
        args.prompts, args.input_len, len(tokenizer), args.seed, set(tokenizer.all_special_ids)
    )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    engine = Engine(served, tokenizer, max_batch=8, max_len=args.input_len + args.output_len)
    try:
        engine_rate(engine, prompts[:2], args.output_len, 2)  # warm-up
        generate_rate(plain, prompts[:8], args.output_len, 8, pad)
        generate_rate(plain, prompts[:1], args.output_len, 1, pad)
        runs: dict[str, list[float]] = {
            "engine_8": [],
            "static_8": [],
            "engine_1": [],
            "generate_1": [],
        }
        single = prompts[: args.single_prompts]
        for _ in range(args.repeats):
            runs["engine_8"].append(engine_rate(engine, prompts, args.output_len, 8))
            runs["static_8"].append(generate_rate(plain, prompts, args.output_len, 8, pad))
            runs["engine_1"].append(engine_rate(engine, single, args.output_len, 1))
            runs["generate_1"].append(generate_rate(plain, single, args.output_len, 1, pad))
    finally:
        engine.close()
    median = {name: statistics.median(rates) for name, rates in runs.items()}
    result = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        "shape": args.shape,
        "input_len": args.input_len,
        "output_len": args.output_len,
        "baseline_threads": torch.get_num_threads(),
        "tok_s_median": {name: round(value, 1) for name, value in median.items()},
        "tok_s_runs": {name: [round(v, 1) for v in rates] for name, rates in runs.items()},
        "engine_8_vs_static_8": round(median["engine_8"] / median["static_8"], 2),
        "engine_1_vs_generate_1": round(median["engine_1"] / median["generate_1"], 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
