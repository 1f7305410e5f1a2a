"""Attention for one new token per row without copying keys and values per query head.

Grouped-query models (Llama 3: 32 query heads, 8 key/value heads) share each key/value
head among several query heads. transformers' SDPA path copies the keys and values once
per query head whenever a mask is given (`repeat_kv`), which for a decode step reads and
writes four times the KV cache it needs. A decode step has one query per row, so the
query heads of a group can stand in for the query length instead: SDPA then reads each
key/value head once. Prefill (several tokens per row) keeps transformers' own path.
"""

from __future__ import annotations

import torch

NAME = "llmship_grouped"


def grouped_decode_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """query [rows, heads, 1, dim] against key/value [rows, kv_heads, span, dim]; the mask
    [rows, 1, 1, span] is shared by every head. Returns [rows, 1, heads, dim]."""
    rows, heads, length, dim = query.shape
    kv_heads = key.shape[1]
    if length != 1 or kv_heads == heads or kwargs.get("position_bias") is not None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout, scaling, **kwargs
        )
    grouped = query.reshape(rows, kv_heads, heads // kv_heads, dim)
    out = torch.nn.functional.scaled_dot_product_attention(
        grouped, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling
    )
    return out.reshape(rows, 1, heads, value.shape[-1]), None


def use_grouped_decode_attention(model: torch.nn.Module) -> bool:
    """Switch a model that attends through SDPA to the grouped decode path; True if done."""
    config = model.config
    if getattr(config, "_attn_implementation", None) != "sdpa":
        return False
    heads = config.num_attention_heads
    if getattr(config, "num_key_value_heads", heads) == heads:
        return False
    # Registered here, not at import: transformers' attention registry pulls in much of
    # the library, which a server that has not loaded a model yet does not need.
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(NAME, grouped_decode_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
    try:
        model.set_attn_implementation(NAME)
    except (AttributeError, ValueError):  # a model that picks its attention its own way
        return False
    return True
