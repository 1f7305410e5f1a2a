"""Read rows from JSONL, CSV, Parquet or Hugging Face datasets, remembering where each came from.

Every row keeps its origin ("qa.jsonl:17", "samsum[train] row 3") so that a bad row
is reported by file and line, not by a traceback from deep inside tokenization.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmship.errors import DataError

FILE_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet"}


@dataclass(frozen=True)
class Row:
    """One dataset row and where it came from."""

    where: str
    fields: dict[str, Any]


def detect_format(source: str, declared: str = "auto") -> str:
    """jsonl, csv, parquet or hf (a hub id or a save_to_disk directory)."""
    if declared != "auto":
        return declared
    path = Path(source)
    if path.is_dir():
        return "hf"
    if path.suffix.lower() in FILE_FORMATS:
        if not path.exists():
            raise DataError(f"data file {source} not found (data.source); check the path")
        return FILE_FORMATS[path.suffix.lower()]
    if path.exists():
        raise DataError(
            f"{source}: unknown file type {path.suffix!r} (data.source); use .jsonl, .csv or "
            ".parquet, or set data.format"
        )
    return "hf"


def load_rows(source: str, fmt: str = "auto", token: str | None = None) -> dict[str, list[Row]]:
    """Rows by split name; a single file is one split called "train"."""
    kind = detect_format(source, fmt)
    if kind == "hf":
        return _read_hf(source, token)
    readers = {"jsonl": read_jsonl, "csv": read_csv, "parquet": read_parquet}
    rows = readers[kind](Path(source))
    if not rows:
        raise DataError(f"{source} has no rows (data.source); add data or point at another file")
    return {"train": rows}


def read_jsonl(path: Path) -> list[Row]:
    """One JSON object per line; blank lines are skipped."""
    rows = []
    name = path.name
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{name}:{number}: not valid JSON ({exc.msg})") from None
                if not isinstance(value, dict):
                    raise DataError(
                        f"{name}:{number}: expected a JSON object, got {type(value).__name__}"
                    )
                rows.append(Row(f"{name}:{number}", value))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    return rows


def read_csv(path: Path) -> list[Row]:
    """A header row, then one row per line (quoted fields may span lines)."""
    rows = []
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames:
                raise DataError(f"{path.name}: no header row; the first line must name the fields")
            start = reader.line_num + 1
            for record in reader:
                if None in record:
                    raise DataError(f"{path.name}:{start}: more values than header fields")
                rows.append(Row(f"{path.name}:{start}", dict(record)))
                start = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(f"{path.name}: not valid CSV ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    return rows


def read_parquet(path: Path) -> list[Row]:
    """Every row of a Parquet file, numbered from 1."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        records = pq.read_table(path).to_pylist()
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"cannot read {path} as Parquet: {exc}") from None
    return [Row(f"{path.name} row {index}", record) for index, record in enumerate(records, 1)]


def _read_hf(source: str, token: str | None) -> dict[str, list[Row]]:
    import datasets

    try:
        if Path(source).is_dir():
            loaded = datasets.load_from_disk(source)
        else:
            loaded = datasets.load_dataset(source, token=token)
    except FileNotFoundError as exc:
        raise DataError(
            f"dataset {source!r} not found (data.source): {exc}; give a file, a save_to_disk "
            "directory or a hub dataset id"
        ) from None
    except (OSError, ValueError, ConnectionError) as exc:
        raise DataError(f"cannot load dataset {source!r} (data.source): {exc}") from None
    if isinstance(loaded, datasets.Dataset):
        loaded = {"train": loaded}
    label = Path(source).name or source
    splits = {}
    for split, table in loaded.items():
        splits[split] = [
            Row(f"{label}[{split}] row {index}", record) for index, record in enumerate(table, 1)
        ]
    if not any(splits.values()):
        raise DataError(f"dataset {source!r} has no rows (data.source)")
    return splits
