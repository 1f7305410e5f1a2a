"""From the configured source to the split files a training run reads (its channels)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from llmship.config.loader import LoadedConfig
from llmship.data.formatting import encode_rows, prompt_format_for
from llmship.data.loading import Row, load_rows, read_jsonl
from llmship.data.splits import Splits, make_splits
from llmship.errors import DataError


@dataclass
class DataReport:
    """What `data prepare` did: rows per split, rows dropped as too long, files written."""

    rows: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)


def load_splits(loaded: LoadedConfig) -> Splits:
    """Read the configured source and split it."""
    data_cfg = loaded.config.data
    # `data export` for Bedrock needs no model section; a hub dataset may still need the token.
    token = loaded.config.model.hf_token if loaded.config.model else None
    source = loaded.resolve_path(data_cfg.source)
    by_name = load_rows(source, data_cfg.format, token.get_secret_value() if token else None)
    return make_splits(by_name, data_cfg)


def write_channel(rows: list[Row], directory: Path, split: str) -> Path:
    """Write rows as <directory>/<split>.jsonl (a SageMaker channel holds one such file)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{split}.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row.fields, ensure_ascii=False, default=str) + "\n")
    return path


def read_channel(directory: Path, split: str) -> list[Row]:
    """All rows of the .jsonl files in a channel directory, in name order."""
    if not directory.is_dir():
        raise DataError(f"channel {split!r} not found at {directory}")
    files = sorted(directory.glob("*.jsonl"))
    if not files:
        raise DataError(f"channel {split!r} at {directory} holds no .jsonl file")
    return [row for path in files for row in read_jsonl(path)]


def prepare_data(loaded: LoadedConfig, data_dir: Path, tokenizer, kind: str) -> DataReport:
    """Split, drop rows over model.max_length, and write each split's channel file."""
    splits = load_splits(loaded)
    prompt_format = prompt_format_for(loaded.config, kind, tokenizer)
    report = DataReport()
    for split, rows in splits.items():
        encoded = encode_rows(rows, prompt_format, tokenizer, loaded.config.model.max_length)
        if split == "train" and not encoded.rows:
            raise DataError(
                f"every training row is longer than model.max_length="
                f"{loaded.config.model.max_length} tokens; raise it or shorten the rows"
            )
        report.rows[split] = len(encoded.rows)
        report.dropped[split] = encoded.dropped
        report.files[split] = write_channel(encoded.rows, data_dir / split, split)
    return report
