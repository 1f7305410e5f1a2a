"""`llmship bench serve`: vLLM's serving benchmark method, against any OpenAI-compatible server.

Random prompts of a fixed input length (token ids) and a fixed output length
(ignore_eos), streamed over /v1/completions. Closed-loop concurrency sweeps or
Poisson request rates; per-request records (TTFT, inter-token latencies, latency,
tokens, error) feed one pure metrics function; warm-up before timing; one result per
setting, printed as a table and saved as flat JSON with the seed, settings and date.
`--baseline naive` serves the same model with per-request transformers generate (no
batching) in the same process, so every claim is a ratio.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx


@dataclass
class RequestRecord:
    """One request as the client saw it."""

    ttft: float = 0.0
    itl: list[float] = field(default_factory=list)
    latency: float = 0.0
    output_tokens: int = 0
    error: str | None = None


@dataclass
class BenchResult:
    """Metrics of one setting (a concurrency or a request rate) against one server."""

    server: str
    concurrency: int
    request_rate: float | None
    num_prompts: int
    input_len: int
    output_len: int
    duration_s: float
    completed: int
    failed: int
    output_tokens: int
    output_tok_s: float
    request_s: float
    ttft_ms_mean: float
    ttft_ms_p50: float
    ttft_ms_p99: float
    tpot_ms_mean: float
    tpot_ms_p50: float
    tpot_ms_p99: float
    itl_ms_mean: float
    itl_ms_p50: float
    itl_ms_p99: float
    e2e_ms_mean: float
    e2e_ms_p50: float
    e2e_ms_p99: float


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def compute_metrics(records: list[RequestRecord], duration_s: float, **setting: Any) -> BenchResult:
    """The metrics of a run from its per-request records (a pure function)."""
    done = [r for r in records if r.error is None]
    ttfts = [r.ttft * 1000 for r in done]
    tpots = [
        (r.latency - r.ttft) * 1000 / (r.output_tokens - 1) for r in done if r.output_tokens > 1
    ]
    itls = [gap * 1000 for r in done for gap in r.itl]
    e2es = [r.latency * 1000 for r in done]
    tokens = sum(r.output_tokens for r in done)

    def stats(values: list[float]) -> tuple[float, float, float]:
        mean = statistics.fmean(values) if values else 0.0
        return round(mean, 3), round(percentile(values, 50), 3), round(percentile(values, 99), 3)

    ttft, tpot, itl, e2e = stats(ttfts), stats(tpots), stats(itls), stats(e2es)
    return BenchResult(
        **setting,
        duration_s=round(duration_s, 3),
        completed=len(done),
        failed=len(records) - len(done),
        output_tokens=tokens,
        output_tok_s=round(tokens / duration_s, 2) if duration_s else 0.0,
        request_s=round(len(done) / duration_s, 3) if duration_s else 0.0,
        ttft_ms_mean=ttft[0],
        ttft_ms_p50=ttft[1],
        ttft_ms_p99=ttft[2],
        tpot_ms_mean=tpot[0],
        tpot_ms_p50=tpot[1],
        tpot_ms_p99=tpot[2],
        itl_ms_mean=itl[0],
        itl_ms_p50=itl[1],
        itl_ms_p99=itl[2],
        e2e_ms_mean=e2e[0],
        e2e_ms_p50=e2e[1],
        e2e_ms_p99=e2e[2],
    )


def random_prompts(
    count: int, input_len: int, vocab_size: int, seed: int, special: set[int]
) -> list[list[int]]:
    """Token-id prompts of exactly input_len tokens, drawn without special tokens."""
    rng = random.Random(seed)
    allowed = [t for t in range(vocab_size) if t not in special]
    return [[rng.choice(allowed) for _ in range(input_len)] for _ in range(count)]


async def one_request(
    client: httpx.AsyncClient, url: str, model: str, prompt: list[int], output_len: int
) -> RequestRecord:
    """Stream one completion and time every piece of it."""
    body = {
        "model": model,
        "prompt": prompt,
        "max_tokens": output_len,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    record = RequestRecord()
    start = last = time.perf_counter()
    try:
        async with client.stream("POST", f"{url}/v1/completions", json=body) as response:
            if response.status_code != 200:
                record.error = f"HTTP {response.status_code}: {(await response.aread())[:200]!r}"
                return record
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if chunk.get("usage"):
                    record.output_tokens = chunk["usage"]["completion_tokens"]
                if chunk.get("choices") and chunk["choices"][0].get("text"):
                    now = time.perf_counter()
                    if record.ttft == 0.0:
                        record.ttft = now - start
                    else:
                        record.itl.append(now - last)
                    last = now
    except httpx.HTTPError as exc:
        record.error = f"{type(exc).__name__}: {exc}"
    record.latency = time.perf_counter() - start
    return record


async def run_setting(
    url: str,
    model: str,
    prompts: list[list[int]],
    output_len: int,
    concurrency: int,
    request_rate: float | None,
    seed: int,
) -> tuple[list[RequestRecord], float]:
    """All prompts at a closed-loop concurrency, or arriving at a Poisson request rate."""
    limits = httpx.Limits(max_connections=concurrency + 4)
    async with httpx.AsyncClient(timeout=httpx.Timeout(600.0), limits=limits) as client:
        gate = asyncio.Semaphore(concurrency)
        rng = random.Random(seed)

        async def limited(prompt):
            async with gate:
                return await one_request(client, url, model, prompt, output_len)

        start = time.perf_counter()
        tasks = []
        for prompt in prompts:
            tasks.append(asyncio.create_task(limited(prompt)))
            if request_rate:
                await asyncio.sleep(rng.expovariate(request_rate))
        records = await asyncio.gather(*tasks)
        return list(records), time.perf_counter() - start


def benchmark(
    url: str,
    model: str,
    prompts: list[list[int]],
    output_len: int,
    concurrencies: list[int],
    request_rate: float | None,
    seed: int,
    server: str,
    warmup: int = 2,
) -> list[BenchResult]:
    """Warm up, then one result per concurrency (or per rate at its max concurrency)."""
    if warmup:
        asyncio.run(run_setting(url, model, prompts[:warmup], output_len, warmup, None, seed))
    results = []
    for concurrency in concurrencies:
        records, duration = asyncio.run(
            run_setting(url, model, prompts, output_len, concurrency, request_rate, seed)
        )
        results.append(
            compute_metrics(
                records,
                duration,
                server=server,
                concurrency=concurrency,
                request_rate=request_rate,
                num_prompts=len(prompts),
                input_len=len(prompts[0]),
                output_len=output_len,
            )
        )
    return results


def save(results: list[BenchResult], path, settings: dict[str, Any]) -> None:
    """Flat JSON: the settings, the seed, the date, and one record per result."""
    from datetime import UTC, datetime

    payload = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        **settings,
        "results": [asdict(r) for r in results],
    }
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
