"""A record of every AWS request a session's clients make: what AWS Support asks for.

AWS identifies each request by its request id (ResponseMetadata.RequestId; S3 adds the
extended id, HostId); with the region and the time, Support can find it in their logs.
`RequestLog.attach(session)` hooks botocore's events on a boto3 session, so every client
made from it afterwards (clients copy the session's handlers when created) reports
each call here: service, operation, the names it acted on, HTTP status, request ids and
AWS's error code and message. The parameters come from the call recorder's capture in
aws/session.py (one place turns parameters into a printable, redacted dict); of them only
the resource names listed in NAME_PARAMS are kept, and nothing about credentials is read.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from llmship.aws.session import KEEP_PARAMS_ID, PARAMS_CONTEXT, keep_params

# The parameters that name what a call acted on; nothing else of a request is kept.
NAME_PARAMS = (
    "EndpointName",
    "EndpointConfigName",
    "ModelName",
    "TrainingJobName",
    "Bucket",
    "Key",
    "Prefix",
    "LogGroupName",
    "RoleName",
    "PolicySourceArn",
    "Name",
    "ResourceId",
)
# Where the id is when the answer had no body to parse it from (an S3 HEAD's 404).
REQUEST_ID = ("x-amzn-requestid", "x-amz-request-id", "x-amzn-request-id")


@dataclass
class RequestRecord:
    """One AWS request as its answer described it."""

    at: float  # epoch seconds
    service: str
    operation: str
    status: int | None  # HTTP status; None when no answer came (connection failure)
    request_id: str = ""
    host_id: str = ""  # S3's extended request id (x-amz-id-2)
    error_code: str = ""
    error_message: str = ""
    not_found: bool = False  # the service's own "no such resource" (normal in plans, deletes)
    names: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return bool(self.error_code) or self.status is None or self.status >= 300

    @property
    def unexpected(self) -> bool:
        """Failed for a reason other than "not found" (which plans and deletes expect)."""
        return self.failed and not self.not_found

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RequestLog:
    """Every request made by the clients of the sessions attached to it, in order."""

    def __init__(self, clock=time.time):
        self.records: list[RequestRecord] = []
        self._clock = clock

    def attach(self, session) -> None:
        """Record the requests of every client created from `session` from now on."""
        events = session.events
        # The same hook (and id) as every factory-made client's: registered once per client.
        events.register("before-parameter-build", keep_params, unique_id=KEEP_PARAMS_ID)
        events.register("after-call", self._after_call)
        events.register("after-call-error", self._after_call_error)

    @property
    def errors(self) -> list[RequestRecord]:
        """Failed requests, "not found" answers (expected by plans and deletes) aside."""
        return [record for record in self.records if record.unexpected]

    def as_list(self) -> list[dict[str, Any]]:
        return [record.as_dict() for record in self.records]

    def _after_call(self, http_response=None, parsed=None, model=None, context=None, **_):
        parsed = parsed if isinstance(parsed, dict) else {}
        meta = parsed.get("ResponseMetadata", {})
        error = parsed.get("Error", {})
        service, operation = _service(model), getattr(model, "name", "")
        self.records.append(
            RequestRecord(
                at=self._clock(),
                service=service,
                operation=operation,
                status=getattr(http_response, "status_code", None),
                request_id=str(meta.get("RequestId") or _header(http_response, *REQUEST_ID)),
                host_id=str(meta.get("HostId") or _header(http_response, "x-amz-id-2")),
                error_code=str(error.get("Code", "")),
                error_message=str(error.get("Message", "")),
                not_found=bool(error) and _is_not_found(parsed, service, operation),
                names=_names(context),
            )
        )

    def _after_call_error(self, exception=None, context=None, event_name="", **_):
        # after-call-error.<service-id>.<Operation>: no answer, so no request id.
        parts = event_name.split(".")
        self.records.append(
            RequestRecord(
                at=self._clock(),
                service=parts[1] if len(parts) > 2 else "",
                operation=parts[-1] if len(parts) > 2 else "",
                status=None,
                error_code=type(exception).__name__,
                error_message=str(exception),
                names=_names(context),
            )
        )


def _names(context: dict | None) -> dict[str, str]:
    """The names a call acted on, from its captured (redacted) parameters."""
    params = (context or {}).get(PARAMS_CONTEXT) or {}
    return {key: params[key] for key in NAME_PARAMS if isinstance(params.get(key), str)}


def _is_not_found(parsed: dict, service: str, operation: str) -> bool:
    from botocore.exceptions import ClientError

    from llmship.aws.errors import is_not_found

    return is_not_found(ClientError(parsed, operation), service)


def _header(http_response, *names: str) -> str:
    headers = getattr(http_response, "headers", None) or {}
    return next((str(headers[name]) for name in names if name in headers), "")


def _service(model) -> str:
    service_model = getattr(model, "service_model", None)
    return getattr(service_model, "service_name", "") if service_model is not None else ""
