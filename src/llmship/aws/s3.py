"""S3 for artifacts and data: a safe bucket, and uploads that are fast, verified,
skipped when unchanged and resumed when interrupted.

- Buckets llmship creates are region-correct, block all public access, encrypt at
  rest and carry llmship's tags.
- Every object carries the SHA-256 of its content in its metadata (llmship-sha256): an
  upload whose content is already there is skipped, a changed file is uploaded again.
- Large files go up as multipart uploads with parallel parts, each part checked by S3
  against its MD5. The upload id is kept in a small file beside the state store until
  the upload completes, so an interrupted upload resumes with the parts S3 already has.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmship.aws.errors import aws_call, ignore_not_found, is_not_found
from llmship.errors import AwsError
from llmship.progress import RecordingReporter, Reporter
from llmship.state import tag_list

SHA_KEY = "llmship-sha256"
PART_SIZE = 64 * 1024 * 1024


@dataclass(frozen=True)
class Upload:
    """What happened to one file."""

    key: str
    bytes: int
    sha256: str
    skipped: bool
    resumed_parts: int = 0


def ensure_bucket(s3, bucket: str, region: str, tags: dict[str, str]) -> bool:
    """Create the bucket (private, encrypted, tagged) unless it exists; True if created."""
    with ignore_not_found("s3", "HeadBucket", bucket):
        s3.head_bucket(Bucket=bucket)
        return False
    with aws_call("s3", "CreateBucket", bucket):
        options: dict[str, Any] = {"Bucket": bucket}
        if region != "us-east-1":  # us-east-1 refuses an explicit location constraint
            options["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**options)
        s3.put_public_access_block(
            Bucket=bucket,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
        s3.put_bucket_tagging(
            Bucket=bucket,
            Tagging={"TagSet": tag_list(dict(sorted(tags.items())))},
        )
    return True


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(8 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def upload_file(
    s3,
    path: str | Path,
    bucket: str,
    key: str,
    resume_dir: Path,
    reporter: Reporter | None = None,
    part_size: int = PART_SIZE,
    workers: int = 8,
) -> Upload:
    """Upload `path` to s3://bucket/key unless the same content is already there."""
    path, reporter = Path(path), reporter or RecordingReporter()
    size, sha = path.stat().st_size, file_sha256(path)
    with ignore_not_found("s3", "HeadObject", f"s3://{bucket}/{key}"):
        head = s3.head_object(Bucket=bucket, Key=key)
        if head.get("Metadata", {}).get(SHA_KEY) == sha and head["ContentLength"] == size:
            return Upload(key, size, sha, skipped=True)
    with aws_call("s3", "PutObject", f"s3://{bucket}/{key}"):
        if size <= part_size:
            data = path.read_bytes()
            s3.put_object(
                Bucket=bucket,
                Key=key,
                Body=data,
                Metadata={SHA_KEY: sha},
                ContentMD5=base64.b64encode(hashlib.md5(data).digest()).decode(),
            )
            reporter.start(f"upload {path.name}", size)
            reporter.update(size)
            reporter.finish()
            return Upload(key, size, sha, skipped=False)
        return _multipart(
            s3, path, bucket, key, sha, size, resume_dir, reporter, part_size, workers
        )


def _multipart(s3, path, bucket, key, sha, size, resume_dir, reporter, part_size, workers):
    from botocore.exceptions import ClientError

    # One marker per destination: a changed file finds the old upload and aborts it.
    marker = resume_dir / f"{hashlib.sha256(f'{bucket}/{key}'.encode()).hexdigest()}.json"
    done: dict[int, tuple[str, int]] = {}
    upload_id = None
    if marker.is_file():
        try:
            saved = json.loads(marker.read_text())
            upload_id = saved["upload_id"]
        except (OSError, ValueError, KeyError, TypeError):  # a torn marker: start again
            saved, upload_id = {}, None
        if upload_id and (saved.get("sha256"), saved.get("part_size")) != (sha, part_size):
            _abort(s3, bucket, key, upload_id)  # the file changed since: its parts are stale
            upload_id = None
        elif upload_id:
            try:
                pages = s3.get_paginator("list_parts").paginate(
                    Bucket=bucket, Key=key, UploadId=upload_id
                )
                done = {
                    p["PartNumber"]: (p["ETag"], p["Size"])
                    for page in pages
                    for p in page.get("Parts", [])
                }
            except ClientError as exc:
                if not is_not_found(exc, "s3"):
                    raise
                upload_id, done = None, {}  # the upload expired or was aborted: start again
    if upload_id is None:
        upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, Metadata={SHA_KEY: sha})[
            "UploadId"
        ]
        resume_dir.mkdir(parents=True, exist_ok=True)
        marker.write_text(
            json.dumps(
                {
                    "bucket": bucket,
                    "key": key,
                    "upload_id": upload_id,
                    "sha256": sha,
                    "part_size": part_size,
                }
            )
        )
    count = (size + part_size - 1) // part_size
    sent = sum(min(part_size, size - (n - 1) * part_size) for n in done if n <= count)
    reporter.start(f"upload {path.name}", size, sent)

    def send(number: int) -> tuple[int, str]:
        with path.open("rb") as handle:
            handle.seek((number - 1) * part_size)
            data = handle.read(part_size)
        md5 = hashlib.md5(data)
        etag, stored = done.get(number, ("", -1))
        if etag.strip('"') == md5.hexdigest() and stored == len(data):
            return number, etag  # S3 already has this exact part
        etag = s3.upload_part(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=data,
            ContentMD5=base64.b64encode(md5.digest()).decode(),
        )["ETag"]
        return number, etag

    etags: dict[int, str] = {}
    reused = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for number, etag in pool.map(send, [n for n in range(1, count + 1)]):
            etags[number] = etag
            reused += etag == done.get(number, ("",))[0]
            if etag != done.get(number, ("",))[0]:
                sent += min(part_size, size - (number - 1) * part_size)
                reporter.update(sent)
    reporter.finish()
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)]},
    )
    head = s3.head_object(Bucket=bucket, Key=key)
    if head["ContentLength"] != size:
        raise AwsError(
            f"s3://{bucket}/{key} holds {head['ContentLength']} bytes after the upload, not "
            f"{size}; run the command again to upload it anew"
        )
    os.remove(marker)
    return Upload(key, size, sha, skipped=False, resumed_parts=reused)


def _abort(s3, bucket: str, key: str, upload_id: str) -> None:
    from botocore.exceptions import ClientError

    try:
        s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    except ClientError as exc:
        if not is_not_found(exc, "s3"):
            raise


def abort_uploads(s3, bucket: str, prefix: str) -> int:
    """Abort every unfinished multipart upload under `prefix` (their parts are billed as
    storage until aborted); returns how many there were."""
    count = 0
    pages = s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=prefix)
    for page in pages:
        for upload in page.get("Uploads", []):
            _abort(s3, bucket, upload["Key"], upload["UploadId"])
            count += 1
    return count
