"""Helpers the tests share."""

from __future__ import annotations

from pathlib import Path

from llmship.config.loader import LoadedConfig, load_config_dict
from llmship.models.tiny import TinySpec

SMALL = TinySpec(hidden_size=64, intermediate_size=128, heads=4, kv_heads=2, layers=2)


def make_config(base_dir: Path, **sections) -> LoadedConfig:
    """A validated config rooted at base_dir; sections are merged over small defaults."""
    tree = {
        "model": {"max_length": 256},
        "train": {
            "epochs": 1,
            "batch_size": 8,
            "learning_rate": 5e-3,
            "save_steps": 1000,
            "logging_steps": 1,
            "lora": {"r": 16, "alpha": 16, "dropout": 0.0},
        },
        "eval": {"max_samples": 8, "generation": {"max_new_tokens": 16}},
    }
    for name, values in sections.items():
        merged = dict(tree.get(name, {}))
        for key, value in values.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
        tree[name] = merged
    return load_config_dict(tree, base_dir=base_dir, env={})
