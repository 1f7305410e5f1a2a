"""Tiny random-init models with locally trained tokenizers, for the demo and the tests.

Nothing is downloaded: the tokenizer is trained on llmship's own sample text, the
weights come from a seeded random init, and everything is saved as safetensors in the
same layout a hub model has, so every code path that loads hub models loads these.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from llmship.errors import ModelError

Arch = Literal["llama", "t5"]

LLAMA_SPECIALS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "<|finetune_right_pad_id|>",
]
T5_SPECIALS = ["<pad>", "</s>", "<unk>"]

# Llama 3's chat format, reduced to what a tiny model needs, with Hermes-style tools: the
# tools listed in a system turn, calls written as <tool_call>{"name", "arguments"}</tool_call>
# and results given back in `tool` turns. Without tools it renders as it always has.
LLAMA_CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- if tools %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}"
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- messages[0]['content'] | trim }}{{- '\\n\\n' }}"
    "{%- endif %}"
    "{{- 'You may call functions. Their signatures, within <tools></tools>:\\n<tools>' }}"
    "{%- for tool in tools %}{{- '\\n' }}{{- tool | tojson }}{%- endfor %}"
    "{{- '\\n</tools>\\nFor each call, answer with a JSON object within <tool_call></tool_call>:"
    '\\n<tool_call>\\n{"name": <function-name>, "arguments": <args-json-object>}\\n'
    "</tool_call><|eot_id|>' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (tools and loop.first and message['role'] == 'system') %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
    "{{- (message['content'] or '') | trim }}"
    "{%- for call in message['tool_calls'] or [] %}"
    "{%- set call = call['function'] if call['function'] is defined else call %}"
    "{{- ('\\n' if message['content'] else '') + '<tool_call>\\n{\"name\": ' }}"
    "{{- call['name'] | tojson + ', \"arguments\": ' }}"
    "{{- (call['arguments'] if call['arguments'] is string else call['arguments'] | tojson) }}"
    "{{- '}\\n</tool_call>' }}"
    "{%- endfor %}"
    "{{- '<|eot_id|>' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- endif %}"
)


@dataclass(frozen=True)
class TinySpec:
    """Sizes of a tiny model; the defaults train in about a minute on two CPU cores."""

    vocab_size: int = 1024
    hidden_size: int = 128
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    intermediate_size: int = 256
    max_positions: int = 1024
    # Llama only: wider than the usual 0.02 so that logits can be sharp and attention
    # matters; with frozen random embeddings LoRA alone could otherwise barely move the
    # loss. (T5's own init already scales its untied output layer to unit variance.)
    initializer_range: float = 0.2
    # Llama only: rope settings, e.g. Llama 3's {"rope_type": "llama3", "rope_theta": 500000.0,
    # "factor": 32.0, ...}; None keeps the transformers default.
    rope_parameters: dict | None = None
    # Pad the tokenizer to exactly vocab_size (benchmarks want a vocabulary of a set size).
    fill_vocab: bool = False
    seed: int = 0


def create_tiny_model(
    out_dir: str | Path, arch: Arch = "llama", spec: TinySpec | None = None
) -> Path:
    """Write a random-init model, its tokenizer and generation config to `out_dir`."""
    import torch

    spec = spec or TinySpec()
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise ModelError(f"{out} is not empty; choose a new directory or remove it first")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(spec.seed)
    if arch == "llama":
        tokenizer = _llama_tokenizer(spec)
        model = _llama_model(tokenizer, spec)
    elif arch == "t5":
        tokenizer = _t5_tokenizer(spec)
        model = _t5_model(tokenizer, spec)
    else:
        raise ModelError(f"unknown tiny architecture {arch!r}; choose llama or t5")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _fill_vocab(tokenizer, vocab_size: int) -> None:
    """Pad a tokenizer trained on little text up to vocab_size with plain word tokens, so a
    model of that vocabulary size never emits an id the tokenizer cannot decode."""
    missing = vocab_size - len(tokenizer)
    if missing > 0:
        tokenizer.add_tokens([f" w{index}" for index in range(missing)])


def _train_bpe(specials: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from llmship.data.samples import sample_text

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(sample_text().splitlines(), trainer=trainer)
    return tokenizer


def _llama_tokenizer(spec: TinySpec):
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    raw = _train_bpe(LLAMA_SPECIALS, spec.vocab_size)
    bos = "<|begin_of_text|>"
    raw.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, raw.token_to_id(bos))]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        bos_token=bos,
        eos_token="<|eot_id|>",
        pad_token="<|finetune_right_pad_id|>",
        chat_template=LLAMA_CHAT_TEMPLATE,
        model_max_length=spec.max_positions,
        clean_up_tokenization_spaces=False,
    )
    if spec.fill_vocab:
        _fill_vocab(tokenizer, spec.vocab_size)
    return tokenizer


def _t5_tokenizer(spec: TinySpec):
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    raw = _train_bpe(T5_SPECIALS, spec.vocab_size)
    raw.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", raw.token_to_id("</s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=raw,
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_max_length=spec.max_positions,
        clean_up_tokenization_spaces=False,
    )


def _llama_model(tokenizer, spec: TinySpec):
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.kv_heads,
        max_position_embeddings=spec.max_positions,
        tie_word_embeddings=True,
        initializer_range=spec.initializer_range,
        **({"rope_parameters": dict(spec.rope_parameters)} if spec.rope_parameters else {}),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return model


def _t5_model(tokenizer, spec: TinySpec):
    from transformers import GenerationConfig, T5Config, T5ForConditionalGeneration

    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=spec.hidden_size,
        d_kv=spec.hidden_size // spec.heads,
        d_ff=spec.intermediate_size,
        num_layers=spec.layers,
        num_decoder_layers=spec.layers,
        num_heads=spec.heads,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    model = T5ForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return model
