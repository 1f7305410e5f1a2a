"""Data: loading with locations, splits, prompt formatting with masked labels, filtering."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from transformers import AutoTokenizer

from helpers import make_config
from llmship.data.formatting import IGNORE_INDEX, PromptFormat, encode_rows, prompt_format_for
from llmship.data.loading import Row, load_rows
from llmship.data.prepare import load_splits, prepare_data, read_channel
from llmship.data.samples import bio_qa_rows, samsum_rows
from llmship.errors import ConfigError, DataError

ROWS = [{"dialogue": f"A: hi {i}\nB: bye {i}", "summary": f"they said hi {i}"} for i in range(30)]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_jsonl_csv_parquet_and_saved_dataset_give_the_same_rows(tmp_path):
    import csv

    import datasets

    write_jsonl(tmp_path / "d.jsonl", ROWS)
    with (tmp_path / "d.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["dialogue", "summary"])
        writer.writeheader()
        writer.writerows(ROWS)
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "d.parquet")
    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "saved"))
    for source in ("d.jsonl", "d.csv", "d.parquet", "saved"):
        rows = load_rows(str(tmp_path / source))["train"]
        assert [r.fields for r in rows] == ROWS, source
    csv_rows = load_rows(str(tmp_path / "d.csv"))["train"]
    # The multi-line quoted field starts the record on line 2 and the next on line 4.
    assert csv_rows[0].where == "d.csv:2" and csv_rows[1].where == "d.csv:4"


def test_bad_json_line_is_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"dialogue": "a", "summary": "b"}\n\n{"dialogue": oops}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:3: not valid JSON"):
        load_rows(str(path))
    path.write_text('{"dialogue": "a", "summary": "b"}\n[1, 2]\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2: expected a JSON object"):
        load_rows(str(path))


def test_empty_and_missing_files_are_clear(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match=r"empty\.jsonl has no rows"):
        load_rows(str(tmp_path / "empty.jsonl"))
    with pytest.raises(DataError, match="not found"):
        load_rows(str(tmp_path / "nope.jsonl"))
    (tmp_path / "d.txt").write_text("x")
    with pytest.raises(DataError, match="unknown file type"):
        load_rows(str(tmp_path / "d.txt"))


def test_missing_fields_name_the_row_and_field(tiny_llama):
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    fmt = PromptFormat("causal", "Summarize:\n{dialogue}", "dialogue", "summary")
    with pytest.raises(
        DataError, match=r"d\.jsonl:7: missing field 'summary' \(data.output_field\)"
    ):
        fmt.encode_example(Row("d.jsonl:7", {"dialogue": "x"}), tokenizer)
    with pytest.raises(DataError, match=r"d\.jsonl:9: missing field 'dialogue' used by"):
        fmt.encode_example(Row("d.jsonl:9", {"text": "x", "summary": "y"}), tokenizer)


def test_causal_chat_example_masks_exactly_the_prompt(tiny_llama, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    loaded = make_config(
        tmp_path,
        model={"name_or_path": str(tiny_llama)},
        data={"source": "x.jsonl", "system_prompt": "Be brief."},
    )
    fmt = prompt_format_for(loaded.config, "causal", tokenizer)
    assert fmt.use_chat_template  # the tiny Llama has a chat template
    row = Row(
        "r:1", {"dialogue": "Anna: lunch at noon?\nTom: yes", "summary": "Anna and Tom meet."}
    )
    example = fmt.encode_example(row, tokenizer)
    prompt_ids = fmt.encode_prompt(row.fields, tokenizer)
    n = len(prompt_ids)
    assert example["input_ids"][:n] == prompt_ids
    assert example["labels"][:n] == [IGNORE_INDEX] * n
    completion = example["labels"][n:]
    assert IGNORE_INDEX not in completion
    assert completion[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(completion, skip_special_tokens=True) == "Anna and Tom meet."
    prompt_text = tokenizer.decode(prompt_ids)
    assert prompt_text.count("<|begin_of_text|>") == 1  # BOS exactly once
    assert "<|start_header_id|>system<|end_header_id|>\n\nBe brief." in prompt_text
    assert prompt_text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_plain_template_and_seq2seq_formatting(tiny_llama, tiny_t5, tmp_path):
    llama = AutoTokenizer.from_pretrained(tiny_llama)
    loaded = make_config(
        tmp_path, model={"name_or_path": "x", "chat_template": "off"}, data={"source": "x.jsonl"}
    )
    fmt = prompt_format_for(loaded.config, "causal", llama)
    assert not fmt.use_chat_template
    assert fmt.prompt_text({"dialogue": "hi"}, llama) == "Summarize this dialogue:\nhi"
    t5 = AutoTokenizer.from_pretrained(tiny_t5)
    fmt = prompt_format_for(loaded.config, "seq2seq", t5)
    example = fmt.encode_example(Row("r", {"dialogue": "hi", "summary": "a greeting"}), t5)
    assert IGNORE_INDEX not in example["labels"]
    assert t5.decode(example["labels"], skip_special_tokens=True) == "a greeting"
    assert example["labels"][-1] == t5.eos_token_id


def test_chat_template_on_without_one_is_a_config_error(tiny_t5, tmp_path):
    t5 = AutoTokenizer.from_pretrained(tiny_t5)
    loaded = make_config(
        tmp_path, model={"name_or_path": "t5", "chat_template": "on"}, data={"source": "x.jsonl"}
    )
    with pytest.raises(ConfigError, match=r"model\.chat_template is on"):
        prompt_format_for(loaded.config, "causal", t5)


def test_length_filter_counts_dropped_rows(tiny_llama):
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    fmt = PromptFormat("causal", "{dialogue}", "dialogue", "summary")
    rows = [
        Row(f"r{i}", {"dialogue": "word " * (5 if i % 3 else 200), "summary": "s"})
        for i in range(9)
    ]
    encoded = encode_rows(rows, fmt, tokenizer, max_length=64)
    assert encoded.dropped == 3
    assert [r.where for r in encoded.rows] == [f"r{i}" for i in range(9) if i % 3]
    assert all(len(e["input_ids"]) <= 64 for e in encoded.examples)


def test_seeded_splits_are_disjoint_and_reproducible(tmp_path):
    write_jsonl(tmp_path / "d.jsonl", ROWS)
    loaded = make_config(
        tmp_path,
        model={"name_or_path": "x"},
        data={"source": "d.jsonl", "validation_fraction": 0.2, "test_fraction": 0.1},
    )
    splits = load_splits(loaded)
    sizes = [len(s) for _, s in splits.items()]
    assert sizes == [21, 6, 3]
    ids = [r.fields["summary"] for _, rows in splits.items() for r in rows]
    assert sorted(ids) == sorted(r["summary"] for r in ROWS)  # disjoint and complete
    assert load_splits(loaded) == splits
    other = make_config(
        tmp_path,
        model={"name_or_path": "x"},
        data={"source": "d.jsonl", "validation_fraction": 0.2, "test_fraction": 0.1, "seed": 7},
    )
    assert load_splits(other).train != splits.train


def test_dataset_own_splits_are_used(tmp_path):
    import datasets

    def part(start, stop):
        return datasets.Dataset.from_list(ROWS[start:stop])

    datasets.DatasetDict(
        {"train": part(0, 20), "val": part(20, 25), "test": part(25, 30)}
    ).save_to_disk(str(tmp_path / "dd"))
    loaded = make_config(
        tmp_path,
        model={"name_or_path": "x"},
        data={"source": "dd", "splits": {"validation": "val"}},
    )
    splits = load_splits(loaded)
    assert [r.fields for r in splits.validation] == ROWS[20:25]
    assert [r.fields for r in splits.test] == ROWS[25:30]
    assert len(splits.train) == 20
    bad = make_config(
        tmp_path,
        model={"name_or_path": "x"},
        data={"source": "dd", "splits": {"train": "training"}},
    )
    with pytest.raises(
        DataError, match=r"no split 'training' \(data.splits.train\).*test, train, val"
    ):
        load_splits(bad)


def test_prepare_writes_channels_and_reports_drops(tiny_llama, tmp_path):
    rows = [*ROWS, {"dialogue": "long " * 400, "summary": "x"}]
    write_jsonl(tmp_path / "d.jsonl", rows)
    loaded = make_config(
        tmp_path,
        model={"name_or_path": str(tiny_llama), "max_length": 128},
        data={"source": "d.jsonl", "test_fraction": 0.0, "validation_fraction": 0.0},
    )
    report = prepare_data(
        loaded, tmp_path / "out", AutoTokenizer.from_pretrained(tiny_llama), "causal"
    )
    assert report.rows == {"train": 30, "validation": 0, "test": 0}
    assert report.dropped["train"] == 1
    written = read_channel(tmp_path / "out" / "train", "train")
    assert sorted(r.fields["summary"] for r in written) == sorted(r["summary"] for r in ROWS)


def test_samples_are_deterministic_and_shaped_like_their_sources():
    assert samsum_rows() == samsum_rows()
    row = samsum_rows()[0]
    assert set(row) == {"id", "dialogue", "summary"}
    assert ":" in row["dialogue"] and "\n" in row["dialogue"]
    assert set(bio_qa_rows()[0]) == {"question", "answer"}
