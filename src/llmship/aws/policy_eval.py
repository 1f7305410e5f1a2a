"""A small IAM identity-policy evaluator: is this action on this resource allowed?

Enough of IAM's policy evaluation logic to judge llmship's own policies offline (the
test suite judges every AWS call it makes; `aws check` explains a denial): an explicit
Deny wins over any Allow, nothing allowed is denied; Action/NotAction match case
insensitively with `*` and `?`; Resource/NotResource match case sensitively; the
condition operators StringEquals, StringNotEquals, StringLike, StringNotLike, ArnEquals,
ArnLike, ArnNotEquals, ArnNotLike and Bool, each with an optional IfExists suffix and
ForAnyValue:/ForAllValues: prefix. A condition key the request does not carry matches
no value (as in IAM): its condition fails, except a negated one (StringNotEquals,
StringNotLike, ArnNotEquals, ArnNotLike), which holds, and IfExists or ForAllValues,
which hold too. Policy
variables (${aws:username}) are filled from the request's context.

Not modelled: resource policies, permission boundaries, SCPs and session policies
(`aws check` says so), numeric and date operators (llmship's policies use none).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

Context = Mapping[str, str | list[str]]


@dataclass(frozen=True)
class Decision:
    """The outcome, and the statement that decided it (policy name / Sid)."""

    allowed: bool
    statement: str | None = None  # None: nothing allowed it (implicit deny)
    explicit_deny: bool = False


def evaluate(
    policies: Mapping[str, Mapping[str, Any]],
    action: str,
    resource: str,
    context: Context | None = None,
) -> Decision:
    """Judge `action` on `resource` with request `context` against identity policies
    given by name."""
    context = {k.lower(): v for k, v in (context or {}).items()}
    allowed_by = None
    for name, document in policies.items():
        for index, statement in enumerate(_statements(document)):
            if not _applies(statement, action, resource, context):
                continue
            label = f"{name} / {statement.get('Sid') or f'statement {index}'}"
            if statement.get("Effect") == "Deny":
                return Decision(False, label, explicit_deny=True)
            if statement.get("Effect") == "Allow" and allowed_by is None:
                allowed_by = label
    return Decision(allowed_by is not None, allowed_by)


def allows(policies: Mapping[str, Mapping[str, Any]], need) -> Decision:
    """`evaluate` for a permissions.Need."""
    return evaluate(policies, need.action, need.resource, need.conditions)


def _statements(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found = document.get("Statement", [])
    return [found] if isinstance(found, Mapping) else list(found)


def _listed(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _applies(statement: Mapping[str, Any], action: str, resource: str, context) -> bool:
    if "Action" in statement:
        if not any(_match(p, action, fold=True) for p in _listed(statement["Action"])):
            return False
    elif "NotAction" in statement:
        if any(_match(p, action, fold=True) for p in _listed(statement["NotAction"])):
            return False
    else:
        return False
    if "Resource" in statement:
        patterns = [_fill(p, context) for p in _listed(statement["Resource"])]
        if not any(p is not None and _match(p, resource) for p in patterns):
            return False
    elif "NotResource" in statement:
        patterns = [_fill(p, context) for p in _listed(statement["NotResource"])]
        if any(p is not None and _match(p, resource) for p in patterns):
            return False
    return _conditions(statement.get("Condition", {}), context)


def _match(pattern: str, value: str, *, fold: bool = False) -> bool:
    """IAM's wildcards: `*` any run of characters (`/` and `:` included), `?` one."""
    if fold:
        pattern, value = pattern.lower(), value.lower()
    return fnmatchcase(value, pattern.replace("[", "[[]"))


_VARIABLE = re.compile(r"\$\{([^}]+)\}")


def _fill(pattern: str, context) -> str | None:
    """Policy variables replaced from the context; None when one is missing (the
    statement then matches nothing, as in IAM)."""
    missing = []

    def value(match: re.Match) -> str:
        name = match.group(1)
        if name in ("*", "?", "$"):
            return name
        found = context.get(name.lower())
        if found is None:
            missing.append(name)
            return ""
        return found if isinstance(found, str) else found[0]

    filled = _VARIABLE.sub(value, pattern)
    return None if missing else filled


_OPERATORS = {
    "StringEquals": lambda want, have: have == want,
    "StringNotEquals": lambda want, have: have != want,
    "StringEqualsIgnoreCase": lambda want, have: have.lower() == want.lower(),
    "StringLike": lambda want, have: _match(want, have),
    "StringNotLike": lambda want, have: not _match(want, have),
    "ArnEquals": lambda want, have: _match(want, have),
    "ArnLike": lambda want, have: _match(want, have),
    "ArnNotEquals": lambda want, have: not _match(want, have),
    "ArnNotLike": lambda want, have: not _match(want, have),
    "Bool": lambda want, have: have.lower() == want.lower(),
}
_NEGATED = {"StringNotEquals", "StringNotLike", "ArnNotEquals", "ArnNotLike"}


def _conditions(block: Mapping[str, Mapping[str, Any]], context) -> bool:
    """Every operator block, and every key in it, must hold (AND); the values listed
    for one key are alternatives (OR; for the negated operators: none may match)."""
    for raw_operator, keys in block.items():
        qualifier, _, operator = raw_operator.rpartition(":")
        if_exists = operator.endswith("IfExists")
        operator = operator.removesuffix("IfExists")
        if operator not in _OPERATORS:
            raise ValueError(f"condition operator {raw_operator} is not supported")
        test = _OPERATORS[operator]
        for key, wanted in keys.items():
            have = context.get(key.lower())
            if have is None:
                # A missing key matches no value: the negated operators then hold.
                negated = operator in _NEGATED and not qualifier
                if if_exists or negated or qualifier == "ForAllValues":
                    continue
                return False
            values = [have] if isinstance(have, str) else list(have)
            wants = [str(w) for w in _listed(wanted)]
            if not _holds(test, operator in _NEGATED, qualifier, wants, values):
                return False
    return True


def _holds(test, negated: bool, qualifier: str, wants: list[str], values: Iterable[str]) -> bool:
    def one(value: str) -> bool:
        results = [test(w, value) for w in wants]
        return all(results) if negated else any(results)

    values = list(values)
    if qualifier == "ForAllValues":
        return all(one(v) for v in values)
    return any(one(v) for v in values)
