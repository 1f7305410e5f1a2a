"""The gateway on AWS Lambda: the same ASGI app, built once per cold start.

Two ways in, one app:
- buffered: `handler` is Mangum, which turns API Gateway REST (v1), HTTP API (v2) and
  function URL events into ASGI requests and the whole answer into one response
  (streams are collected; API Gateway's 29 s integration limit applies);
- streamed: the AWS Lambda Web Adapter layer runs `run.sh` (uvicorn on the same app)
  and streams the answer through InvokeWithResponseStream to an API Gateway REST
  integration in STREAM mode or a function URL in RESPONSE_STREAM mode.

`authorize` is the REST API's Lambda REQUEST authorizer: it checks the key (401 for a
missing, unknown or revoked one) and returns the API Gateway key mapped to it as the
usage identifier, so the usage plan counts each llmship key's requests. Route rights,
rate limits and token quotas stay with the gateway itself.

Settings come from the environment: LLMSHIP_GATEWAY_CONFIG (a JSON file of the
gateway section, written into the zip by `llmship expose`) and LLMSHIP_GATEWAY_TABLE
(the DynamoDB table).
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


@lru_cache(maxsize=1)
def _gateway():
    from llmship.config.gateway import GatewayConfig
    from llmship.gateway.app import create_gateway_app
    from llmship.gateway.dynamo_store import DynamoStore

    path = Path(os.environ.get("LLMSHIP_GATEWAY_CONFIG", "gateway.json"))
    config = GatewayConfig.model_validate(json.loads(path.read_text(encoding="utf-8")))
    store = DynamoStore(os.environ["LLMSHIP_GATEWAY_TABLE"])
    return create_gateway_app(config, store, base_dir=path.resolve().parent), store


def app():
    """The ASGI app (uvicorn imports `llmship.gateway.lambda_handler:app` with --factory)."""
    return _gateway()[0]


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Buffered entry point (Mangum): API Gateway v1/v2 and function URL events."""
    from mangum import Mangum

    return Mangum(_gateway()[0], lifespan="off")(event, context)


def authorize(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """REQUEST authorizer: Allow with the key's usage identifier, or 401 (`Unauthorized`)."""
    from llmship.gateway.auth import Guard, Refused
    from llmship.gateway.keys import key_from_headers

    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    try:
        record = Guard(_gateway()[1]).authenticate(key_from_headers(headers))
    except Refused:
        raise Exception("Unauthorized") from None  # API Gateway answers 401 for exactly this
    # allow every method of this API for the key; the gateway checks the route itself
    arn = event["methodArn"].split("/")
    resource = "/".join(arn[:2]) + "/*"
    answer = {
        "principalId": record.key_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": resource}
            ],
        },
        "context": {"key_id": record.key_id},
    }
    usage_key = record.details.get("usage_key")
    if usage_key:
        answer["usageIdentifierKey"] = usage_key
    return answer
