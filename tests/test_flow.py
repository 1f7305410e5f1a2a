"""The one plan -> show -> confirm -> apply flow (llmship.target.carry_out) that deploy,
SageMaker training jobs and `expose` go through."""

from __future__ import annotations

import pytest

from llmship.errors import DeployError
from llmship.sagemaker.cost import Cost
from llmship.target import Action, Plan, carry_out


def _plan(hourly_usd: float | None, problems: tuple[str, ...] = ()) -> Plan:
    return Plan(
        target="sagemaker",
        deployment="demo-dep",
        project="demo",
        region="us-west-2",
        kind="realtime",
        actions=[Action("create", "sagemaker:endpoint", "demo-dep", hourly_usd=hourly_usd)],
        cost=Cost(hourly_usd, "serverless: nothing while idle" if hourly_usd is None else ""),
        problems=list(problems),
    )


class Calls:
    """What the flow called, in order."""

    def __init__(self, answer: bool = True):
        self.answer, self.log = answer, []

    def show(self, plan: Plan) -> None:
        self.log.append(("show", plan.deployment))

    def confirm(self, question: str) -> bool:
        self.log.append(("confirm", question))
        return self.answer

    def apply(self, plan: Plan) -> str:
        self.log.append(("apply", plan.deployment))
        return "deployed"

    def run(self, plan: Plan):
        return carry_out(plan, self.apply, show=self.show, confirm=self.confirm)


def test_hourly_plan_is_shown_asked_with_its_price_then_applied_once():
    calls = Calls(answer=True)
    assert calls.run(_plan(0.23)) == "deployed"
    assert [name for name, _ in calls.log] == ["show", "confirm", "apply"]
    assert "$0.23/h" in calls.log[1][1] and "demo-dep" in calls.log[1][1]


def test_nothing_billed_by_the_hour_is_applied_without_asking():
    calls = Calls(answer=False)  # a confirm that would decline, were it asked
    assert calls.run(_plan(None)) == "deployed"
    assert [name for name, _ in calls.log] == ["show", "apply"]


def test_declining_creates_nothing():
    calls = Calls(answer=False)
    assert calls.run(_plan(0.23)) is None
    assert [name for name, _ in calls.log] == ["show", "confirm"]


@pytest.mark.parametrize("hourly_usd", [0.23, None])
def test_a_plan_with_problems_is_shown_then_refused_naming_each(hourly_usd):
    calls = Calls(answer=True)
    problems = ("no ml.g5.xlarge quota in us-west-2", "subnet-1 has no route to S3")
    with pytest.raises(DeployError) as refused:
        calls.run(_plan(hourly_usd, problems))
    assert all(problem in str(refused.value) for problem in problems)
    assert [name for name, _ in calls.log] == ["show"]  # neither asked nor applied
