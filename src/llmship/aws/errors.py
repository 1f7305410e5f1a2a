"""One vocabulary for what AWS answers when a call fails.

Every llmship AWS call goes through this module to read an error: its code, whether it
means "the resource does not exist" (which differs per service and is the only answer a
delete may treat as done), and the AwsError a user sees, naming the service, the call,
the resource, AWS's code and message, and what to do (for a refused permission: the IAM
action llmship's policies grant for that call, and the statement that grants it).

"Not found", as each service's API model and documentation say it:
    sagemaker     ResourceNotFound (DescribeTrainingJob, StopTrainingJob) or, for most calls,
                  ValidationException "Could not find ..." / "Requested resource not found."
                  / "... does not exist" (the code alone also means a bad request)
    bedrock       ResourceNotFoundException only (ValidationException is a refusal: a
                  provisioned throughput still Creating, a model in use)
    s3            404 (HEAD requests have no body), NoSuchKey, NoSuchBucket, NoSuchUpload
    iam           NoSuchEntity
    ec2           <What>.NotFound, e.g. InvalidVpcEndpointId.NotFound
    sqs           AWS.SimpleQueueService.NonExistentQueue (the query-compatible code the
                  JSON protocol sends in x-amzn-query-error) or QueueDoesNotExist
    apigateway    NotFoundException
    application-autoscaling
                  ObjectNotFoundException (deregister, delete), ResourceNotFoundException (tags)
    cloudwatch    ResourceNotFound (DeleteAlarms), ResourceNotFoundException (tags)
    service-quotas NoSuchResourceException
    sns           NotFound (topics, subscriptions), ResourceNotFound (data protection)
    kms           NotFoundException
    secretsmanager, scheduler, logs, lambda, dynamodb, bedrock-runtime
                  ResourceNotFoundException
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from llmship.errors import AwsError

__all__ = [
    "HINTS",
    "Outcome",
    "aws_call",
    "error_code",
    "error_message",
    "gone_or_raise",
    "ignore_not_found",
    "is_access_denied",
    "is_not_found",
    "translate",
]

_RESOURCE_NOT_FOUND = frozenset({"ResourceNotFoundException"})
NOT_FOUND_CODES: dict[str, frozenset[str]] = {
    "sagemaker": frozenset({"ResourceNotFound"}),
    "bedrock": _RESOURCE_NOT_FOUND,
    "bedrock-runtime": _RESOURCE_NOT_FOUND,
    # "NotFound": what S3-compatible servers (and moto) send for a HEAD without a body.
    "s3": frozenset({"404", "NotFound", "NoSuchKey", "NoSuchBucket", "NoSuchUpload"}),
    "iam": frozenset({"NoSuchEntity"}),
    "secretsmanager": _RESOURCE_NOT_FOUND,
    "scheduler": _RESOURCE_NOT_FOUND,
    "logs": _RESOURCE_NOT_FOUND,
    "lambda": _RESOURCE_NOT_FOUND,
    "dynamodb": _RESOURCE_NOT_FOUND,
    "sqs": frozenset(
        {
            "AWS.SimpleQueueService.NonExistentQueue",
            "QueueDoesNotExist",
            "ResourceNotFoundException",
        }
    ),
    "sns": frozenset({"NotFound", "ResourceNotFound"}),
    "kms": frozenset({"NotFoundException"}),
    "apigateway": frozenset({"NotFoundException"}),
    "application-autoscaling": frozenset({"ObjectNotFoundException", "ResourceNotFoundException"}),
    "cloudwatch": frozenset({"ResourceNotFound", "ResourceNotFoundException"}),
    "service-quotas": frozenset({"NoSuchResourceException"}),
}
# SageMaker answers most calls on a missing resource with a ValidationException; only its
# message tells "missing" apart from "invalid" (aws/aws-sdk#165).
SAGEMAKER_MISSING = ("Could not find", "Requested resource not found", "does not exist")
# A refused permission: IAM's codes, EC2's, SNS's, and S3's for a HEAD (no body: the status).
ACCESS_DENIED = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError", "403"}
)

HINTS = {
    "AccessDenied": "the caller lacks this permission: grant the action named above in IAM",
    "AccessDeniedException": "the caller lacks this permission: grant the action named above "
    "in IAM",
    "UnauthorizedOperation": "the caller lacks this permission: grant the action named above "
    "in IAM",
    "UnrecognizedClientException": "the credentials are not valid; check AWS_PROFILE or the keys",
    "InvalidClientTokenId": "the credentials are not valid; check AWS_PROFILE or the keys",
    "ExpiredToken": "the session expired; log in again (aws sso login) and retry",
    "ExpiredTokenException": "the session expired; log in again (aws sso login) and retry",
    "NoSuchBucket": "create the bucket, or set aws.bucket to one that exists",
    "ResourceLimitExceeded": "an account quota is exhausted; request an increase in Service "
    "Quotas for this resource type",
}


def _error(exc: BaseException) -> dict:
    response = getattr(exc, "response", None)
    return response.get("Error", {}) if isinstance(response, dict) else {}


def error_code(exc: BaseException) -> str:
    """AWS's error code of a ClientError ("" for anything else)."""
    return str(_error(exc).get("Code", ""))


def error_message(exc: BaseException) -> str:
    """AWS's error message of a ClientError ("" for anything else)."""
    return str(_error(exc).get("Message", ""))


def is_not_found(exc: BaseException, service: str) -> bool:
    """Whether `exc` is `service` saying the resource does not exist (and nothing else)."""
    code = error_code(exc)
    if not code:
        return False
    if service == "ec2":
        return code.endswith(".NotFound")
    if service == "sagemaker" and code == "ValidationException":
        message = error_message(exc)
        return any(words in message for words in SAGEMAKER_MISSING)
    return code in NOT_FOUND_CODES.get(service, _RESOURCE_NOT_FOUND)


def is_access_denied(exc: BaseException) -> bool:
    """Whether `exc` is AWS refusing the caller a permission (IAM, or EC2's wording)."""
    return error_code(exc) in ACCESS_DENIED


@contextmanager
def aws_call(service: str, operation: str, resource: str = "") -> Iterator[None]:
    """Run one AWS call; a ClientError or BotoCoreError leaves as our AwsError."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, service, operation, resource) from None


@dataclass
class Outcome:
    """What an ignore_not_found block found: `missing` once AWS said the resource is gone."""

    missing: bool = False


@contextmanager
def ignore_not_found(
    service: str,
    operation: str,
    resource: str = "",
    *,
    confirm: Callable[[], object] | None = None,
) -> Iterator[Outcome]:
    """For deletes: "not found" counts as done (outcome.missing), anything else is an
    AwsError. Only the service's own "not found" answer qualifies: a refusal such as
    "still creating" or "in use" means the resource may still exist and bill.

    `confirm` is the resource's Describe/Get call, asked when the delete is refused
    (AccessDenied): see gone_or_raise."""
    from botocore.exceptions import BotoCoreError, ClientError

    outcome = Outcome()
    try:
        yield outcome
    except ClientError as exc:
        if not is_not_found(exc, service):
            gone_or_raise(exc, service, operation, resource, confirm)
        outcome.missing = True
    except BotoCoreError as exc:
        raise translate(exc, service, operation, resource) from None


def gone_or_raise(
    exc: BaseException,
    service: str,
    operation: str,
    resource: str,
    describe: Callable[[], object] | None,
) -> None:
    """Return when a delete's AccessDenied `exc` hides a resource already gone; else raise
    it as an AwsError. A policy that allows the delete only on aws:ResourceTag/... cannot
    match a resource that no longer exists (IAM reads no tags), so AWS refuses the delete
    instead of answering "not found". `describe` (the resource's Describe/Get) decides:
    only its "not found" means gone; any other answer keeps the refusal."""
    from botocore.exceptions import BotoCoreError, ClientError

    if describe is not None and is_access_denied(exc):
        try:
            describe()
        except ClientError as answer:
            if is_not_found(answer, service):
                return
        except BotoCoreError:
            pass
    raise translate(exc, service, operation, resource) from None


def translate(exc: BaseException, service: str, operation: str, resource: str = "") -> AwsError:
    """An AwsError naming the call, the resource, AWS's code and message, and what to do."""
    from botocore.exceptions import ClientError, NoCredentialsError

    operation = _operation_name(operation)
    where = f" on {resource}" if resource else ""
    if isinstance(exc, NoCredentialsError):
        return AwsError(
            f"{service} {operation}: no AWS credentials found; set AWS_PROFILE, run "
            "`aws sso login`, or export the keys"
        )
    if isinstance(exc, ClientError):
        code, message = error_code(exc) or "Unknown", error_message(exc) or str(exc)
        hint = _permission_hint(service, operation) if code in ACCESS_DENIED else ""
        hint = hint or HINTS.get(code, "")
        return AwsError(
            f"{service} {operation}{where} failed: {code}: {message}"
            + (f"; {hint}" if hint else "")
        )
    return AwsError(f"{service} {operation}{where} failed: {exc}")


def _operation_name(operation: str) -> str:
    """The API's name for a call given as a client method (create_endpoint -> CreateEndpoint)."""
    if operation[:1].islower():
        return "".join(part[:1].upper() + part[1:] for part in operation.split("_"))
    return operation


def _permission_hint(service: str, operation: str) -> str:
    """The IAM action(s) llmship's policies grant for this call and where, if mapped
    (the gateway's Lambda bundle carries no permission map: then nothing)."""
    try:
        from llmship.aws.permissions import actions_for, granting_statement

        granted = [
            f"{action} (granted by {statement})" if statement else action
            for action in actions_for(service, operation)
            for statement in [granting_statement(action)]
        ]
    except (ImportError, KeyError):  # not mapped: the generic hint says enough
        return ""
    if not granted:
        return ""
    return (
        f"this call needs IAM {', '.join(granted)}: attach the policies `llmship aws "
        "bootstrap --print-policy all` prints (or have an administrator attach them)"
    )
