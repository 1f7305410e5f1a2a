"""The API gateway: keys, quotas, routing and an OpenAI front, locally and on Lambda.

Never imports torch, transformers or the engine: the same modules go into the Lambda
zip, where none of those exist. A test checks it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

# Loaded on first use: `llmship keys list` needs the store, not the web app's imports.
_EXPORTS = {
    "create_gateway_app": "llmship.gateway.app",
    "KeyRecord": "llmship.gateway.keys",
    "new_key": "llmship.gateway.keys",
    "KeyUsage": "llmship.gateway.stats",
    "usage_by_key": "llmship.gateway.stats",
    "GatewayStore": "llmship.gateway.store",
    "RequestLog": "llmship.gateway.store",
    "open_store": "llmship.gateway.backends",
}

if TYPE_CHECKING:
    from llmship.gateway.app import create_gateway_app
    from llmship.gateway.backends import open_store
    from llmship.gateway.keys import KeyRecord, new_key
    from llmship.gateway.stats import KeyUsage, usage_by_key
    from llmship.gateway.store import GatewayStore, RequestLog

__all__ = [
    "GatewayStore",
    "KeyRecord",
    "KeyUsage",
    "RequestLog",
    "create_gateway_app",
    "new_key",
    "open_store",
    "usage_by_key",
]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'llmship.gateway' has no attribute {name!r}")
