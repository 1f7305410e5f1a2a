"""Calling a deployed model through sagemaker-runtime: whole answers, streams, async jobs.

The same calls work against SageMaker and against `llmship serve` (give its URL as the
runtime client's endpoint_url), which speaks the Runtime API paths. Payloads are the
caller's (`llmship.protocol.toolkit` builds and reads the Hugging Face toolkit's).

Async invocations read their input from S3 and write the answer (or the error) to the
endpoint's S3 output (or failure) path; `invoke_async` uploads, asks, and polls there.

Which session and clients a caller uses (the config's profile, region and assumed role,
or a local server's placeholder region and no signature) is decided here too, so every
command that invokes a model gets them the same way.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from llmship.aws.errors import aws_call, error_code, is_not_found, translate
from llmship.errors import AwsError, DeployError

if TYPE_CHECKING:
    import boto3

    from llmship.config.schema import AwsConfig

JSON = "application/json"
# The placeholder region for a client that only talks to a local endpoint URL.
LOCAL_REGION = "us-east-1"


@dataclass(frozen=True)
class InvokeResult:
    body: bytes
    content_type: str


@dataclass(frozen=True)
class AsyncResult:
    output_location: str
    failure_location: str | None
    body: bytes | None


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


def split_s3(uri: str) -> tuple[str, str]:
    """(bucket, key) of an s3:// URI."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc or not parsed.path.lstrip("/"):
        raise DeployError(f"{uri!r} is not an S3 object URI (s3://bucket/key)")
    return parsed.netloc, parsed.path.lstrip("/")


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


def caller_session(
    aws: AwsConfig | None, *, local: bool = False, region: str | None = None
) -> boto3.Session:
    """The config's session (profile, assumed role) in its region or `region`; without a
    config, the usual chain. `local`: the calls go to a server on this machine, which
    needs neither a region nor the configured account."""
    from llmship.aws.session import make_session

    try:
        return make_session(aws, region=region)
    except AwsError:
        if local:
            return make_session(region=LOCAL_REGION)
        raise


def sagemaker_runtime(aws: AwsConfig | None, endpoint_url: str | None = None) -> Any:
    """A sagemaker-runtime client from llmship's one factory (sent once, never retried
    after the request reached the model) on the caller's session; unsigned when it only
    talks to a local `endpoint_url` and no credentials are around."""
    from botocore import UNSIGNED
    from botocore.config import Config

    from llmship.aws.session import runtime_client

    session = caller_session(aws, local=endpoint_url is not None)
    options: dict[str, Any] = {"endpoint_url": endpoint_url} if endpoint_url else {}
    if endpoint_url and session.get_credentials() is None:
        options["config"] = Config(signature_version=UNSIGNED)
    return runtime_client(session, "sagemaker-runtime", **options)


def async_input(
    aws: AwsConfig, project: str, endpoint_name: str, content_type: str
) -> tuple[Any, str]:
    """Where an async request's body goes: an S3 client on the caller's session and a
    fresh key under the deployment's prefix in aws.bucket (which must be set)."""
    from llmship.aws.session import client
    from llmship.sagemaker.names import artifact_prefix

    suffix = ".json" if "json" in content_type else ".bin"
    key = f"{artifact_prefix(project, endpoint_name)}async-input/{uuid.uuid4().hex}{suffix}"
    return client(caller_session(aws), "s3"), f"s3://{aws.bucket}/{key}"
