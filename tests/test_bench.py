"""The serving benchmark: its metrics function, and one short run end to end."""

from __future__ import annotations

import pytest

from llmship.bench.serving import RequestRecord, compute_metrics, percentile, random_prompts


def test_metrics_from_known_records():
    records = [
        RequestRecord(ttft=0.1, itl=[0.01, 0.03], latency=0.14, output_tokens=3),
        RequestRecord(ttft=0.3, itl=[0.02, 0.02], latency=0.34, output_tokens=3),
        RequestRecord(error="HTTP 503"),
    ]
    result = compute_metrics(
        records,
        2.0,
        server="x",
        concurrency=2,
        request_rate=None,
        num_prompts=3,
        input_len=8,
        output_len=3,
    )
    assert (result.completed, result.failed, result.output_tokens) == (2, 1, 6)
    assert result.output_tok_s == 3.0 and result.request_s == 1.0
    assert result.ttft_ms_mean == pytest.approx(200.0)
    assert result.ttft_ms_p50 == pytest.approx(200.0)
    assert result.tpot_ms_mean == pytest.approx(20.0)  # (latency - ttft) / (tokens - 1)
    assert result.itl_ms_p50 == pytest.approx(20.0)
    assert result.itl_ms_p99 == pytest.approx(29.7)
    assert result.e2e_ms_p99 == pytest.approx(338.0)
    assert percentile([], 50) == 0.0


def test_prompts_are_fixed_length_without_special_tokens():
    prompts = random_prompts(5, 12, 50, seed=3, special={0, 1, 2})
    assert all(len(p) == 12 for p in prompts)
    assert not {0, 1, 2} & {t for p in prompts for t in p}
    assert prompts == random_prompts(5, 12, 50, seed=3, special={0, 1, 2})


@pytest.mark.slow
def test_bench_serve_runs_end_to_end(tiny_llama):
    from llmship.bench.runner import bench_serve

    results = bench_serve(
        model_dir=tiny_llama,
        input_len=16,
        output_len=8,
        num_prompts=(2, 4),
        concurrencies=(1, 4),
        baseline="naive",
        baseline_prompts=1,
    )
    assert [(r.server, r.concurrency, r.completed) for r in results] == [
        ("llmship", 1, 2),
        ("llmship", 4, 4),
        ("naive", 1, 1),
        ("naive", 4, 1),
    ]
    for result in results:
        assert result.failed == 0
        assert result.output_tokens == 8 * result.completed  # EOS ignored: output_len each
        assert result.ttft_ms_p50 > 0 and result.output_tok_s > 0
