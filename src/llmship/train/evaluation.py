"""ROUGE evaluation of a trained run on its held-out split."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

from llmship.config.schema import EvalConfig
from llmship.data.prepare import read_channel
from llmship.errors import EvalError
from llmship.models.generation import generate, load_finetuned
from llmship.progress import RecordingReporter, Reporter
from llmship.runs import RunDir
from llmship.train.plots import plot_loss

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


@dataclass
class EvalReport:
    """Mean ROUGE F1 over the scored rows, and what produced it."""

    split: str
    rows: int
    rouge1: float
    rouge2: float
    rougeL: float
    generation: dict
    model_dir: str
    seconds: float


def rouge_scores(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F1 (rouge-score, with stemming)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for prediction, reference in zip(predictions, references, strict=True):
        for name, score in scorer.score(reference, prediction).items():
            totals[name] += score.fmeasure
    count = max(len(predictions), 1)
    return {name: round(total / count, 4) for name, total in totals.items()}


def evaluate(run: RunDir, eval_cfg: EvalConfig, reporter: Reporter | None = None) -> EvalReport:
    """Generate for the run's eval split, score with ROUGE, write report, predictions, plot."""
    reporter = reporter or RecordingReporter()
    started = time.perf_counter()
    rows = read_channel(run.channel(eval_cfg.split), eval_cfg.split)
    if eval_cfg.max_samples:
        rows = rows[: eval_cfg.max_samples]
    if not rows:
        raise EvalError(f"the {eval_cfg.split} split of {run.root} is empty; nothing to score")
    model = load_finetuned(run.model)
    output_field = model.prompt_format.output_field
    predictions: list[str] = []
    reporter.start("eval", len(rows))
    try:
        for start in range(0, len(rows), eval_cfg.batch_size):
            batch = rows[start : start + eval_cfg.batch_size]
            predictions += generate(model, [row.fields for row in batch], eval_cfg.generation)
            reporter.update(len(predictions))
    finally:
        reporter.finish()
    references = [str(row.fields.get(output_field, "")) for row in rows]
    scores = rouge_scores(predictions, references)
    report = EvalReport(
        split=eval_cfg.split,
        rows=len(rows),
        generation=eval_cfg.generation.model_dump(),
        model_dir=str(run.model),
        seconds=round(time.perf_counter() - started, 2),
        **scores,
    )
    _write(run, report, rows, predictions, references)
    return report


def _write(run: RunDir, report: EvalReport, rows, predictions, references) -> None:
    run.eval_report.parent.mkdir(parents=True, exist_ok=True)
    run.eval_report.write_text(json.dumps(asdict(report), indent=2) + "\n", encoding="utf-8")
    with run.predictions.open("w", encoding="utf-8") as handle:
        for row, prediction, reference in zip(rows, predictions, references, strict=True):
            handle.write(
                json.dumps(
                    {"where": row.where, "prediction": prediction, "reference": reference},
                    ensure_ascii=False,
                )
                + "\n"
            )
    plot_loss(run.metrics, run.loss_plot)
