"""A customization job's metrics CSVs as the metrics.jsonl and loss curve a local run has.

Bedrock writes, under the job's output prefix (model-customization-job-<id>/):
training_artifacts/step_wise_training_metrics.csv (step_number, epoch_number,
training_loss, perplexity) and, with validation data,
validation_artifacts/post_fine_tuning_validation/validation/validation_metrics.csv
(validation_loss in place of training_loss). Bedrock counts steps from 0; a local run
logs step 1 after its first optimizer step, so steps are shifted by one to read alike.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from llmship.aws.errors import aws_call
from llmship.errors import TrainError

TRAINING_CSV = "step_wise_training_metrics.csv"
VALIDATION_CSV = "validation_metrics.csv"


def records_from_csv(text: str, *, loss_column: str, loss_key: str, where: str) -> list[dict]:
    """One metrics record per CSV row: step, epoch, the loss under `loss_key`, perplexity."""
    reader = csv.DictReader(io.StringIO(text))
    missing = {"step_number", loss_column} - set(reader.fieldnames or [])
    if missing:
        raise TrainError(f"{where} lacks the column(s) {', '.join(sorted(missing))}")
    records = []
    for number, row in enumerate(reader, start=2):
        try:
            record: dict[str, Any] = {
                "step": int(float(row["step_number"])) + 1,
                loss_key: float(row[loss_column]),
            }
            if row.get("epoch_number") not in (None, ""):
                record["epoch"] = int(float(row["epoch_number"]))
            if row.get("perplexity") not in (None, ""):
                record["perplexity"] = float(row["perplexity"])
        except (TypeError, ValueError):
            raise TrainError(f"{where}:{number}: not a number where one belongs") from None
        records.append(record)
    return records


def find_metric_files(s3, bucket: str, prefix: str) -> dict[str, str]:
    """Keys of the two CSVs under prefix (the job writes its own subfolder beneath it)."""
    found: dict[str, str] = {}
    with aws_call("s3", "ListObjectsV2", f"s3://{bucket}/{prefix}"):
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for item in page.get("Contents", []):
                name = item["Key"].rsplit("/", 1)[-1]
                if name in (TRAINING_CSV, VALIDATION_CSV):
                    found[name] = item["Key"]
    return found


def write_run_metrics(s3, bucket: str, prefix: str, metrics_path: Path) -> int:
    """Download the CSVs under s3://bucket/prefix into metrics_path (JSONL), sorted by step
    with validation after training at the same step; returns the records written."""
    keys = find_metric_files(s3, bucket, prefix)
    records: list[dict] = []
    for name, column, key in (
        (TRAINING_CSV, "training_loss", "loss"),
        (VALIDATION_CSV, "validation_loss", "eval_loss"),
    ):
        if name not in keys:
            continue
        with aws_call("s3", "GetObject", f"s3://{bucket}/{keys[name]}"):
            text = s3.get_object(Bucket=bucket, Key=keys[name])["Body"].read().decode("utf-8")
        records += records_from_csv(text, loss_column=column, loss_key=key, where=name)
    records.sort(key=lambda r: (r["step"], "eval_loss" in r))
    metrics_path.parent.mkdir(parents=True, exist_ok=True)
    metrics_path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return len(records)
