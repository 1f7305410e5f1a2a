"""S3 against moto in server mode: a private encrypted bucket, verified uploads that are
skipped when unchanged, re-sent when changed and resumed when interrupted."""

from __future__ import annotations

import hashlib
import os

import pytest

from llmship.aws.s3 import SHA_KEY, ensure_bucket, upload_file
from llmship.aws.session import client, make_session
from llmship.config.schema import AwsConfig
from llmship.errors import AwsError

MB = 1024 * 1024


@pytest.fixture()
def s3(aws_env):
    return client(make_session(AwsConfig(region="eu-west-1")), "s3")


def test_created_bucket_is_private_encrypted_and_tagged(s3):
    tags = {"llmship:project": "demo", "llmship:deployment": "demo-1"}
    assert ensure_bucket(s3, "llmship-private-bucket", "eu-west-1", tags) is True
    block = s3.get_public_access_block(Bucket="llmship-private-bucket")
    assert all(block["PublicAccessBlockConfiguration"].values())
    rules = s3.get_bucket_encryption(Bucket="llmship-private-bucket")
    assert (
        rules["ServerSideEncryptionConfiguration"]["Rules"][0][
            "ApplyServerSideEncryptionByDefault"
        ]["SSEAlgorithm"]
        == "AES256"
    )
    tagged = {
        t["Key"]: t["Value"]
        for t in s3.get_bucket_tagging(Bucket="llmship-private-bucket")["TagSet"]
    }
    assert tagged == tags
    assert (
        s3.get_bucket_location(Bucket="llmship-private-bucket")["LocationConstraint"] == "eu-west-1"
    )
    assert ensure_bucket(s3, "llmship-private-bucket", "eu-west-1", tags) is False


def test_unchanged_content_is_skipped_and_changed_content_sent(s3, tmp_path):
    ensure_bucket(s3, "llmship-skip", "eu-west-1", {})
    path = tmp_path / "config.json"
    path.write_text('{"a": 1}')
    first = upload_file(s3, path, "llmship-skip", "m/config.json", tmp_path / "resume")
    again = upload_file(s3, path, "llmship-skip", "m/config.json", tmp_path / "resume")
    assert (first.skipped, again.skipped) == (False, True)
    path.write_text('{"a": 2}')
    changed = upload_file(s3, path, "llmship-skip", "m/config.json", tmp_path / "resume")
    assert changed.skipped is False
    stored = s3.get_object(Bucket="llmship-skip", Key="m/config.json")
    assert stored["Body"].read() == b'{"a": 2}'
    assert stored["Metadata"][SHA_KEY] == hashlib.sha256(b'{"a": 2}').hexdigest()


class FailOnce:
    """An S3 client that loses the connection on one part, once."""

    def __init__(self, real, part):
        self.real, self.part, self.failed = real, part, False
        self.sent: list[int] = []

    def upload_part(self, **kwargs):
        if kwargs["PartNumber"] == self.part and not self.failed:
            self.failed = True
            raise ConnectionError("connection lost")
        self.sent.append(kwargs["PartNumber"])
        return self.real.upload_part(**kwargs)

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_an_interrupted_multipart_upload_resumes(s3, tmp_path):
    ensure_bucket(s3, "llmship-resume", "eu-west-1", {})
    data = os.urandom(13 * MB)
    path = tmp_path / "model.safetensors"
    path.write_bytes(data)
    flaky = FailOnce(s3, part=3)  # the last part: parts 1 and 2 are already up

    def upload():
        return upload_file(
            flaky,
            path,
            "llmship-resume",
            "m/model.safetensors",
            tmp_path / "resume",
            part_size=5 * MB,
            workers=1,
        )

    with pytest.raises(ConnectionError):
        upload()
    assert len(list((tmp_path / "resume").iterdir())) == 1  # the upload id is kept
    result = upload()
    assert result.skipped is False and result.resumed_parts == 2
    assert flaky.sent == [1, 2, 3]  # parts 1 and 2 once; after the loss, only part 3
    body = s3.get_object(Bucket="llmship-resume", Key="m/model.safetensors")["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    assert list((tmp_path / "resume").iterdir()) == []
    assert upload_file(
        s3, path, "llmship-resume", "m/model.safetensors", tmp_path / "resume", part_size=5 * MB
    ).skipped


def test_a_missing_bucket_is_a_clear_error(s3, tmp_path):
    path = tmp_path / "x.json"
    path.write_text("{}")
    with pytest.raises(
        AwsError, match=r"s3://llmship-nope/x.json.*NoSuchBucket.*create the bucket"
    ):
        upload_file(s3, path, "llmship-nope", "x.json", tmp_path / "resume")
