"""boto3 sessions and clients the way every llmship AWS call makes them.

Credentials come from the usual chain (environment, profile, SSO, instance role), the
region from config or that chain, optionally through an assumed role whose credentials
are renewed before they expire. Endpoint overrides need nothing here: botocore reads
AWS_ENDPOINT_URL and the per-service AWS_ENDPOINT_URL_<SERVICE> variables itself (how
the tests point at a local moto server).

Control-plane calls are retried with botocore's adaptive mode. Runtime calls (a model
generating) are not: a request that reached the model may still be running, and
billing, after the client gave up on it, so only a request AWS refused before running
it (no connection, throttled, model not ready) is sent again.

When LLMSHIP_AWS_CALL_LOG names a file, every client made here appends one JSON line
per API call to it (service, operation, parameters without bodies or secrets, region,
and the llmship command from LLMSHIP_AWS_CALL_COMMAND): the record a test judges
against the IAM policies llmship prints. Nothing here prints or logs a credential.

Torch-free and config-free: the gateway's Lambda zip imports this module with boto3
alone beside it.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from llmship import __version__
from llmship.aws.errors import translate
from llmship.errors import AwsError

if TYPE_CHECKING:
    import boto3

    from llmship.config.schema import AwsConfig

RETRIES = {"mode": "adaptive", "max_attempts": 10}
# Runtime services -> read timeout (s): the target's documented limit plus a margin.
RUNTIME_READ_TIMEOUT_S = {
    # InvokeEndpoint: containers must answer within 60 s; AWS advises a 70 s socket timeout.
    "sagemaker-runtime": 70.0,
    # Bedrock inference calls may run up to 60 minutes (Claude 3.7 Sonnet and later);
    # AWS advises a read timeout of at least that.
    "bedrock-runtime": 3660.0,
}
RUNTIME_ATTEMPTS = 4
# Codes meaning the request was refused before the model ran: ModelNotReadyException
# (429 in both runtime APIs) and ThrottlingException (Bedrock Runtime 429; SageMaker's
# common errors, 400).
REFUSED_CODES = frozenset({"ThrottlingException", "ModelNotReadyException"})
CONNECT_TIMEOUT_S = 10.0
CALL_LOG_ENV = "LLMSHIP_AWS_CALL_LOG"
CALL_COMMAND_ENV = "LLMSHIP_AWS_CALL_COMMAND"
# The context key under which a call's printable parameters wait for the recorders.
PARAMS_CONTEXT = "llmship_params"
KEEP_PARAMS_ID = "llmship-keep-params"
HIDDEN = "<secret>"
# Parameters whose values are data, not names: every value under them is hidden, their
# keys kept. Container and function environments (a token), DynamoDB items and keys (the
# gateway's usage keys), API Gateway's API key `value`.
DATA_PARAMS = frozenset(
    {
        "Environment",
        "Variables",
        "Item",
        "ExpressionAttributeValues",
        "AttributeUpdates",
        "ExclusiveStartKey",
        "value",
    }
)
SECRET_WORDS = ("secret", "password", "token")
# Names that contain a secret word but only name the secret (permissions.needs reads SecretId).
NAME_SUFFIXES = ("Id", "Arn", "Name", "Ids", "Arns", "Names")
_log_lock = threading.Lock()


def _boto3():
    try:
        import boto3
    except ImportError:
        raise AwsError("AWS support needs boto3: pip install 'llmship[aws]'") from None
    return boto3


def make_session(aws: AwsConfig | None = None, *, region: str | None = None) -> boto3.Session:
    """A session for the configured profile and region (`region` overrides it), through
    the assumed role if set; without a config, the usual chain (as in the gateway's Lambda)."""
    boto3 = _boto3()
    from botocore.exceptions import BotoCoreError

    profile = aws.profile if aws else None
    try:
        session = boto3.Session(
            profile_name=profile, region_name=region or (aws.region if aws else None)
        )
    except BotoCoreError as exc:
        raise AwsError(f"cannot start an AWS session (aws.profile={profile!r}): {exc}") from None
    if session.region_name is None:
        raise AwsError("no AWS region: set aws.region in llmship.yaml, or AWS_REGION")
    if aws is None or not aws.assume_role_arn:
        return session
    return _assumed_role(session, aws.assume_role_arn, aws.session_name)


def _now() -> datetime:
    return datetime.now(UTC)


def _assumed_role(source: boto3.Session, role_arn: str, session_name: str) -> boto3.Session:
    """A session on `role_arn`, whose credentials are fetched again with AssumeRole before
    they expire (an hour by default): training polls and endpoint waits outlast them."""
    import botocore.session
    from botocore.credentials import CredentialProvider, RefreshableCredentials
    from botocore.exceptions import BotoCoreError, ClientError

    sts = client(source, "sts")

    def fetch() -> dict[str, Any]:
        try:
            answer = sts.assume_role(RoleArn=role_arn, RoleSessionName=session_name)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "sts", "AssumeRole", role_arn) from None
        credentials = answer["Credentials"]
        return {
            "access_key": credentials["AccessKeyId"],
            "secret_key": credentials["SecretAccessKey"],
            "token": credentials["SessionToken"],
            "expiry_time": credentials["Expiration"].isoformat(),
        }

    first = fetch()
    renewing = RefreshableCredentials(
        first["access_key"],
        first["secret_key"],
        first["token"],
        datetime.fromisoformat(first["expiry_time"]),
        refresh_using=fetch,
        method="assume-role",
        time_fetcher=_now,
    )

    class AssumedRole(CredentialProvider):
        METHOD = "llmship-assume-role"

        def load(self) -> RefreshableCredentials:
            return renewing

    core = botocore.session.Session()
    core.get_component("credential_provider").insert_before("env", AssumedRole())
    return _boto3().Session(botocore_session=core, region_name=source.region_name)


def client_config():
    """Adaptive retries and llmship in the user agent (visible in CloudTrail)."""
    from botocore.config import Config

    return Config(retries=RETRIES, user_agent_extra=f"llmship/{__version__}")


def client(session: boto3.Session, service: str, **kwargs: Any) -> Any:
    """A client for `service` with llmship's retry and user-agent settings (a runtime
    service gets runtime_client's); `config` in kwargs is merged over them."""
    if service in RUNTIME_READ_TIMEOUT_S:
        return runtime_client(session, service, **kwargs)
    config = client_config()
    if "config" in kwargs:
        config = config.merge(kwargs.pop("config"))
    return _recorded(session.client(service, config=config, **kwargs))


def runtime_client(
    session: boto3.Session, service: str, read_timeout_s: float | None = None, **kwargs: Any
) -> Any:
    """A sagemaker-runtime or bedrock-runtime client that sends a request once: botocore
    retries nothing (a read timeout would run, and bill, the generation again); a request
    refused before it ran is tried up to RUNTIME_ATTEMPTS times. The read timeout is the
    service's documented limit plus a margin unless given."""
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        read_timeout=read_timeout_s or RUNTIME_READ_TIMEOUT_S[service],
        connect_timeout=CONNECT_TIMEOUT_S,
        tcp_keepalive=True,  # long generations outlast NAT idle timeouts without it
        user_agent_extra=f"llmship/{__version__}",
    )
    if "config" in kwargs:
        config = config.merge(kwargs.pop("config"))
    made = session.client(service, config=config, **kwargs)
    made.meta.events.register(
        f"needs-retry.{made.meta.service_model.service_id.hyphenize()}", _retry_if_refused
    )
    return _recorded(made)


def _retry_if_refused(
    attempts: int, response: Any = None, caught_exception: Exception | None = None, **_: Any
) -> float | None:
    """botocore's needs-retry hook for runtime clients: seconds to wait before sending the
    request again, or None. Only a connection that never opened (the body was not sent)
    or a throttled / model-not-ready answer is retried, never a read timeout."""
    from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError

    if attempts >= RUNTIME_ATTEMPTS:
        return None
    if caught_exception is not None:
        refused = isinstance(caught_exception, EndpointConnectionError | ConnectTimeoutError)
    else:
        parsed = response[1] if response else {}
        refused = parsed.get("Error", {}).get("Code") in REFUSED_CODES
    return random.uniform(0, min(8.0, 0.5 * 2**attempts)) if refused else None


def _recorded(made: Any) -> Any:
    """Hook the call recorder (see the module docstring) into a new client."""
    made.meta.events.register(
        "before-parameter-build", _keep_params_if_logged, unique_id=KEEP_PARAMS_ID
    )
    made.meta.events.register("before-call", _record_call)
    return made


def _keep_params_if_logged(params: dict, context: dict, **kwargs: Any) -> None:
    """keep_params only while the call log is on: redacting every request's parameters
    (upload parts, invokes) is work nothing reads otherwise. A request log registers
    keep_params itself on the session, under the same id, which a client then keeps."""
    if os.environ.get(CALL_LOG_ENV):
        keep_params(params, context, **kwargs)


def keep_params(params: dict, context: dict, **_: Any) -> None:
    """botocore's before-parameter-build hook: the call's printable parameters, kept in its
    context for the call log and the request log (aws/request_log.py) to read."""
    context[PARAMS_CONTEXT] = printable(params)


def printable(value: Any, key: str = "", sibling_keys: frozenset[str] = frozenset()) -> Any:
    """Parameters as JSON can hold them: bodies and streams as "<body>", and hidden: every
    value under DATA_PARAMS (keys kept), under a DynamoDB `Key` (a map of attribute values;
    S3's Key, a string, names an object) and under any key naming a secret, password or
    token. A tag's value ({"key": k, "value": v}) is not data: IAM conditions read it."""
    if _hides(value, key, sibling_keys):
        return _hidden(value)
    if isinstance(value, dict):
        keys = frozenset(value)
        return {k: printable(v, k, keys) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [printable(v) for v in value]
    if isinstance(value, bytes | bytearray | memoryview) or hasattr(value, "read"):
        return "<body>"
    return value


def _hides(value: Any, key: str, sibling_keys: frozenset[str]) -> bool:
    if key == "value" and "key" in sibling_keys:
        return False
    if key in DATA_PARAMS or (key == "Key" and isinstance(value, dict)):
        return True
    lowered = key.lower()
    return any(word in lowered for word in SECRET_WORDS) and not key.endswith(NAME_SUFFIXES)


def _hidden(value: Any) -> Any:
    """`value` with its structure and keys, every leaf replaced."""
    if isinstance(value, dict):
        return {k: _hidden(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_hidden(v) for v in value]
    return HIDDEN


def _origin() -> str:
    """The module that made the call (past botocore's and boto3's frames): llmship's
    own code, or, in tests, a test's setup, which the permission audit leaves out."""
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if not name.startswith(("botocore", "boto3", "llmship.aws.session", "concurrent")):
            return name
        frame = frame.f_back
    return ""


def _record_call(model: Any, context: dict, **_: Any) -> None:
    """Append one line for this call to LLMSHIP_AWS_CALL_LOG: one write on an O_APPEND
    descriptor, under a lock, so threads and subprocesses never interleave lines."""
    path = os.environ.get(CALL_LOG_ENV)
    if not path:
        return
    line = json.dumps(
        {
            "service": model.service_model.service_name,
            "operation": model.name,
            "params": context.get(PARAMS_CONTEXT, {}),
            "region": context.get("client_region"),
            "command": os.environ.get(CALL_COMMAND_ENV, ""),
            "origin": _origin(),
        },
        default=str,
    )
    with _log_lock:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
