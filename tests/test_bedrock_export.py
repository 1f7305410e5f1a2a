"""Bedrock data export: the conversation records round-trip to the rows they came from,
every limit of the table is enforced with the row and the limit named, and nothing is
written when one row fails."""

from __future__ import annotations

import json

import pytest

from llmship.bedrock import facts
from llmship.bedrock.export import (
    build_records,
    check_record,
    export_dataset,
    read_records,
    record_texts,
)
from llmship.config.loader import load_config_dict
from llmship.data.loading import Row
from llmship.errors import DataError

LLAMA = "meta.llama3-2-1b-instruct-v1:0:128k"


def rows(count: int, start: int = 0) -> list[dict]:
    return [
        {"dialogue": f"Anna: lunch at {i}?\nBen: sure", "summary": f"Lunch at {i}."}
        for i in range(start, start + count)
    ]


def config(tmp_path, data: list[dict], **data_cfg):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in data))
    tree = {
        "model": {"name_or_path": "tiny"},
        "data": {
            "source": str(path),
            "system_prompt": "You summarize dialogues.",
            "validation_fraction": 0.1,
            "test_fraction": 0.0,
            **data_cfg,
        },
    }
    return load_config_dict(tree, base_dir=tmp_path, env={})


def test_round_trip(tmp_path):
    loaded = config(tmp_path, rows(120))
    report = export_dataset(loaded, tmp_path / "out")
    assert report.records == {"train": 108, "validation": 12}
    back = read_records(report.files["train"]) + read_records(report.files["validation"])
    assert len(back) == 120
    first = back[0]
    assert first["schemaVersion"] == "bedrock-conversation-2024"
    assert first["system"] == [{"text": "You summarize dialogues."}]
    assert [m["role"] for m in first["messages"]] == ["user", "assistant"]
    user, answer = (
        first["messages"][0]["content"][0]["text"],
        first["messages"][1]["content"][0]["text"],
    )
    number = answer.removeprefix("Lunch at ").removesuffix(".")
    # the user turn is data.prompt_template filled exactly as local training fills it
    assert user == f"Summarize this dialogue:\nAnna: lunch at {number}?\nBen: sure"
    assert {r["messages"][1]["content"][0]["text"] for r in back} == {
        r["summary"] for r in rows(120)
    }


def test_no_system_block_without_a_system_prompt(tmp_path):
    loaded = config(tmp_path, rows(120), system_prompt=None)
    report = export_dataset(loaded, tmp_path / "out")
    assert "system" not in read_records(report.files["train"])[0]


def test_too_few_training_records_names_the_limit_and_writes_nothing(tmp_path):
    loaded = config(tmp_path, rows(50))
    with pytest.raises(DataError, match=r"train split has 45 records; .* at least 100"):
        export_dataset(loaded, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_too_many_training_records(tmp_path, monkeypatch):
    model = facts.base_model(LLAMA)
    limits = {**model.limits, "min_training_records": 1, "max_training_records": 10}
    monkeypatch.setattr(
        "llmship.bedrock.export.base_model",
        lambda _id: facts.BaseModel(**{**model.__dict__, "limits": limits}),
    )
    with pytest.raises(DataError, match=r"has 18 records; .* at most 10 .*data.max_rows=10"):
        export_dataset(config(tmp_path, rows(20)), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_default_limits_are_the_tables():
    model = facts.base_model(LLAMA)
    assert model.limits["min_training_records"] == 100
    assert model.limits["max_training_records"] == 10_000
    assert model.limits["max_tokens_per_record"] == 16_000
    assert model.hyperparameters["epochCount"] == facts.Range("int", 1, 10, 5)
    assert model.hyperparameters["learningRate"].min == 5e-6
    assert "us-west-2" in model.regions


def test_a_long_row_is_named_with_the_limit(tmp_path):
    data = rows(120)
    data[7]["dialogue"] = "word " * 20_000  # 100,000 characters > 16,000 tokens x 6
    loaded = config(tmp_path, data, validation_fraction=0.0)
    with pytest.raises(DataError, match=r"d\.jsonl:8: 100,0\d\d characters, over the 96,000"):
        export_dataset(loaded, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_tokens_are_counted_when_a_counter_is_given(tmp_path):
    data = rows(120)
    data[3]["summary"] = "x " * 9000
    loaded = config(tmp_path, data, validation_fraction=0.0)

    def count(text: str) -> int:
        return len(text.split()) * 2

    with pytest.raises(DataError, match=r"d\.jsonl:4: 18,0\d\d tokens, over the 16,000 tokens"):
        export_dataset(loaded, tmp_path / "out", count_tokens=count)


def test_a_row_without_the_output_field_is_named(tmp_path):
    data = rows(120)
    del data[11]["summary"]
    with pytest.raises(DataError, match=r"d\.jsonl:12: missing field 'summary'"):
        export_dataset(config(tmp_path, data, validation_fraction=0.0), tmp_path / "out")


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"schemaVersion": "other", "messages": []}, "not a bedrock-conversation-2024 record"),
        (
            {
                "schemaVersion": "bedrock-conversation-2024",
                "messages": [{"role": "user", "content": [{"text": "hi"}]}],
            },
            "a record needs at least a user and an assistant turn",
        ),
        (
            {
                "schemaVersion": "bedrock-conversation-2024",
                "messages": [
                    {"role": "assistant", "content": [{"text": "a"}]},
                    {"role": "user", "content": [{"text": "b"}]},
                ],
            },
            "turn 1 is 'assistant' where 'user' belongs",
        ),
        (
            {
                "schemaVersion": "bedrock-conversation-2024",
                "messages": [
                    {"role": "user", "content": [{"text": "a"}]},
                    {"role": "system", "content": [{"text": "b"}]},
                ],
            },
            "turn 2 has role 'system'; allowed roles: user, assistant",
        ),
        (
            {
                "schemaVersion": "bedrock-conversation-2024",
                "messages": [
                    {"role": "user", "content": [{"text": "a"}]},
                    {"role": "assistant", "content": [{"text": "b"}]},
                    {"role": "user", "content": [{"text": "c"}]},
                ],
            },
            "the last turn must be the assistant's answer",
        ),
        (
            {
                "schemaVersion": "bedrock-conversation-2024",
                "messages": [
                    {"role": "user", "content": [{"text": "a"}]},
                    {"role": "assistant", "content": [{"text": "  "}]},
                ],
            },
            "turn 2 needs non-empty",
        ),
    ],
)
def test_roles_and_turn_order(record, message):
    with pytest.raises(DataError, match="row 3: " + message.replace("(", r"\(")):
        check_record(record, "row 3")


def test_read_records_names_the_line(tmp_path):
    good = {
        "schemaVersion": "bedrock-conversation-2024",
        "messages": [
            {"role": "user", "content": [{"text": "a"}]},
            {"role": "assistant", "content": [{"text": "b"}]},
        ],
    }
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(good) + "\n" + "{oops\n")
    with pytest.raises(DataError, match=r"train\.jsonl:2: not valid JSON"):
        read_records(path)


def test_multi_turn_records_pass_and_list_their_texts():
    record = {
        "schemaVersion": "bedrock-conversation-2024",
        "system": [{"text": "s"}],
        "messages": [
            {"role": "user", "content": [{"text": "a"}]},
            {"role": "assistant", "content": [{"text": "b"}]},
            {"role": "user", "content": [{"text": "c"}]},
            {"role": "assistant", "content": [{"text": "d"}]},
        ],
    }
    check_record(record, "r")
    assert record_texts(record) == ["s", "a", "b", "c", "d"]


def test_build_records_checks_every_split():
    model = facts.base_model(LLAMA)
    train = [Row(f"t:{i}", r) for i, r in enumerate(rows(100), start=1)]
    validation = [Row("v:1", {"dialogue": "x"})]
    with pytest.raises(DataError, match="v:1: missing field 'summary'"):
        build_records(
            {"train": train, "validation": validation},
            prompt_template="{dialogue}",
            output_field="summary",
            system_prompt=None,
            model=model,
        )


def test_cli_data_export(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from llmship.cli import app

    loaded = config(tmp_path, rows(120))
    (tmp_path / "llmship.yaml").write_text(loaded.snapshot_yaml())
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["data", "export", "--format", "bedrock", "--out", "bd"])
    assert result.exit_code == 0, result.output
    assert "96,000 chars" in result.output
    assert len(read_records(tmp_path / "bd" / "train.jsonl")) == 108
    refused = CliRunner().invoke(app, ["data", "export", "--format", "openai"])
    assert refused.exit_code != 0 and "the one format is bedrock" in refused.output
