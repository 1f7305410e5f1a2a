"""Names of a deployment and of everything it owns, inside SageMaker's rules.

SageMaker names are at most 63 characters of [a-zA-Z0-9](-*[a-zA-Z0-9])*. A deployment's
endpoint is named exactly the deployment; each model and endpoint config it creates is
`<deployment>-<YYYYmmddHHMMSS>` (UTC), so every deploy makes a new version beside the
live one (an update swaps configs, never edits them) and a name says when it was made.
Deployment names are therefore at most 48 characters: 48 + 1 + 14 = 63.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from llmship.errors import DeployError

MAX_NAME = 63
SUFFIX_FORMAT = "%Y%m%d%H%M%S"
SUFFIX_LENGTH = 14
MAX_DEPLOYMENT_NAME = MAX_NAME - 1 - SUFFIX_LENGTH
_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")


def check_name(name: str, what: str = "deploy.name", limit: int = MAX_NAME) -> str:
    """`name` if SageMaker accepts it, else a DeployError naming `what` and the rule."""
    if not name or len(name) > limit or not _NAME.match(name):
        raise DeployError(
            f"{what}: {name!r} is not a valid name; use at most {limit} letters, digits and "
            "hyphens, starting and ending with a letter or digit (e.g. my-model-1)"
        )
    return name


def default_name(project: str, run_id: str | None) -> str:
    """`<project>-<run>` (hyphens only, cut to fit), the name when deploy.name is unset."""
    tail = re.sub(r"[^a-zA-Z0-9]+", "-", run_id or "").strip("-")
    if not tail:
        return check_name(project[:MAX_DEPLOYMENT_NAME].rstrip("-"), "project.name")
    head = project[: max(1, MAX_DEPLOYMENT_NAME - len(tail) - 1)].rstrip("-")
    name = f"{head}-{tail}"[:MAX_DEPLOYMENT_NAME].rstrip("-")
    return check_name(name, "deploy.name (derived from project.name and the run id)")


def versioned(deployment: str, at: datetime) -> str:
    """`<deployment>-<UTC timestamp>`: the name of a model or endpoint config made at `at`."""
    return check_name(f"{deployment}-{at.astimezone(UTC).strftime(SUFFIX_FORMAT)}")


def new_version(deployment: str, taken: Callable[[str], bool], now: datetime | None = None) -> str:
    """A versioned name not yet `taken` (two deploys within a second step one second on)."""
    at = now or datetime.now(UTC)
    while taken(name := versioned(deployment, at)):
        at += timedelta(seconds=1)
    return name


def endpoint_log_group(endpoint: str) -> str:
    """Where SageMaker writes an endpoint's container logs."""
    return f"/aws/sagemaker/Endpoints/{endpoint}"


def artifact_prefix(project: str, deployment: str) -> str:
    """The S3 key prefix of a deployment's uploads (purged with `destroy --purge`)."""
    return f"llmship/{project}/{deployment}/"


def default_role_name(project: str) -> str:
    """`llmship-<project>-sagemaker` (project names are at most 32 chars: fits IAM's 64)."""
    return f"llmship-{project}-sagemaker"
