"""AWS sessions against moto in server mode: region, endpoint override, assumed roles
(renewed before they expire), retries, the call recorder, and AWS errors translated
into messages that say what to do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

import llmship.aws.session as aws_session
from helpers import assumable_role
from llmship.aws.errors import translate
from llmship.aws.session import CALL_COMMAND_ENV, CALL_LOG_ENV, client, make_session
from llmship.config.schema import AwsConfig
from llmship.errors import AwsError


def test_clients_reach_the_endpoint_override_with_adaptive_retries(aws_env):
    session = make_session(AwsConfig(region="eu-west-1"))
    s3 = client(session, "s3")
    assert s3.meta.region_name == "eu-west-1"
    assert s3.meta.endpoint_url == aws_env  # AWS_ENDPOINT_URL, read by botocore itself
    assert s3.meta.config.retries["mode"] == "adaptive"
    assert "llmship/" in s3.meta.config.user_agent_extra
    s3.create_bucket(
        Bucket="llmship-test-bucket", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    assert "llmship-test-bucket" in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_an_assumed_role_is_used_for_every_call(aws_env):
    arn = assumable_role("llmship-deployer")
    session = make_session(
        AwsConfig(region="us-east-1", assume_role_arn=arn, session_name="ci-run")
    )
    identity = client(session, "sts").get_caller_identity()
    assert identity["Arn"].endswith("assumed-role/llmship-deployer/ci-run")
    assert session.get_credentials().access_key != "testing"


def test_a_missing_region_is_a_clear_error(aws_env, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with pytest.raises(AwsError, match=r"no AWS region: set aws\.region"):
        make_session(AwsConfig())


def test_aws_errors_name_the_call_the_resource_and_the_fix(aws_env):
    from botocore.exceptions import ClientError

    s3 = client(make_session(AwsConfig(region="us-east-1")), "s3")
    with pytest.raises(ClientError) as info:
        s3.get_object(Bucket="no-such-llmship-bucket", Key="model.tar.gz")
    error = translate(info.value, "s3", "GetObject", "s3://no-such-llmship-bucket/model.tar.gz")
    assert str(error).startswith(
        "s3 GetObject on s3://no-such-llmship-bucket/model.tar.gz failed: NoSuchBucket"
    )
    assert "create the bucket, or set aws.bucket" in str(error)
    assert "testing" not in str(error)  # no credential in any message


def _calls(log) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_assumed_role_credentials_are_renewed_before_they_expire(aws_env, tmp_path, monkeypatch):
    """AssumeRole credentials last DurationSeconds, 3600 by default (STS AssumeRole API
    reference); moto answers the same Expiration. With the clock a minute before it, the
    next call (from a client made an hour earlier) assumes the role again first."""
    arn = assumable_role("llmship-renewed")
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv(CALL_LOG_ENV, str(log))
    ahead = timedelta()
    monkeypatch.setattr(aws_session, "_now", lambda: datetime.now(UTC) + ahead)
    session = make_session(AwsConfig(region="us-east-1", assume_role_arn=arn))
    sts = client(session, "sts")
    first = session.get_credentials().get_frozen_credentials().access_key
    assert sts.get_caller_identity()["Arn"].endswith("assumed-role/llmship-renewed/llmship")

    ahead = timedelta(seconds=3600 - 60)
    assert sts.get_caller_identity()["Arn"].endswith("assumed-role/llmship-renewed/llmship")
    ahead = timedelta()  # the renewed credentials' hour starts now
    assert session.get_credentials().get_frozen_credentials().access_key != first
    operations = [c["operation"] for c in _calls(log) if c["service"] == "sts"]
    # a call is recorded before it is signed; signing found the credentials expiring
    assert operations == ["AssumeRole", "GetCallerIdentity", "GetCallerIdentity", "AssumeRole"]


def test_every_call_is_recorded_without_bodies_or_secrets(aws_env, tmp_path, monkeypatch):
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv(CALL_LOG_ENV, str(log))
    monkeypatch.setenv(CALL_COMMAND_ENV, "deploy")
    session = make_session(AwsConfig(region="eu-west-1"))
    s3 = client(session, "s3")
    s3.create_bucket(
        Bucket="llmship-calls", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    s3.put_object(Bucket="llmship-calls", Key="model.tar.gz", Body=b"weights-bytes")
    with (tmp_path / "big.bin").open("wb") as out:
        out.write(b"streamed-bytes")
    with (tmp_path / "big.bin").open("rb") as stream:
        s3.put_object(Bucket="llmship-calls", Key="big.bin", Body=stream)
    client(session, "secretsmanager").create_secret(
        Name="llmship-demo-HF_TOKEN", SecretString="hf_never_in_the_log"
    )
    calls = _calls(log)
    assert [(c["service"], c["operation"]) for c in calls] == [
        ("s3", "CreateBucket"),
        ("s3", "PutObject"),
        ("s3", "PutObject"),
        ("secretsmanager", "CreateSecret"),
    ]
    assert {c["command"] for c in calls} == {"deploy"}
    assert {c["region"] for c in calls} == {"eu-west-1"}
    assert calls[1]["params"]["Bucket"] == "llmship-calls"
    assert calls[1]["params"]["Key"] == "model.tar.gz"
    assert calls[1]["params"]["Body"] == calls[2]["params"]["Body"] == "<body>"
    assert calls[3]["params"]["Name"] == "llmship-demo-HF_TOKEN"
    assert calls[3]["params"]["SecretString"] == "<secret>"
    text = log.read_text()
    assert "hf_never_in_the_log" not in text and "bytes" not in text and "testing" not in text


def test_data_and_secrets_in_parameters_never_reach_the_log(aws_env, tmp_path, monkeypatch):
    """API Gateway's CreateApiKey `value`, DynamoDB items and keys (the gateway's usage
    keys), a function's environment: hidden, their names kept; what the permission audit
    reads (names, tags, SecretId) kept."""
    import io
    import zipfile

    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv(CALL_LOG_ENV, str(log))
    session = make_session(AwsConfig(region="us-east-1"))
    apigw, dynamodb = client(session, "apigateway"), client(session, "dynamodb")
    apigw.create_api_key(
        name="k", value="usage-key-never-logged-0123456789", enabled=True, tags={"team": "a"}
    )
    dynamodb.create_table(
        TableName="keys",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    item = {"pk": {"S": "key-hash-never-logged"}, "usage_key": {"S": "item-never-logged"}}
    dynamodb.put_item(TableName="keys", Item=item)
    dynamodb.get_item(TableName="keys", Key={"pk": {"S": "key-hash-never-logged"}})
    trust = '{"Version": "2012-10-17", "Statement": []}'
    role = client(session, "iam").create_role(RoleName="fn", AssumeRolePolicyDocument=trust)
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return event\n")
    client(session, "lambda").create_function(
        FunctionName="fn",
        Runtime="python3.12",
        Role=role["Role"]["Arn"],
        Handler="handler.handler",
        Code={"ZipFile": code.getvalue()},
        Environment={"Variables": {"HF_TOKEN": "env-never-logged", "MODE": "env-plain-too"}},
        Tags={"llmship:project": "p"},
    )
    text = log.read_text()
    for value in ("usage-key-never", "key-hash-never", "item-never", "env-never", "env-plain"):
        assert value not in text
    calls = {c["operation"]: c["params"] for c in _calls(log)}
    assert calls["CreateApiKey"]["value"] == "<secret>"
    assert calls["CreateApiKey"]["tags"] == {"team": "a"}
    assert calls["PutItem"]["TableName"] == "keys"
    assert calls["PutItem"]["Item"]["usage_key"] == {"S": "<secret>"}
    assert calls["GetItem"]["Key"] == {"pk": {"S": "<secret>"}}
    assert calls["CreateFunction"]["Environment"] == {
        "Variables": {"HF_TOKEN": "<secret>", "MODE": "<secret>"}
    }
    assert calls["CreateFunction"]["Tags"] == {"llmship:project": "p"}


def test_the_audit_reads_what_it_needs_from_redacted_parameters():
    """Tags (S3's and Bedrock's {"key", "value"} pairs), S3 keys and SecretId stay."""
    params = {
        "SecretId": "llmship/p/d/hf-token",
        "ClientRequestToken": "t-1",
        "Key": "models/model.tar.gz",
        "tags": [{"key": "llmship:project", "value": "p"}],
        "Tags": [{"Key": "llmship:project", "Value": "p"}],
        "patchOperations": [{"op": "replace", "path": "/value", "value": "new-secret"}],
    }
    assert aws_session.printable(params) == {
        **params,
        "ClientRequestToken": "<secret>",
        "patchOperations": [{"op": "replace", "path": "/value", "value": "<secret>"}],
    }


def test_no_log_is_written_unless_asked(aws_env, tmp_path, monkeypatch):
    monkeypatch.delenv(CALL_LOG_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    client(make_session(AwsConfig(region="us-east-1")), "sts").get_caller_identity()
    assert list(tmp_path.iterdir()) == []


def test_threads_and_subprocesses_append_whole_lines_to_one_log(aws_env, tmp_path, monkeypatch):
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv(CALL_LOG_ENV, str(log))
    monkeypatch.delenv(CALL_COMMAND_ENV, raising=False)
    sts = client(make_session(AwsConfig(region="us-east-1")), "sts")

    def calls() -> None:
        for _ in range(10):
            sts.get_caller_identity()

    script = (
        "from llmship.aws.session import client, make_session\n"
        "sts = client(make_session(), 'sts')\n"
        "for _ in range(10):\n"
        "    sts.get_caller_identity()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], env={**os.environ, CALL_COMMAND_ENV: "train"}
    )
    threads = [threading.Thread(target=calls) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert child.wait(timeout=120) == 0
    recorded = _calls(log)  # every line whole JSON
    assert len(recorded) == 50
    assert sorted(c["command"] for c in recorded) == [""] * 40 + ["train"] * 10


def test_each_cli_command_names_itself_in_the_recorded_calls(aws_env, tmp_path, monkeypatch):
    from llmship.cli import app

    monkeypatch.setenv("LLMSHIP_HOME", str(tmp_path / "home"))
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv(CALL_LOG_ENV, str(log))
    monkeypatch.delenv(CALL_COMMAND_ENV, raising=False)
    config = tmp_path / "llmship.yaml"
    config.write_text(
        "project: {name: calls}\nmodel: {name_or_path: some/model}\n"
        "data: {source: data.jsonl}\naws: {region: us-west-2, bucket: llmship-calls-cli}\n"
    )
    result = CliRunner().invoke(app, ["aws", "bootstrap", "-c", str(config), "--create-bucket"])
    assert result.exit_code == 0, result.output
    calls = _calls(log)
    assert {("s3", "CreateBucket"), ("iam", "CreateRole")} <= {
        (c["service"], c["operation"]) for c in calls
    }
    assert {c["command"] for c in calls} == {"aws bootstrap"}
    assert CALL_COMMAND_ENV not in os.environ  # restored when the command ended
