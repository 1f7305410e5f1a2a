"""`llmship aws check`: will IAM let this command run? Asked before anything is created.

IAM's policy simulator (SimulatePrincipalPolicy) evaluates the caller's identity
policies, permission boundary and the organization's SCPs for exactly the actions and
resource ARNs the command needs (`llmship.aws.permissions.needs`), with a context value
for every condition key those needs name (the project tag on a create, the service a
role is passed to). The simulation needs an IAM user or role to simulate:

- an IAM user is simulated as itself;
- an assumed-role session (arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION, including IAM
  Identity Center's AWSReservedSSO_* roles, whose path is /aws-reserved/sso.amazonaws.com/)
  is simulated as its role, whose full ARN (path included) comes from iam GetRole;
- the root user, federated users (GetFederationToken) and anything else cannot be: the
  check says so, prints the policy to attach, and the command goes on.

What the simulator cannot see is said, never guessed: session policies passed when the
role was assumed, resource policies (another account's bucket, a KMS key policy), and
condition keys it had no value for (MissingContextValues: reported as unchecked, not
as denied). A refused simulation (the caller may not call it) is a note, not a failure.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from llmship.aws.errors import error_code, error_message
from llmship.aws.permissions import NO_PERMISSION, SOURCE_IDENTITY, Need, granting_statement

# added: missing from the role now, and granted by llmship itself when the command runs.
Decision = Literal["allowed", "denied", "unchecked", "added"]
GrantOf = Callable[[Need], "str | None"] | None
SSO_PATH = "/aws-reserved/sso.amazonaws.com/"
CAVEATS = (
    "resource policies (another account's bucket, a KMS key's policy, an SNS topic's) are "
    "not part of the simulation; the plan inspects those it can read"
)
SESSION_CAVEAT = (
    "a session policy passed when this role was assumed can narrow it further; the "
    "simulator cannot see one"
)


@dataclass(frozen=True)
class Principal:
    """Who the credentials are, and which IAM user or role stands for them (if any)."""

    arn: str  # as sts GetCallerIdentity reports it
    account: str
    partition: str
    source_arn: str | None  # the user or role to simulate; None: cannot be simulated
    why_not: str = ""  # why it cannot be simulated
    caveats: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finding:
    """The simulator's verdict on one need."""

    need: Need
    decision: Decision
    detail: str = ""  # "explicitDeny", the missing context keys, ...
    grant: str | None = None  # the llmship policy statement that grants it

    def describe(self) -> str:
        where = f" on {self.need.resource}" if self.need.resource != "*" else ""
        text = f"{self.need.action}{where}"
        if self.detail:
            text += f" ({self.detail})"
        if self.decision == "denied":
            text += f": granted by {self.grant}" if self.grant else ": in no llmship policy"
        elif self.decision == "added":
            text += f": llmship grants it when the command runs ({self.grant})"
        return text


@dataclass
class CheckReport:
    """What the check found for one principal (the caller, or a service role)."""

    who: str  # "you" or "execution role ..."
    principal: Principal
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    simulated: bool = False
    # {policy name: document}, printed when a permission is missing or unverifiable
    policy: dict | None = None

    @property
    def denied(self) -> list[Finding]:
        return [f for f in self.findings if f.decision == "denied"]

    @property
    def unchecked(self) -> list[Finding]:
        return [f for f in self.findings if f.decision == "unchecked"]

    @property
    def ok(self) -> bool:
        """Simulated, and nothing denied (unchecked conditions aside)."""
        return self.simulated and not self.denied

    def lines(self) -> list[str]:
        """A short section: the verdict, each missing or unchecked permission, the notes."""
        name = self.principal.source_arn or self.principal.arn
        if not self.simulated:
            head = f"{self.who} ({name}): not checked"
        elif self.denied:
            missing, total = len(self.denied), len(self.findings)
            head = f"{self.who} ({name}): {missing} of {total} permissions missing"
        else:
            allowed = sum(f.decision == "allowed" for f in self.findings)
            head = f"{self.who} ({name}): {allowed} of {len(self.findings)} permissions allowed"
        out = [head]
        out += [f"  missing   {f.describe()}" for f in self.denied]
        out += [f"  unchecked {f.describe()}" for f in self.unchecked]
        out += [f"  added     {f.describe()}" for f in self.findings if f.decision == "added"]
        out += [f"  note      {note}" for note in [*self.notes, *self.principal.caveats]]
        return out

    def policy_text(self) -> str:
        return json.dumps(self.policy, indent=2) if self.policy else ""


def caller(session) -> Principal:
    """The caller behind `session`'s credentials, mapped to what can be simulated."""
    from llmship.aws.errors import aws_call
    from llmship.aws.session import client

    with aws_call("sts", "GetCallerIdentity"):
        arn = client(session, "sts").get_caller_identity()["Arn"]
    return principal_of(arn, client(session, "iam"))


def principal_of(arn: str, iam) -> Principal:
    """Map an STS caller ARN to the IAM user or role whose policies apply to it."""
    parts = arn.split(":", 5)
    if len(parts) < 6:
        return Principal(arn, "", "aws", None, f"{arn} is not an IAM or STS ARN")
    partition, service, account, resource = parts[1], parts[2], parts[4], parts[5]
    if service == "iam" and resource == "root":
        return Principal(
            arn,
            account,
            partition,
            None,
            "the account's root user cannot be simulated (it may do anything its "
            "organization's SCPs allow); use an IAM user or role with llmship's policy",
        )
    if service == "iam" and resource.startswith(("user/", "role/")):
        return Principal(arn, account, partition, arn, caveats=(CAVEATS,))
    if service == "sts" and resource.startswith("federated-user/"):
        return Principal(
            arn,
            account,
            partition,
            None,
            "a federated user (GetFederationToken) holds the intersection of its IAM user's "
            "policies and a session policy, which the simulator cannot evaluate",
        )
    if service == "sts" and resource.startswith("assumed-role/"):
        role = resource.split("/")[1]
        source, note = _role_arn(iam, role, partition, account)
        caveats = (SESSION_CAVEAT, CAVEATS) + ((note,) if note else ())
        if source is None:
            return Principal(arn, account, partition, None, note)
        return Principal(arn, account, partition, source, caveats=caveats)
    return Principal(arn, account, partition, None, f"{arn} cannot be simulated")


def _role_arn(iam, role: str, partition: str, account: str) -> tuple[str | None, str]:
    """The role's ARN with its path (what SimulatePrincipalPolicy needs), from GetRole.
    A session ARN drops the path: IAM Identity Center's roles live under SSO_PATH."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return iam.get_role(RoleName=role)["Role"]["Arn"], ""
    except (ClientError, BotoCoreError) as exc:
        reason = f"{error_code(exc) or type(exc).__name__}: {error_message(exc) or exc}"
    if role.startswith("AWSReservedSSO_"):
        return None, (
            f"iam GetRole on {role} was refused ({reason}): an IAM Identity Center role's "
            f"ARN holds a path ({SSO_PATH}...) that only GetRole tells; grant iam:GetRole "
            "on your own role to check"
        )
    guessed = f"arn:{partition}:iam::{account}:role/{role}"
    return guessed, f"iam GetRole on {role} was refused ({reason}); simulated as {guessed}"


def simulate(
    iam, source_arn: str, needs: Iterable[Need], grant_of: GrantOf = None
) -> list[Finding]:
    """SimulatePrincipalPolicy for `needs`: one request per resource and context, every
    action on that resource in it; pages followed. `grant_of` names what grants a need
    (default: the llmship policy statement that allows it, any project's)."""
    groups: dict[tuple[str, tuple], list[Need]] = {}
    for need in dict.fromkeys(needs):
        if need.action in NO_PERMISSION or need.action in SOURCE_IDENTITY:
            continue  # never denied, or asked of the identity that assumes aws.assume_role_arn
        key = (need.resource, tuple(sorted(need.conditions.items())))
        groups.setdefault(key, []).append(need)
    findings = []
    for (resource, conditions), group in groups.items():
        by_action = {need.action: need for need in group}
        request = {
            "PolicySourceArn": source_arn,
            "ActionNames": list(by_action),
            "ResourceArns": [resource],
        }
        if conditions:
            request["ContextEntries"] = [_context_entry(k, v) for k, v in conditions]
        for result in _evaluations(iam, request):
            need = by_action.get(result["EvalActionName"])
            if need is not None:
                findings.append(_finding(need, result, grant_of or _statement))
    return findings


def _evaluations(iam, request: dict) -> list[dict]:
    results, marker = [], None
    while True:
        page = iam.simulate_principal_policy(**request, **({"Marker": marker} if marker else {}))
        results += page.get("EvaluationResults", [])
        marker = page.get("Marker") if page.get("IsTruncated") else None
        if not marker:
            return results


def _context_entry(key: str, value: str) -> dict:
    kind = "stringList" if isinstance(value, (list, tuple)) else "string"
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    return {"ContextKeyName": key, "ContextKeyValues": values, "ContextKeyType": kind}


def _statement(need: Need) -> str | None:
    return granting_statement(need)


def _finding(need: Need, result: dict, grant_of: Callable[[Need], str | None]) -> Finding:
    decision = result.get("EvalDecision", "implicitDeny")
    missing = [k for k in result.get("MissingContextValues", []) if k]
    if decision == "allowed":
        return Finding(need, "allowed")
    if decision == "implicitDeny" and missing:
        # Denied only for want of a value the simulator lacked: not known to be denied.
        detail = f"the simulator had no value for {', '.join(missing)}"
        return Finding(need, "unchecked", detail, grant_of(need))
    detail = "explicitly denied" if decision == "explicitDeny" else ""
    return Finding(need, "denied", detail, grant_of(need))


def check_principal(
    iam,
    principal: Principal,
    needs: Sequence[Need],
    *,
    who: str,
    policy: dict | None,
    grant_of: GrantOf = None,
) -> CheckReport:
    """Simulate `needs` for `principal`; a simulation that cannot run is a note."""
    from botocore.exceptions import BotoCoreError, ClientError
    from botocore.parsers import ResponseParserError

    report = CheckReport(who, principal, policy=policy)
    if principal.source_arn is None:
        report.notes.append(f"cannot be simulated: {principal.why_not}")
        return report
    try:
        report.findings = simulate(iam, principal.source_arn, needs, grant_of)
        report.simulated = True
    except (ClientError, BotoCoreError, ResponseParserError) as exc:
        code = error_code(exc) or type(exc).__name__
        message = (error_message(exc) or str(exc)).splitlines()[0][:200]
        report.notes.append(
            f"the simulation was refused ({code}: {message}); attach the policy below, or "
            f"allow iam:SimulatePrincipalPolicy on {principal.source_arn} to check first"
        )
    if report.simulated and not report.denied:
        report.policy = None
    return report


@dataclass(frozen=True)
class RoleNeeds:
    """What a service role (the SageMaker execution role, the Bedrock role) must allow
    when the service runs as it; `granted` maps the needs llmship itself grants at apply
    (an inline policy for a VPC, SNS, KMS or outside data) to where it grants them."""

    who: str
    role_arn: str
    needs: tuple[Need, ...]
    granted: dict[Need, str] = field(default_factory=dict, hash=False)


Call = tuple[str, str, dict]  # (botocore service, operation, parameters)


def run_check(
    session,
    *,
    capability: str,
    calls: Sequence[Call],
    project: str,
    bucket: str | None,
    role_arn: str | None,
    roles: Sequence[RoleNeeds] = (),
) -> list[CheckReport]:
    """The caller's check for `calls` (and each service role's for its needs). Never
    raises for AWS's answers: what could not be checked is said in the report."""
    from botocore.config import Config

    from llmship.aws.permissions import needs as needs_of
    from llmship.aws.session import client
    from llmship.errors import AwsError

    region = session.region_name
    try:
        principal = caller(session)
    except AwsError as exc:
        principal = Principal("unknown caller", "", "aws", None, str(exc))
    partition, account = principal.partition, principal.account or _account_of(role_arn)
    policy = _policy(
        capability, partition, account, region, project, bucket, role_arn, principal.source_arn
    )
    needs = [
        need
        for service, operation, params in calls
        for need in needs_of(
            service,
            operation,
            params,
            partition=partition,
            region=region,
            account=account,
            project=project,
        )
    ]
    # Advisory: a few tries each, so an unanswerable simulator does not hold the plan up.
    iam = client(session, "iam", config=Config(retries={"mode": "standard", "max_attempts": 3}))
    reports = [
        check_principal(
            iam,
            principal,
            needs,
            who="you",
            policy=policy,
            grant_of=lambda need: granting_statement(need, project, role_arn=role_arn),
        )
    ]
    for role in roles:
        role_partition, role_account = role.role_arn.split(":")[1], role.role_arn.split(":")[4]
        subject = Principal(role.role_arn, role_account, role_partition, role.role_arn)
        report = check_principal(
            iam,
            subject,
            role.needs,
            who=role.who,
            policy=None,
            grant_of=lambda need, role=role: role.granted.get(need),
        )
        report.findings = [
            replace(f, decision="added") if f.decision == "denied" and f.need in role.granted else f
            for f in report.findings
        ]
        reports.append(report)
    return reports


def _account_of(arn: str | None) -> str:
    parts = (arn or "").split(":")
    return parts[4] if len(parts) > 4 and parts[4] else "*"


def _policy(capability, partition, account, region, project, bucket, role_arn, caller_arn):
    """The policies the command needs, {policy name: document} as `aws bootstrap
    --print-policy` prints them, to attach when something is missing (`deploy` is two:
    destroy and the deployment options need `operate` too)."""
    from llmship.aws.capabilities import NEEDED_BY, capability_policy, policy_name

    return {
        policy_name(name, project): capability_policy(
            name,
            partition=partition,
            account=account,
            region=region,
            project=project,
            bucket=bucket or "*",
            role_arn=role_arn or f"arn:{partition}:iam::{account}:role/*",
            caller_arn=caller_arn,
        )
        for name in NEEDED_BY.get(capability, (capability,))
    }
