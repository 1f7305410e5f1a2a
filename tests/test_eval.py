"""Evaluation: ROUGE on real generations, written report, predictions and loss curve."""

from __future__ import annotations

import json

import pytest

from helpers import train_on_memo
from llmship.config.schema import EvalConfig
from llmship.data.loading import Row
from llmship.data.prepare import write_channel
from llmship.data.samples import samsum_rows
from llmship.errors import EvalError
from llmship.train.evaluation import evaluate, rouge_scores

MEMO = samsum_rows()[:16]


def test_rouge_scores_known_values():
    same = rouge_scores(["Anna will buy milk."], ["Anna will buy milk."])
    assert same == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}
    assert rouge_scores(["zebra"], ["Anna will buy milk."])["rouge1"] == 0.0
    half = rouge_scores(["Anna will"], ["Anna will buy milk"])
    assert half["rouge1"] == pytest.approx(2 * 1.0 * 0.5 / 1.5, abs=1e-4)


def _run(tmp_path, tiny_llama, steps):
    run = train_on_memo(tmp_path, tiny_llama, train={"max_steps": steps, "learning_rate": 1e-2})
    # Score on the memorized rows: a trained model must do well, an untrained one must not.
    write_channel([Row(str(i), r) for i, r in enumerate(MEMO)], run.channel("test"), "test")
    return run


def test_evaluation_scores_real_generations(tmp_path, tiny_llama):
    eval_cfg = EvalConfig(max_samples=12, batch_size=5, generation={"max_new_tokens": 32})
    trained = _run(tmp_path / "trained", tiny_llama, 60)
    report = evaluate(trained, eval_cfg)
    untrained = evaluate(_run(tmp_path / "untrained", tiny_llama, 1), eval_cfg)
    assert report.rows == 12
    assert report.rougeL > 0.8, report
    assert untrained.rougeL < 0.5 * report.rougeL
    written = json.loads(trained.eval_report.read_text())
    assert written["rougeL"] == report.rougeL and written["split"] == "test"
    predictions = [json.loads(line) for line in trained.predictions.read_text().splitlines()]
    assert len(predictions) == 12
    assert [p["reference"] for p in predictions] == [r["summary"] for r in MEMO[:12]]
    assert trained.loss_plot.read_bytes()[:4] == b"\x89PNG"


def test_empty_split_is_a_clear_error(tmp_path, tiny_llama):
    run = _run(tmp_path, tiny_llama, 1)
    write_channel([], run.channel("test"), "test")
    with pytest.raises(EvalError, match=r"test split .* is empty"):
        evaluate(run, EvalConfig())
