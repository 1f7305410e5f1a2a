"""AWS sessions against moto in server mode: region, endpoint override, assumed roles,
retries, and AWS errors translated into messages that say what to do."""

from __future__ import annotations

import json

import pytest

from llmship.aws.session import client, make_session, translate
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
    iam = client(make_session(AwsConfig(region="us-east-1")), "iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    arn = iam.create_role(RoleName="llmship-deployer", AssumeRolePolicyDocument=json.dumps(trust))[
        "Role"
    ]["Arn"]
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
