"""The configured dataset in Bedrock's conversation format, checked against the base
model's limits before anything leaves this machine.

One row becomes one record of schemaVersion bedrock-conversation-2024:

    {"schemaVersion": "bedrock-conversation-2024",
     "system": [{"text": data.system_prompt}],            (only when one is set)
     "messages": [{"role": "user", "content": [{"text": <prompt_template filled>}]},
                  {"role": "assistant", "content": [{"text": <output_field>}]}]}

The user turn is the prompt exactly as local training builds it (data.prompt_template),
so a Bedrock model and its local twin learn the same task. Every record is checked
(roles, turn order, tokens) and the record counts against the table's limits; the
first failure is a DataError naming the row and the limit, and nothing is written or
uploaded until the whole export passes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmship.bedrock.facts import BaseModel, base_model, characters_per_token, source, table
from llmship.data.loading import Row
from llmship.errors import ConfigError, DataError

ROLES = ("user", "assistant")
EXPORTED_SPLITS = ("train", "validation")
TokenCounter = Callable[[str], int]


@dataclass
class ExportReport:
    """Records per split and the files written."""

    records: dict[str, int] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    token_check: str = ""


def to_record(
    fields: dict[str, Any],
    *,
    prompt_template: str,
    output_field: str,
    system_prompt: str | None,
    where: str,
) -> dict[str, Any]:
    """One row as a conversation record (a DataError names the row when a field is missing)."""
    from llmship.data.formatting import _Strict

    try:
        user = prompt_template.format_map(_Strict(fields, where))
    except (ValueError, IndexError) as exc:
        raise ConfigError(f"data.prompt_template cannot be filled: {exc}") from None
    answer = fields.get(output_field)
    if answer is None or not str(answer).strip():
        raise DataError(
            f"{where}: missing field {output_field!r} (data.output_field); the row has: "
            f"{', '.join(fields) or 'no fields'}"
        )
    record: dict[str, Any] = {"schemaVersion": table()["conversation_schema"]}
    if system_prompt:
        record["system"] = [{"text": system_prompt}]
    record["messages"] = [
        {"role": "user", "content": [{"text": user}]},
        {"role": "assistant", "content": [{"text": str(answer)}]},
    ]
    return record


def record_texts(record: dict[str, Any]) -> list[str]:
    """Every text of a record: system, then each turn."""
    texts = [part["text"] for part in record.get("system", [])]
    for message in record["messages"]:
        texts += [part["text"] for part in message["content"]]
    return texts


def check_record(record: Any, where: str) -> None:
    """Schema, roles and turn order: user first, turns alternating, assistant last."""
    schema = table()["conversation_schema"]
    if not isinstance(record, dict) or record.get("schemaVersion") != schema:
        raise DataError(f"{where}: not a {schema} record (schemaVersion is missing or other)")
    system = record.get("system", [])
    if not isinstance(system, list) or any(
        not isinstance(p, dict) or not isinstance(p.get("text"), str) for p in system
    ):
        raise DataError(f'{where}: "system" must be a list of {{"text": ...}} parts')
    messages = record.get("messages")
    if not isinstance(messages, list) or len(messages) < 2:
        raise DataError(f"{where}: a record needs at least a user and an assistant turn")
    for index, message in enumerate(messages):
        expected = ROLES[index % 2]
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ROLES:
            raise DataError(
                f"{where}: turn {index + 1} has role {role!r}; allowed roles: user, assistant"
            )
        if role != expected:
            raise DataError(
                f"{where}: turn {index + 1} is {role!r} where {expected!r} belongs; turns "
                "alternate user, assistant, starting with user"
            )
        content = message.get("content")
        if (
            not isinstance(content, list)
            or not content
            or any(not isinstance(p, dict) or not str(p.get("text", "")).strip() for p in content)
        ):
            raise DataError(f'{where}: turn {index + 1} needs non-empty [{{"text": ...}}] content')
    if messages[-1]["role"] != "assistant":
        raise DataError(f"{where}: the last turn must be the assistant's answer")


def check_length(
    record: dict[str, Any], where: str, model: BaseModel, count_tokens: TokenCounter | None
) -> None:
    """Tokens per record (with a tokenizer), else Bedrock's character quota (tokens x 6)."""
    limit = model.limits.get("max_tokens_per_record")
    if not limit:
        return
    texts = record_texts(record)
    if count_tokens is not None:
        tokens = sum(count_tokens(text) for text in texts)
        if tokens > limit:
            raise DataError(
                f"{where}: {tokens:,} tokens, over the {limit:,} tokens per record "
                f"{model.name} accepts ({source('data_limits')}); shorten or drop the row"
            )
        return
    characters, most = sum(len(text) for text in texts), limit * characters_per_token()
    if characters > most:
        raise DataError(
            f"{where}: {characters:,} characters, over the {most:,} per record {model.name} "
            f"accepts ({limit:,} tokens x {characters_per_token()}, {source('data_limits')}); "
            "shorten or drop the row"
        )


def check_counts(counts: dict[str, int], model: BaseModel) -> None:
    """Record counts within the base model's limits."""
    limits, where = model.limits, source("data_limits")
    train = counts.get("train", 0)
    low, high = limits.get("min_training_records"), limits.get("max_training_records")
    if low and train < low:
        raise DataError(
            f"the train split has {train:,} records; {model.name} needs at least {low:,} "
            f"({where}); add rows or lower data.validation_fraction / data.test_fraction"
        )
    if high and train > high:
        raise DataError(
            f"the train split has {train:,} records; {model.name} takes at most {high:,} "
            f"({where}); set data.max_rows={high} or use fewer rows"
        )
    most = limits.get("max_validation_records")
    if most and counts.get("validation", 0) > most:
        raise DataError(
            f"the validation split has {counts['validation']:,} records; {model.name} takes at "
            f"most {most:,} ({where}); lower data.validation_fraction"
        )


def build_records(
    splits: dict[str, list[Row]],
    *,
    prompt_template: str,
    output_field: str,
    system_prompt: str | None,
    model: BaseModel,
    count_tokens: TokenCounter | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Every exported split as checked records; raises on the first row over a limit."""
    out: dict[str, list[dict[str, Any]]] = {}
    for split in EXPORTED_SPLITS:
        records = []
        for row in splits.get(split, []):
            record = to_record(
                row.fields,
                prompt_template=prompt_template,
                output_field=output_field,
                system_prompt=system_prompt,
                where=row.where,
            )
            check_record(record, row.where)
            check_length(record, row.where, model, count_tokens)
            records.append(record)
        out[split] = records
    check_counts({split: len(records) for split, records in out.items()}, model)
    return out


def write_records(records: dict[str, list[dict[str, Any]]], out_dir: Path) -> dict[str, Path]:
    """<out_dir>/<split>.jsonl for each non-empty split."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for split, rows in records.items():
        if not rows:
            continue
        path = out_dir / f"{split}.jsonl"
        path.write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
        )
        files[split] = path
    return files


def read_records(path: Path) -> list[dict[str, Any]]:
    """A Bedrock JSONL file back, every record checked (name:line in errors)."""
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path.name}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: not valid JSON ({exc.msg})") from None
        check_record(record, where)
        records.append(record)
    return records


def export_dataset(
    loaded, out_dir: Path, *, count_tokens: TokenCounter | None = None
) -> ExportReport:
    """The configured dataset's train and validation splits as Bedrock JSONL in out_dir."""
    from llmship.data.prepare import load_splits

    cfg = loaded.config
    model = base_model(cfg.bedrock.base_model_id)
    splits = dict(load_splits(loaded).items())
    records = build_records(
        splits,
        prompt_template=cfg.data.prompt_template,
        output_field=cfg.data.output_field,
        system_prompt=cfg.data.system_prompt,
        model=model,
        count_tokens=count_tokens,
    )
    limit = model.limits.get("max_tokens_per_record")
    return ExportReport(
        records={split: len(rows) for split, rows in records.items()},
        files=write_records(records, out_dir),
        token_check=(
            f"{limit:,} tokens per record"
            + (" (counted)" if count_tokens else f" (as {limit * characters_per_token():,} chars)")
            if limit
            else "no per-record limit"
        ),
    )
