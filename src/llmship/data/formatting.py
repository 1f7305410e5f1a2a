"""Turn rows into prompts and training examples, the same way everywhere.

A PromptFormat is saved with the model (llmship.json), so evaluation, local serving and
every endpoint build prompts exactly as training did. Causal examples carry the loss on
the completion only: prompt positions are labelled -100.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from llmship.config.schema import LlmshipConfig
from llmship.data.loading import Row
from llmship.errors import ConfigError, DataError

IGNORE_INDEX = -100


@dataclass(frozen=True)
class PromptFormat:
    """How a row becomes a prompt (and, for training, a completion)."""

    kind: Literal["causal", "seq2seq"]
    prompt_template: str
    input_field: str
    output_field: str
    system_prompt: str | None = None
    use_chat_template: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PromptFormat:
        known = {name: values[name] for name in cls.__dataclass_fields__ if name in values}
        return cls(**known)

    def fields_for(self, text: str) -> dict[str, str]:
        """Row fields for a bare input text (the CLI's --input, a served prompt)."""
        return {self.input_field: text}

    def prompt_text(self, fields: dict[str, Any], tokenizer, where: str = "input") -> str:
        """The prompt as text, through the chat template when the model uses one."""
        try:
            user = self.prompt_template.format_map(_Strict(fields, where))
        except (ValueError, IndexError) as exc:
            raise ConfigError(f"data.prompt_template cannot be filled: {exc}") from None
        if not self.use_chat_template:
            return user
        messages = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": user})
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def encode_prompt(self, fields: dict[str, Any], tokenizer, where: str = "input") -> list[int]:
        """Token ids of the prompt, special tokens included exactly once."""
        text = self.prompt_text(fields, tokenizer, where)
        # A rendered chat template already holds its BOS; plain prompts get the tokenizer's own.
        return tokenizer(text, add_special_tokens=not self.use_chat_template)["input_ids"]

    def encode_example(self, row: Row, tokenizer) -> dict[str, list[int]]:
        """input_ids and labels for one training row (labels -100 on the prompt)."""
        completion = row.fields.get(self.output_field)
        if completion is None or (isinstance(completion, str) and not completion.strip()):
            raise DataError(
                f"{row.where}: missing field {self.output_field!r} (data.output_field); "
                f"the row has: {', '.join(row.fields) or 'no fields'}"
            )
        prompt_ids = self.encode_prompt(row.fields, tokenizer, row.where)
        if self.kind == "seq2seq":
            labels = tokenizer(text_target=str(completion))["input_ids"]
            return {"input_ids": prompt_ids, "labels": labels}
        completion_ids = tokenizer(str(completion), add_special_tokens=False)["input_ids"]
        completion_ids = [*completion_ids, tokenizer.eos_token_id]
        return {
            "input_ids": prompt_ids + completion_ids,
            "labels": [IGNORE_INDEX] * len(prompt_ids) + completion_ids,
        }


class _Strict(dict):
    """format_map mapping that names the row and field when a placeholder is missing."""

    def __init__(self, fields: dict[str, Any], where: str):
        super().__init__(fields)
        self.where = where

    def __missing__(self, key: str) -> str:
        raise DataError(
            f"{self.where}: missing field {key!r} used by data.prompt_template; "
            f"the row has: {', '.join(self) or 'no fields'}"
        )


def example_length(example: dict[str, list[int]]) -> int:
    """Tokens an example occupies (its longest side for seq2seq)."""
    return max(len(example["input_ids"]), len(example["labels"]))


@dataclass
class EncodedRows:
    """Rows that fit max_length, their encodings, and how many were dropped as too long."""

    rows: list[Row]
    examples: list[dict[str, list[int]]]
    dropped: int


def encode_rows(
    rows: list[Row], prompt_format: PromptFormat, tokenizer, max_length: int
) -> EncodedRows:
    """Encode every row; rows longer than max_length tokens are dropped and counted."""
    kept = EncodedRows(rows=[], examples=[], dropped=0)
    for row in rows:
        example = prompt_format.encode_example(row, tokenizer)
        if example_length(example) > max_length:
            kept.dropped += 1
            continue
        kept.rows.append(row)
        kept.examples.append(example)
    return kept


def prompt_format_for(config: LlmshipConfig, kind: str, tokenizer) -> PromptFormat:
    """The PromptFormat a config asks for, checked against the tokenizer."""
    has_template = bool(getattr(tokenizer, "chat_template", None))
    choice = config.model.chat_template
    if choice == "on" and not has_template:
        raise ConfigError(
            f"model.chat_template is on, but the tokenizer of {config.model.name_or_path!r} has "
            "no chat template; set it to auto or off"
        )
    use_chat = kind == "causal" and (choice == "on" or (choice == "auto" and has_template))
    data = config.data
    return PromptFormat(
        kind=kind,
        prompt_template=data.prompt_template,
        input_field=data.input_field,
        output_field=data.output_field,
        system_prompt=data.system_prompt,
        use_chat_template=use_chat,
    )
