"""ROUGE evaluation of a trained run on its held-out split.

Scoring is one code path; where the predictions come from is a Generator passed in:
the run's model on this machine (the default), or a deployed endpoint answering the
same rows through sagemaker-runtime (`llmship eval --target sagemaker`), so a deployed
model is judged by exactly the numbers its local twin was.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from llmship.config.schema import EvalConfig, GenerationConfig
from llmship.data.formatting import PromptFormat
from llmship.data.prepare import read_channel
from llmship.errors import EvalError
from llmship.models.info import MODEL_INFO
from llmship.progress import RecordingReporter, Reporter
from llmship.runs import RunDir
from llmship.train.plots import plot_loss

# Rows of fields in, one completion per row out, in order.
Generator = Callable[[list[dict[str, Any]]], list[str]]

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
    target: str = "local"


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


def evaluate(
    run: RunDir,
    eval_cfg: EvalConfig,
    reporter: Reporter | None = None,
    generator: Generator | None = None,
    target: str = "local",
) -> EvalReport:
    """Generate for the run's eval split, score with ROUGE, write report, predictions, plot.

    `generator` (default: the run's model, loaded here) answers each batch of rows;
    `target` names where it runs, in the report and in where the report goes."""
    reporter = reporter or RecordingReporter()
    started = time.perf_counter()
    rows = read_channel(run.channel(eval_cfg.split), eval_cfg.split)
    if eval_cfg.max_samples:
        rows = rows[: eval_cfg.max_samples]
    if not rows:
        raise EvalError(f"the {eval_cfg.split} split of {run.root} is empty; nothing to score")
    output_field = prompt_format_of(run).output_field
    generator = generator or local_generator(run, eval_cfg.generation)
    predictions: list[str] = []
    reporter.start(f"eval ({target})", len(rows))
    try:
        for start in range(0, len(rows), eval_cfg.batch_size):
            batch = rows[start : start + eval_cfg.batch_size]
            predictions += generator([row.fields for row in batch])
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
        target=target,
        **scores,
    )
    _write(run, report, rows, predictions, references)
    return report


def report_paths(run: RunDir, target: str = "local") -> tuple[Path, Path]:
    """(report, predictions) of an evaluation: the run's own for local, else beside them
    under eval/<target>/, so scoring an endpoint never overwrites the local scores."""
    if target == "local":
        return run.eval_report, run.predictions
    folder = run.eval_report.parent / target
    return folder / run.eval_report.name, folder / run.predictions.name


def prompt_format_of(run: RunDir) -> PromptFormat:
    """The prompt format the run's model was trained with (from its llmship.json)."""
    path = run.model / MODEL_INFO
    if not path.is_file():
        raise EvalError(f"{run.root} has no trained model ({path} is missing); train it first")
    info = json.loads(path.read_text(encoding="utf-8"))
    return PromptFormat.from_dict(info["prompt_format"])


def local_generator(run: RunDir, params: GenerationConfig) -> Generator:
    """The run's model on this machine, loaded once."""
    from llmship.models.generation import generate, load_finetuned

    model = load_finetuned(run.model)
    return lambda rows: generate(model, rows, params)


def endpoint_parameters(params: GenerationConfig) -> dict[str, Any]:
    """Toolkit request parameters for `params`: sampling knobs only when sampling, beams
    only when searching (so endpoints that know neither are not sent them)."""
    sent: dict[str, Any] = {
        "max_new_tokens": params.max_new_tokens,
        "do_sample": params.do_sample,
        "repetition_penalty": params.repetition_penalty,
    }
    if params.do_sample:
        sent.update(temperature=params.temperature, top_p=params.top_p, top_k=params.top_k)
    if params.num_beams != 1:
        sent["num_beams"] = params.num_beams
    return sent


def endpoint_generator(
    runtime, endpoint_name: str, input_field: str, params: GenerationConfig, workers: int = 4
) -> Generator:
    """Each row's input field sent to the endpoint as a toolkit payload, one request per
    row (what every toolkit-style container accepts), up to `workers` at once."""
    from llmship.aws.runtime import invoke
    from llmship.protocol.toolkit import generated_text, prompt_body

    parameters = endpoint_parameters(params)

    def one(fields: dict[str, Any]) -> str:
        if input_field not in fields:
            raise EvalError(f"an eval row has no {input_field!r} field to send the endpoint")
        answer = invoke(
            runtime, endpoint_name, body=prompt_body(str(fields[input_field]), parameters)
        )
        text = generated_text(answer.body)
        if text is None:
            raise EvalError(
                f"endpoint {endpoint_name} did not answer in the Hugging Face toolkit shape "
                f'[{{"generated_text": ...}}]: {answer.body[:200]!r}'
            )
        return text

    def generate_rows(rows: list[dict[str, Any]]) -> list[str]:
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(rows)))) as pool:
            return list(pool.map(one, rows))

    return generate_rows


def _write(run: RunDir, report: EvalReport, rows, predictions, references) -> None:
    report_path, predictions_path = report_paths(run, report.target)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(asdict(report), indent=2) + "\n", encoding="utf-8")
    with predictions_path.open("w", encoding="utf-8") as handle:
        for row, prediction, reference in zip(rows, predictions, references, strict=True):
            handle.write(
                json.dumps(
                    {"where": row.where, "prediction": prediction, "reference": reference},
                    ensure_ascii=False,
                )
                + "\n"
            )
    plot_loss(run.metrics, run.loss_plot)
