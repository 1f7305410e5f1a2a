"""The API gateway: keys, quotas, routing and an OpenAI front, locally and on Lambda.

Never imports torch, transformers or the engine: the same modules go into the Lambda
zip, where none of those exist. A test checks it.
"""

from __future__ import annotations

from llmship.gateway.app import create_gateway_app
from llmship.gateway.keys import KeyRecord, new_key
from llmship.gateway.stats import KeyUsage, usage_by_key
from llmship.gateway.store import GatewayStore, RequestLog, open_store

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
