"""Calling a deployed model through sagemaker-runtime: whole answers, streams, async jobs.

The same calls work against SageMaker and against `llmship serve` (give its URL as the
runtime client's endpoint_url), which speaks the Runtime API paths. Payloads are the
caller's: `prompt_body` builds the Hugging Face toolkit's {"inputs", "parameters"}, and
models with their own schema (a Marketplace package, say) take any bytes with their
content type. `generated_text` and `stream_text` read answers back into text when
they are in the toolkit's shapes, and say so (None, raw text) when they are not.

Async invocations read their input from S3 and write the answer (or the error) to the
endpoint's S3 output (or failure) path; `invoke_async` uploads, asks, and polls there.
"""

from __future__ import annotations

import codecs
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import urlparse

from llmship.aws.errors import aws_call, error_code, is_not_found, translate
from llmship.errors import AwsError, DeployError

JSON = "application/json"


@dataclass(frozen=True)
class InvokeResult:
    body: bytes
    content_type: str


@dataclass(frozen=True)
class AsyncResult:
    output_location: str
    failure_location: str | None
    body: bytes | None


def prompt_body(prompt: str, parameters: dict | None = None) -> bytes:
    """The Hugging Face toolkit payload: {"inputs": prompt, "parameters": {...}}."""
    payload: dict = {"inputs": prompt}
    if parameters:
        payload["parameters"] = parameters
    return json.dumps(payload).encode()


def invoke(
    runtime,
    endpoint_name: str,
    *,
    body: bytes,
    content_type: str = JSON,
    accept: str | None = None,
) -> InvokeResult:
    """One InvokeEndpoint call: the whole answer and its content type."""
    options = {"Accept": accept} if accept else {}
    with aws_call("sagemaker-runtime", "InvokeEndpoint", endpoint_name):
        response = runtime.invoke_endpoint(
            EndpointName=endpoint_name, Body=body, ContentType=content_type, **options
        )
        data = response["Body"].read()
    return InvokeResult(body=data, content_type=response.get("ContentType", ""))


def invoke_stream(
    runtime, endpoint_name: str, *, body: bytes, content_type: str = JSON
) -> Iterator[bytes]:
    """InvokeEndpointWithResponseStream: each PayloadPart's bytes as it arrives."""
    from botocore.exceptions import BotoCoreError, ClientError, EventStreamError

    operation = "InvokeEndpointWithResponseStream"
    try:
        response = runtime.invoke_endpoint_with_response_stream(
            EndpointName=endpoint_name, Body=body, ContentType=content_type
        )
        for event in response["Body"]:
            part = event.get("PayloadPart")
            if part is not None:
                yield part["Bytes"]
    except (ClientError, BotoCoreError) as exc:  # EventStreamError: the model failed mid-stream
        where = " (mid-stream)" if isinstance(exc, EventStreamError) else ""
        raise translate(exc, "sagemaker-runtime", operation + where, endpoint_name) from None


def invoke_async(
    runtime,
    s3,
    endpoint_name: str,
    *,
    body: bytes,
    input_location: str,
    content_type: str = JSON,
    wait: bool = True,
    poll_seconds: float = 5,
    timeout_seconds: float = 3600,
    sleep=time.sleep,
) -> AsyncResult:
    """Upload `body` to `input_location` (s3://bucket/key), InvokeEndpointAsync, and, with
    `wait`, poll until the answer or the error object appears."""
    bucket, key = split_s3(input_location)
    with aws_call("s3", "PutObject", input_location):
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
    with aws_call("sagemaker-runtime", "InvokeEndpointAsync", endpoint_name):
        response = runtime.invoke_endpoint_async(
            EndpointName=endpoint_name, InputLocation=input_location, ContentType=content_type
        )
    output, failure = response["OutputLocation"], response.get("FailureLocation")
    if not wait:
        return AsyncResult(output, failure, None)
    waited = 0.0
    while True:
        answer = _read_if_there(s3, output)
        if answer is not None:
            return AsyncResult(output, failure, answer)
        error = _read_if_there(s3, failure) if failure else None
        if error is not None:
            raise AwsError(
                f"sagemaker-runtime InvokeEndpointAsync on {endpoint_name} failed: "
                f"{error.decode('utf-8', 'replace')[:2000]} (written to {failure})"
            )
        if waited >= timeout_seconds:
            raise DeployError(
                f"no answer from {endpoint_name} after {int(waited)} s; the request is still "
                f"queued or running: its answer will appear at {output}"
            )
        sleep(poll_seconds)
        waited += poll_seconds


def generated_text(body: bytes) -> str | None:
    """The text of a toolkit answer ([{"generated_text": ...}] or one such object),
    or None when the body is in another shape."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data:
        return None
    texts = [item.get("generated_text") if isinstance(item, dict) else None for item in data]
    if not all(isinstance(text, str) for text in texts):
        return None
    return "\n".join(texts)


def stream_text(parts: Iterable[bytes]) -> Iterator[str]:
    """Text pieces from a stream of PayloadParts. JSON lines of tokens ({"token": {"text"}},
    as llmship's server and TGI send them, TGI's behind "data:") yield each token's text;
    a part may hold several lines or half of one. Any other stream is passed on as text."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    buffer, json_lines = b"", None
    for part in parts:
        if json_lines is None:
            json_lines = part.lstrip()[:1] == b"{" or part.lstrip().startswith(b"data:")
        if not json_lines:
            if text := decoder.decode(part):
                yield text
            continue
        buffer += part
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if piece := _token_text(line):
                yield piece
    if json_lines and (piece := _token_text(buffer)):
        yield piece
    elif json_lines is False and (rest := decoder.decode(b"", final=True)):
        yield rest


def split_s3(uri: str) -> tuple[str, str]:
    """(bucket, key) of an s3:// URI."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc or not parsed.path.lstrip("/"):
        raise DeployError(f"{uri!r} is not an S3 object URI (s3://bucket/key)")
    return parsed.netloc, parsed.path.lstrip("/")


def _token_text(line: bytes) -> str:
    """A token's text from one JSON line; "" for lines that carry none (the final
    generated_text line repeats what the tokens already said)."""
    line = line.strip()
    if line.startswith(b"data:"):
        line = line[5:].strip()
    if not line:
        return ""
    try:
        event = json.loads(line)
    except ValueError:
        return line.decode("utf-8", "replace")
    token = event.get("token") if isinstance(event, dict) else None
    if isinstance(token, dict) and not token.get("special") and isinstance(token.get("text"), str):
        return token["text"]
    return ""


def _read_if_there(s3, uri: str) -> bytes | None:
    """The object's bytes; None while it is not written yet (a missing bucket is an error)."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = split_s3(uri)
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if is_not_found(exc, "s3") and error_code(exc) != "NoSuchBucket":
            return None
        raise translate(exc, "s3", "GetObject", uri) from None
    except BotoCoreError as exc:
        raise translate(exc, "s3", "GetObject", uri) from None
