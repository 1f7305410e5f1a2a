"""Service Quotas before a create: new accounts often have no GPU endpoint quota at all,
and SageMaker only says so after the deploy started. The plan checks first and names
the quota to request.

SageMaker's instance quotas are named "<instance type> for endpoint usage" and
"<instance type> for training job usage". The account's applied value comes from
ListServiceQuotas; a quota never changed in this account may be missing there, so the
AWS default (ListAWSDefaultServiceQuotas) stands in. `ok` is False only when a quota is
known to be lower than needed: where the quota cannot be read, the check says so and
lets the plan go on (SageMaker refuses at create time if the limit is really short).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from llmship.aws.errors import error_code, error_message, translate
from llmship.aws.session import client

SERVICE = "sagemaker"
USAGE_NAMES = {"endpoint": "endpoint usage", "training": "training job usage"}
USAGE_WHAT = {"endpoint": "endpoint", "training": "training job"}
UNREADABLE = ("AccessDenied", "AccessDeniedException", "NoSuchResourceException")
# The check is advice for the plan, so a failing Service Quotas API must not hold the plan
# up for a minute of retries: two tries, then "could not check".
QUICK_RETRIES = {"max_attempts": 2, "mode": "standard"}


@dataclass(frozen=True)
class QuotaCheck:
    ok: bool
    quota_name: str
    quota_code: str | None
    limit: float | None
    needed: int
    message: str

    def describe(self) -> str:
        return self.message


def quota_name(instance_type: str, usage: Literal["endpoint", "training"] = "endpoint") -> str:
    """The Service Quotas name of an instance type's quota for that usage."""
    return f"{instance_type} for {USAGE_NAMES[usage]}"


def check_instance_quota(
    session,
    instance_type: str,
    count: int,
    usage: Literal["endpoint", "training"] = "endpoint",
) -> QuotaCheck:
    """Whether the account's quota for `instance_type` allows `count` instances."""
    from botocore.config import Config
    from botocore.exceptions import ClientError

    name = quota_name(instance_type, usage)
    quotas = client(session, "service-quotas", config=Config(retries=QUICK_RETRIES))
    region = session.region_name
    try:
        found = _find(quotas, "list_service_quotas", name)
        if found is None:
            found = _find(quotas, "list_aws_default_service_quotas", name)
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if error_code(exc) not in UNREADABLE and status < 500:
            raise translate(exc, "service-quotas", exc.operation_name, SERVICE) from None
        return QuotaCheck(True, name, None, None, count, _unchecked(name, exc, status, usage))
    if found is None:
        return QuotaCheck(
            True,
            name,
            None,
            None,
            count,
            f"no Service Quotas entry named {name!r} in {region}; SageMaker checks the limit "
            f"when it creates the {USAGE_WHAT[usage]}",
        )
    code, limit = found["QuotaCode"], float(found["Value"])
    if limit >= count:
        return QuotaCheck(
            True, name, code, limit, count, f"quota {name!r} ({code}) is {limit:g} in {region}"
        )
    zero = " (new accounts start at 0 for most GPU types)" if limit == 0 else ""
    return QuotaCheck(
        False,
        name,
        code,
        limit,
        count,
        f"the account's quota {name!r} ({code}) is {limit:g} in {region}{zero}, and this "
        f"needs {count}; instances of other endpoints count too. Request an increase (it "
        f"can take a day): aws service-quotas request-service-quota-increase --service-code "
        f"{SERVICE} --quota-code {code} --desired-value {count} --region {region}",
    )


def _unchecked(name: str, exc, status: int, usage: str) -> str:
    """One line for the plan when the quota could not be read: what Service Quotas answered
    (its code; its message only when that is a sentence, never the HTML page a failing
    service or a proxy in front of it sends) and what to do."""
    code = error_code(exc) or str(status)
    answer = code if code == str(status) else f"{code} (HTTP {status})"
    message = error_message(exc).strip()
    if message and not message.startswith("<") and "\n" not in message and len(message) <= 200:
        answer += f": {message}"
    later = f"SageMaker checks the limit when it creates the {USAGE_WHAT[usage]}"
    if code in ("AccessDenied", "AccessDeniedException"):
        advice = f"grant {_actions(exc.operation_name)} for the plan to check it; else {later}"
    elif code == "NoSuchResourceException":
        advice = f"Service Quotas lists no {SERVICE} quotas here; {later}"
    else:
        advice = f"Service Quotas is failing (a later plan checks again); {later}"
    return f"could not check the quota {name!r}: Service Quotas answered {answer}; {advice}"


def _actions(operation: str) -> str:
    """The IAM action(s) a Service Quotas call needs, from llmship's permission map."""
    from llmship.aws.permissions import actions_for

    try:
        return " and ".join(actions_for("service-quotas", operation))
    except KeyError:  # not in the map: the call's own name says which action
        return f"servicequotas:{operation}"


def _find(quotas, operation: str, name: str) -> dict | None:
    """The quota named `name` among the service's quotas (every page), or None."""
    for page in quotas.get_paginator(operation).paginate(ServiceCode=SERVICE):
        for quota in page.get("Quotas", []):
            if quota.get("QuotaName") == name:
                return quota
    return None
