"""Set up what `llmship bench serve` measures: a model of a given shape, llmship's server
and the naive baseline on it, each in a process of its own, on loopback."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from llmship.bench.serving import BenchResult, benchmark, random_prompts
from llmship.models.tiny import TinySpec, create_tiny_model
from llmship.serve.background import free_port, wait_until_healthy

# Random-init shapes built on the spot (no downloads).
SHAPES = {
    # The CPU check: a small Llama, the 128k vocabulary trimmed to 4,096.
    "cpu-small": TinySpec(
        vocab_size=4096,
        hidden_size=512,
        intermediate_size=1536,
        layers=4,
        heads=8,
        kv_heads=4,
        max_positions=2048,
        initializer_range=0.02,
        fill_vocab=True,
    ),
    # Llama-3.2-1B's shape (16 layers, hidden 2048, 32 heads / 8 KV heads, vocab 128256).
    "llama-3.2-1b": TinySpec(
        vocab_size=128256,
        hidden_size=2048,
        intermediate_size=8192,
        layers=16,
        heads=32,
        kv_heads=8,
        max_positions=4096,
        initializer_range=0.02,
        fill_vocab=True,
    ),
}


@dataclass(frozen=True)
class ServerRun:
    """One server to measure: what it serves, its batch size, and the number of prompts
    it gets at each concurrency."""

    server: str  # llmship, llmship-no-prefix-cache or naive
    directory: Path  # llmship: the artifact; naive: the model
    max_batch: int
    counts: tuple[int, ...]
    prefix_cache: bool = True


def bench_serve(
    shape: str = "cpu-small",
    model_dir: Path | None = None,
    input_len: int = 128,
    output_len: int = 64,
    num_prompts: tuple[int, ...] = (32, 32),
    concurrencies: tuple[int, ...] = (1, 8),
    request_rate: float | None = None,
    baseline: str | None = None,
    seed: int = 0,
    max_batch: int | None = None,
    baseline_prompts: int | None = None,
    shared_prefix: int = 0,
) -> list[BenchResult]:
    """llmship's server (and the baseline) on one model, every setting, same prompts;
    num_prompts[i] requests at concurrencies[i] (the baseline: baseline_prompts each).
    With `shared_prefix`, every prompt starts with the same that many tokens (a system
    prompt), and llmship also runs with its prefix cache off."""
    from transformers import AutoTokenizer

    from llmship.package.build import build_artifact

    with tempfile.TemporaryDirectory(prefix="llmship-bench-") as workdir:
        work = Path(workdir)
        if model_dir is None:
            model_dir = create_tiny_model(work / shape, "llama", SHAPES[shape])
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        prompts = random_prompts(
            max(num_prompts), input_len, len(tokenizer), seed, set(tokenizer.all_special_ids)
        )
        if shared_prefix:
            start = random_prompts(
                1, shared_prefix, len(tokenizer), seed + 1, set(tokenizer.all_special_ids)
            )[0]
            prompts = [start + prompt[shared_prefix:] for prompt in prompts]
        artifact = build_artifact(model_dir, work / "artifact", "uncompressed", "5.5.3").path
        batch = max_batch or max(concurrencies)
        runs = [ServerRun("llmship", artifact, batch, num_prompts)]
        if shared_prefix:
            runs.append(ServerRun("llmship-no-prefix-cache", artifact, batch, num_prompts, False))
        if baseline == "naive":
            counts = (
                num_prompts if baseline_prompts is None else (baseline_prompts,) * len(num_prompts)
            )
            runs.append(ServerRun("naive", model_dir, 1, counts))
        results: list[BenchResult] = []
        for run in runs:
            with _server_process(run) as url:
                for index, (concurrency, count) in enumerate(
                    zip(concurrencies, run.counts, strict=True)
                ):
                    results += benchmark(
                        url,
                        "bench",
                        prompts[:count],
                        output_len,
                        [concurrency],
                        request_rate,
                        seed,
                        server=run.server,
                        warmup=2 if index == 0 else 0,  # once per server
                    )
    return results


@contextmanager
def _server_process(run: ServerRun, timeout: float = 1800.0):
    """A benchmark server in its own process; its URL once /ping answers 200."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "llmship.bench.server_process",
        "naive" if run.server == "naive" else "llmship",
        str(run.directory),
        str(port),
        str(run.max_batch),
        "on" if run.prefix_cache else "off",
    ]
    process = subprocess.Popen(command)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process, timeout)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=60)
