"""Every AWS client llmship makes comes from one factory (llmship.aws.session), so the
config's aws.profile and aws.assume_role_arn, the retry rules and the call recorder
apply to all of them: `invoke` and `expose` once built boto3 sessions of their own."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from helpers import assumable_role
from llmship.aws.session import client

SRC = Path(__file__).resolve().parents[1] / "src" / "llmship"
MADE_ELSEWHERE = re.compile(r"\bboto3\.(Session|client|resource)\(|\b\w*session\.client\(")


def test_no_module_but_the_factory_makes_a_boto3_session_or_client():
    offenders = [
        f"{path.relative_to(SRC).as_posix()}:{number}: {line.strip()}"
        for path in sorted(SRC.rglob("*.py"))
        if path.relative_to(SRC).as_posix() != "aws/session.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if MADE_ELSEWHERE.search(line)
    ]
    assert offenders == []


def test_invoke_on_bedrock_in_another_region_keeps_the_assumed_role(aws_env, tmp_path, monkeypatch):
    """The deployment lives in eu-west-1, the config says us-west-2 and a role to assume:
    the Converse call must still go through that role (it used to get a bare session)."""
    from llmship.bedrock import invoke as bedrock_invoke
    from llmship.cli import app
    from llmship.state import StateStore
    from llmship.targets.bedrock.target import PT_KIND

    monkeypatch.setenv("LLMSHIP_HOME", str(tmp_path / "home"))
    arn = assumable_role("llmship-invoker")
    config = tmp_path / "llmship.yaml"
    config.write_text(
        "project: {name: demo}\nmodel: {name_or_path: some/model}\n"
        f"data: {{source: data.jsonl}}\naws: {{region: us-west-2, assume_role_arn: '{arn}'}}\n"
    )
    model = "arn:aws:bedrock:eu-west-1:123456789012:provisioned-model/abc123"
    StateStore().record_creating(
        PT_KIND, "demo-pt", "demo-dep", "demo", "eu-west-1", {"arn": model}
    )
    used = []

    def converse(session, model_id, messages, *, system, inference):
        used.append((session, model_id))
        return {"output": {"message": {"content": [{"text": "hello"}]}}}

    monkeypatch.setattr(bedrock_invoke, "converse", converse)
    result = CliRunner().invoke(
        app,
        ["invoke", "demo-dep", "--target", "bedrock", "--prompt", "hi", "-c", str(config)],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "hello"
    [(session, model_id)] = used
    assert model_id == model and session.region_name == "eu-west-1"
    identity = client(session, "sts").get_caller_identity()
    assert identity["Arn"].endswith("assumed-role/llmship-invoker/llmship")
