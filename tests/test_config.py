"""Config loading: every error names the key path, where it came from and what is allowed."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from llmship.config.loader import REDACTED, load_config
from llmship.config.schema import LlmshipConfig
from llmship.errors import ConfigError
from llmship.templates import TEMPLATES, render_template, write_template

BASE = """\
model:
  name_or_path: some/model
data:
  source: data.jsonl
train:
  epochs: 2
  lora:
    r: 8
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "llmship.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def error_of(*args, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(*args, **kwargs)
    return str(info.value)


def test_valid_config_loads_with_defaults(tmp_path):
    loaded = load_config(write(tmp_path, BASE), env={})
    assert loaded.config.train.epochs == 2
    assert loaded.config.train.lora.r == 8
    assert loaded.config.train.method == "lora"
    assert loaded.base_dir == tmp_path.resolve()


def test_unknown_key_names_path_line_and_allowed_keys(tmp_path):
    path = write(tmp_path, BASE.replace("  epochs: 2", "  epochs: 2\n  epoch: 3"))
    message = error_of(path, env={})
    assert "train.epoch (line 7): unknown key" in message
    assert "epochs" in message and "learning_rate" in message
    assert str(path) in message


def test_wrong_type_names_path_line_and_value(tmp_path):
    message = error_of(write(tmp_path, BASE.replace("epochs: 2", "epochs: three")), env={})
    assert "train.epochs (line 6)" in message
    assert "'three'" in message
    assert "integer" in message


def test_out_of_range_value_says_what_is_allowed(tmp_path):
    message = error_of(write(tmp_path, BASE.replace("r: 8", "r: 0")), env={})
    assert "train.lora.r (line 8)" in message
    assert "0 is not allowed" in message
    assert "greater than or equal to 1" in message


def test_bad_choice_lists_the_choices(tmp_path):
    message = error_of(write(tmp_path, BASE + "  method: adam\n"), env={})
    assert "train.method" in message and "'adam'" in message
    assert "'lora', 'qlora' or 'full'" in message


def test_every_problem_is_reported_at_once(tmp_path):
    text = BASE.replace("r: 8", "r: -1").replace("epochs: 2", "epochs: 0")
    message = error_of(write(tmp_path, text), env={})
    assert message.splitlines()[0].endswith("2 problems in the config")
    assert "train.epochs" in message and "train.lora.r" in message


def test_missing_required_section_is_named(tmp_path):
    message = error_of(write(tmp_path, "model:\n  name_or_path: x\n"), env={})
    assert "data: required" in message


def test_invalid_yaml_names_the_line(tmp_path):
    message = error_of(write(tmp_path, BASE + "eval: [unclosed\n"), env={})
    assert "llmship.yaml:10" in message or "llmship.yaml:11" in message
    assert "not valid YAML" in message


def test_missing_file_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert "llmship init" in error_of(None, env={})


def test_set_overrides_are_typed_and_validated(tmp_path):
    path = write(tmp_path, BASE)
    loaded = load_config(
        path, ["train.epochs=5", "train.lora.dropout=0.0", "data.max_rows=10"], env={}
    )
    assert loaded.config.train.epochs == 5
    assert loaded.config.data.max_rows == 10
    message = error_of(path, ["train.epochs=-1"], env={})
    assert "train.epochs (--set train.epochs)" in message
    assert "--set train.epoch" in error_of(path, ["train.epoch=3"], env={})
    assert "expected key.path=value" in error_of(path, ["train.epochs"], env={})
    assert "is a value, not a section" in error_of(path, ["train.epochs.x=1"], env={})


def test_env_interpolation_from_environment_and_dotenv(tmp_path):
    text = BASE.replace("some/model", "${BASE_MODEL}").replace(
        "data.jsonl", "${DATA:-fallback.jsonl}"
    )
    path = write(tmp_path, text)
    (tmp_path / ".env").write_text("BASE_MODEL=from-dotenv\n")
    loaded = load_config(path, env={})
    assert loaded.config.model.name_or_path == "from-dotenv"
    assert loaded.config.data.source == "fallback.jsonl"
    loaded = load_config(path, env={"BASE_MODEL": "from-env", "DATA": "d.csv"})
    assert loaded.config.model.name_or_path == "from-env"  # the environment wins over .env
    assert loaded.config.data.source == "d.csv"


def test_unset_variable_names_key_and_variable(tmp_path):
    path = write(tmp_path, BASE.replace("some/model", "${NOT_SET_ANYWHERE}"))
    message = error_of(path, env={})
    assert "model.name_or_path" in message
    assert "${NOT_SET_ANYWHERE}" in message
    assert "llmship.yaml:2" in message


def test_snapshot_keeps_references_and_never_secrets(tmp_path):
    path = write(
        tmp_path,
        BASE.replace(
            "  name_or_path: some/model", "  name_or_path: some/model\n  hf_token: ${HF_TOKEN}"
        ),
    )
    loaded = load_config(path, env={"HF_TOKEN": "hf_canary_secret"})
    assert loaded.config.model.hf_token.get_secret_value() == "hf_canary_secret"
    snapshot = loaded.snapshot_yaml()
    assert "${HF_TOKEN}" in snapshot and "hf_canary_secret" not in snapshot
    # A literal token given on the command line is redacted, not written.
    loaded = load_config(path, ["model.hf_token=hf_literal_secret"], env={})
    assert "hf_literal_secret" not in loaded.snapshot_yaml()
    assert yaml.safe_load(loaded.snapshot_yaml())["model"]["hf_token"] == REDACTED
    assert "hf_literal_secret" not in repr(loaded.config)


def test_prompt_template_must_use_the_input_field(tmp_path):
    text = BASE.replace(
        "  source: data.jsonl", "  source: data.jsonl\n  prompt_template: 'Summarize: {text}'"
    )
    message = error_of(write(tmp_path, text), env={})
    assert "data" in message and "{dialogue}" in message and "text" in message


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_templates_render_with_help_and_load_back(tmp_path, name):
    text = render_template(name)
    assert "# Base model: a Hugging Face hub id" in text  # help text from the schema
    assert "${HF_TOKEN:-}" in text
    path = write(tmp_path, text)
    config = load_config(path, env={}).config
    expected = LlmshipConfig.model_validate(TEMPLATES[name])
    assert config.model.name_or_path == expected.model.name_or_path
    assert config.data == expected.data
    assert config.train == expected.train
    assert config.model.hf_token is None  # ${HF_TOKEN:-} with HF_TOKEN unset


def test_write_template_adds_sample_data_and_refuses_overwrite(tmp_path):
    written = write_template("qa-flan-t5", tmp_path)
    assert (tmp_path / "data" / "qa.jsonl") in written
    assert (tmp_path / "data" / "qa.jsonl").read_text().count("\n") == 160
    with pytest.raises(ConfigError, match="--force"):
        write_template("qa-flan-t5", tmp_path)
    with pytest.raises(ConfigError, match="samsum-llama"):
        render_template("nope")
