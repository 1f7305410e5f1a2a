"""Error bodies in the three shapes the server speaks, chosen by route.

    /invocations          the container's {"code", "type", "message"}
    /endpoints/...        AWS's: x-amzn-ErrorType and {"message"}, as boto3 parses them
    /v1/...               OpenAI's {"error": {"message", "type", "param", "code"}}

The admission layer refuses requests before any route runs, so it picks the shape
from the path with `refusal`.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse

from llmship.protocol.openai import error_body


def container_error(status: int, message: str, retry_after_s: int | None = None) -> JSONResponse:
    kind = "BadRequest" if status < 500 else "InternalServerException"
    return JSONResponse(
        {"code": status, "type": kind, "message": message},
        status_code=status,
        headers=_retry(retry_after_s),
    )


def aws_error(
    status: int, code: str, message: str, retry_after_s: int | None = None, **extra
) -> JSONResponse:
    return JSONResponse(
        {"message": message, **extra},
        status_code=status,
        headers={"x-amzn-ErrorType": code, **_retry(retry_after_s)},
    )


def openai_error(
    status: int,
    message: str,
    kind: str,
    param: str | None = None,
    code: str | None = None,
    retry_after_s: int | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(message, kind, param, code),
        status_code=status,
        headers=_retry(retry_after_s),
    )


def refusal(path: str, status: int, message: str, retry_after_s: int | None = None):
    """A 503 (at capacity), 408 (body too slow) or 413 in the shape of the route at `path`."""
    if path.startswith("/v1/"):
        kind = {503: "server_overloaded", 408: "timeout"}.get(status, "invalid_request_error")
        return openai_error(status, message, kind, retry_after_s=retry_after_s)
    if path.startswith("/endpoints/"):
        code = {503: "ServiceUnavailable", 408: "RequestTimeout"}.get(status, "ValidationError")
        return aws_error(status, code, message, retry_after_s)
    return container_error(status, message, retry_after_s)


def _retry(retry_after_s: int | None) -> dict[str, str]:
    return {"Retry-After": str(retry_after_s)} if retry_after_s else {}
