"""boto3 sessions and clients the way every llmship AWS call makes them.

Credentials come from the usual chain (environment, profile, SSO, instance role), the
region from config or that chain, optionally through an assumed role. Endpoint
overrides need nothing here: botocore reads AWS_ENDPOINT_URL and the per-service
AWS_ENDPOINT_URL_<SERVICE> variables itself (how the tests point at a local moto
server). Throttling and transient errors are retried with botocore's adaptive mode.
Nothing here prints or logs a credential.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmship import __version__
from llmship.errors import AwsError

if TYPE_CHECKING:
    import boto3

    from llmship.config.schema import AwsConfig

RETRIES = {"mode": "adaptive", "max_attempts": 10}

HINTS = {
    "AccessDenied": "the caller lacks this permission: grant the action named above in IAM",
    "AccessDeniedException": "the caller lacks this permission: grant the action named above "
    "in IAM",
    "UnrecognizedClientException": "the credentials are not valid; check AWS_PROFILE or the keys",
    "InvalidClientTokenId": "the credentials are not valid; check AWS_PROFILE or the keys",
    "ExpiredToken": "the session expired; log in again (aws sso login) and retry",
    "ExpiredTokenException": "the session expired; log in again (aws sso login) and retry",
    "NoSuchBucket": "create the bucket, or set aws.bucket to one that exists",
    "ResourceLimitExceeded": "an account quota is exhausted; request an increase in Service "
    "Quotas for this resource type",
}


def _boto3():
    try:
        import boto3
    except ImportError:
        raise AwsError("AWS support needs boto3: pip install 'llmship[aws]'") from None
    return boto3


def make_session(aws: AwsConfig) -> boto3.Session:
    """A session for the configured profile and region, through the assumed role if set."""
    boto3 = _boto3()
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        session = boto3.Session(profile_name=aws.profile, region_name=aws.region)
    except BotoCoreError as exc:
        raise AwsError(
            f"cannot start an AWS session (aws.profile={aws.profile!r}): {exc}"
        ) from None
    if session.region_name is None:
        raise AwsError("no AWS region: set aws.region in llmship.yaml, or AWS_REGION")
    if not aws.assume_role_arn:
        return session
    try:
        credentials = session.client("sts", config=client_config()).assume_role(
            RoleArn=aws.assume_role_arn, RoleSessionName=aws.session_name
        )["Credentials"]
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, "sts", "AssumeRole", aws.assume_role_arn) from None
    return boto3.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=session.region_name,
    )


def client_config():
    """Adaptive retries and llmship in the user agent (visible in CloudTrail)."""
    from botocore.config import Config

    return Config(retries=RETRIES, user_agent_extra=f"llmship/{__version__}")


def client(session: boto3.Session, service: str) -> Any:
    """A client for `service` with llmship's retry and user-agent settings."""
    return session.client(service, config=client_config())


def translate(exc: Exception, service: str, operation: str, resource: str = "") -> AwsError:
    """An AwsError naming the call, the resource, AWS's code and message, and what to do."""
    from botocore.exceptions import ClientError, NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return AwsError(
            f"{service} {operation}: no AWS credentials found; set AWS_PROFILE, run "
            "`aws sso login`, or export the keys"
        )
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "Unknown"), error.get("Message", str(exc))
        hint = HINTS.get(code, "")
        where = f" on {resource}" if resource else ""
        return AwsError(
            f"{service} {operation}{where} failed: {code}: {message}"
            + (f"; {hint}" if hint else "")
        )
    return AwsError(f"{service} {operation} failed: {exc}")
