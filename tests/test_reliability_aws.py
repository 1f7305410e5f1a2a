"""AWS faults: throttling, a new role not yet assumable, a deploy killed at every step,
interrupted uploads, a lost state store (discover + adopt), two processes on one store.

Against moto in server mode (real HTTP) and, for the throttling answers moto never
gives, a small local HTTP stub; SageMaker's "could not assume role" answer through
botocore's Stubber on a real client.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from llmship.aws.iam import call_with_new_role, is_role_not_assumable
from llmship.aws.s3 import abort_uploads, ensure_bucket, upload_file
from llmship.aws.session import RETRIES, client, make_session
from llmship.config.schema import AwsConfig
from llmship.deploy import discover
from llmship.errors import AwsError, StateError
from llmship.state import StateStore

REGION = "us-west-2"
ROLE = "arn:aws:iam::123456789012:role/llmship-reliability"
TESTS = Path(__file__).parent
KILLER = TESTS / "kill_after_call.py"
MB = 1024 * 1024


# throttling -------------------------------------------------------------------------


class Throttling(BaseHTTPRequestHandler):
    """SageMaker's JSON protocol: ThrottlingException twice, then an answer."""

    calls: ClassVar[list[str]] = []

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).calls.append(self.headers.get("X-Amz-Target", ""))
        if len(type(self).calls) <= 2:
            status, body = 400, {"__type": "ThrottlingException", "message": "Rate exceeded"}
        else:
            status, body = 200, {"Endpoints": [{"EndpointName": "e", "EndpointArn": "arn"}]}
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def test_a_throttled_call_is_retried_by_the_adaptive_mode(monkeypatch):
    Throttling.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Throttling)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.server_port}")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        sm = client(make_session(AwsConfig(region=REGION)), "sagemaker")
        assert sm.meta.config.retries["mode"] == "adaptive" == RETRIES["mode"]
        assert sm.meta.config.retries["total_max_attempts"] >= 3
        endpoints = sm.list_endpoints()["Endpoints"]
    finally:
        server.shutdown()
    assert [e["EndpointName"] for e in endpoints] == ["e"]
    assert Throttling.calls == ["SageMaker.ListEndpoints"] * 3


def test_every_client_llmship_makes_carries_the_retry_settings():
    """A source scan: clients are made through aws.session.client() or with
    client_config() merged in; the exceptions are named with their reason."""
    exempt = {
        "demo.py": "talks to the local demo server only",
        "gateway/targets.py": "the gateway's request path: fails fast on purpose",
    }
    src = TESTS.parent / "src" / "llmship"
    offenders = []
    for path in src.rglob("*.py"):
        relative = path.relative_to(src).as_posix()
        if relative == "aws/session.py" or relative in exempt:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            made = re.search(r"(boto3|session)\.client\(", line)
            if made and "client_config()" not in "\n".join(
                path.read_text().splitlines()[number - 1 : number + 4]
            ):
                offenders.append(f"{relative}:{number}: {line.strip()}")
    assert offenders == []


# IAM eventual consistency --------------------------------------------------------------

NOT_YET = (
    f"Could not assume role {ROLE}. Please ensure that the role exists and allows principal "
    "'sagemaker.amazonaws.com' to assume the role."
)
MODEL = {
    "ModelName": "m-1",
    "ExecutionRoleArn": ROLE,
    "PrimaryContainer": {"Image": "123456789012.dkr.ecr.us-west-2.amazonaws.com/x:1"},
}


def stubbed_sagemaker():
    sm = boto3.client(
        "sagemaker",
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return sm, Stubber(sm)


def test_a_new_role_is_waited_for_with_backoff_then_the_call_succeeds():
    sm, stub = stubbed_sagemaker()
    for _ in range(2):
        stub.add_client_error("create_model", "ValidationException", NOT_YET, 400, MODEL)
    stub.add_response("create_model", {"ModelArn": "arn:aws:sagemaker:::model/m-1"}, MODEL)
    slept: list[float] = []
    with stub:
        result = call_with_new_role(
            lambda: sm.create_model(**MODEL),
            role_arn=ROLE,
            service="sagemaker",
            operation="CreateModel",
            resource="m-1",
            sleep=slept.append,
        )
    assert result["ModelArn"].endswith("m-1") and slept == [2.0, 4.0]
    stub.assert_no_pending_responses()


def test_a_role_that_stays_unassumable_is_a_clear_error_after_bounded_tries():
    sm, stub = stubbed_sagemaker()
    for _ in range(7):
        stub.add_client_error("create_model", "ValidationException", NOT_YET, 400, MODEL)
    slept: list[float] = []
    with stub, pytest.raises(AwsError) as info:
        call_with_new_role(
            lambda: sm.create_model(**MODEL),
            role_arn=ROLE,
            service="sagemaker",
            operation="CreateModel",
            resource="m-1",
            sleep=slept.append,
        )
    message = str(info.value)
    assert ROLE in message and "sagemaker CreateModel on m-1" in message
    assert "trust policy allows the principal sagemaker.amazonaws.com" in message
    assert "llmship aws bootstrap" in message and "7 tries" in message
    assert slept == [2.0, 4.0, 8.0, 16.0, 20.0, 20.0]  # bounded: about a minute in all


def test_other_errors_are_not_retried_as_role_propagation():
    sm, stub = stubbed_sagemaker()
    stub.add_client_error("create_model", "ValidationException", "Image not found", 400, MODEL)
    slept: list[float] = []
    with stub, pytest.raises(ClientError, match="Image not found"):
        call_with_new_role(
            lambda: sm.create_model(**MODEL),
            role_arn=ROLE,
            service="sagemaker",
            operation="CreateModel",
            sleep=slept.append,
        )
    assert slept == []
    throttled = ClientError({"Error": {"Code": "ThrottlingException", "Message": "x"}}, "X")
    assert not is_role_not_assumable(throttled)


def test_the_sagemaker_target_waits_for_its_role_on_create_model(tmp_path):
    from llmship.targets.sagemaker.target import MODEL_KIND, SageMakerTarget

    sm, stub = stubbed_sagemaker()
    stub.add_client_error("create_model", "ValidationException", NOT_YET, 400, MODEL)
    stub.add_response("create_model", {"ModelArn": "arn:aws:sagemaker:::model/m-1"}, MODEL)
    store = StateStore(tmp_path / "state.db")
    slept: list[float] = []
    target = SageMakerTarget(store, AwsConfig(region=REGION), sleep=slept.append)
    with stub:
        target._create(
            MODEL_KIND, "m-1", "CreateModel", sm.create_model, MODEL, {},
            deployment="d", project="p", region=REGION,
        )  # fmt: skip
    assert slept == [2.0]
    assert [(r.kind, r.name, r.status) for r in store.resources()] == [(MODEL_KIND, "m-1", "UP")]


# a deploy killed at every step ----------------------------------------------------------


def write_project(root: Path, bucket: str, name: str) -> Path:
    """A project with one packaged run, deployed with a TTL and autoscaling."""
    run = root / "runs" / "20260101-120000"
    (run / "artifact").mkdir(parents=True)
    (run / "config.yaml").write_text("{}\n")
    weights = root / "weights.bin"
    weights.write_bytes(os.urandom(4096))
    with tarfile.open(run / "artifact" / "model.tar.gz", "w:gz") as archive:
        archive.add(weights, "model.safetensors")
    config = {
        "project": {"name": "kill"},
        "model": {"name_or_path": "tiny"},
        "data": {"source": "d.jsonl"},
        "deploy": {
            "target": "sagemaker",
            "name": name,
            "instance_type": "ml.m5.xlarge",
            "ttl": "1h",
            "autoscaling": {"enabled": True, "min": 1, "max": 2},
        },
        "aws": {"region": REGION, "bucket": bucket, "role_arn": ROLE},
    }
    (root / "llmship.yaml").write_text(json.dumps(config))
    return root


def run_cli(root: Path, *args: str, kill_at: int = 0, when: str = "after", log=None):
    """The CLI in a fresh process (through the killing wrapper; kill_at=0 never kills)."""
    env = {**os.environ, "LLMSHIP_HOME": str(root / "home"), "COLUMNS": "200"}
    log = log or root / "calls.log"
    command = [sys.executable, str(KILLER), str(kill_at), when, str(log), "--", *args]
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=120)


def leftovers(bucket: str, name: str) -> list[str]:
    """Everything in moto that deployment `name` created (the shared schedule group and
    the bucket, made before, are not its)."""

    def ours(found: str) -> bool:
        return found == name or found.startswith(f"{name}-")

    sm = boto3.client("sagemaker", region_name=REGION)
    left = [e["EndpointName"] for e in sm.list_endpoints(MaxResults=100)["Endpoints"]]
    configs = sm.list_endpoint_configs(MaxResults=100)["EndpointConfigs"]
    left += [c["EndpointConfigName"] for c in configs]
    left += [m["ModelName"] for m in sm.list_models(MaxResults=100)["Models"]]
    scheduler = boto3.client("scheduler", region_name=REGION)
    left += [s["Name"].removeprefix("delete-") for s in scheduler.list_schedules()["Schedules"]]
    scaling = boto3.client("application-autoscaling", region_name=REGION)
    targets = scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    left += [t["ResourceId"].split("/")[1] for t in targets]
    policies = scaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    left += [p["ResourceId"].split("/")[1] for p in policies]
    roles = boto3.client("iam", region_name=REGION).list_roles()["Roles"]
    left += [r["RoleName"].removeprefix("llmship-ttl-") for r in roles]
    queues = boto3.client("sqs", region_name=REGION).list_queues().get("QueueUrls", [])
    left += [url.rsplit("/", 1)[-1].removeprefix("llmship-ttl-dlq-") for url in queues]
    left = [f"resource {found}" for found in left if ours(found)]
    s3 = boto3.client("s3", region_name=REGION)
    prefix = f"llmship/kill/{name}/"
    left += [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])
    left += [f"unfinished upload of {u['Key']}" for u in uploads]
    return left


@pytest.fixture()
def kill_bucket(aws_env):
    bucket = f"llmship-kill-{time.time_ns()}"
    ensure_bucket(boto3.client("s3", region_name=REGION), bucket, REGION, {})
    scheduler = boto3.client("scheduler", region_name=REGION)
    if "llmship" not in [g["Name"] for g in scheduler.list_schedule_groups()["ScheduleGroups"]]:
        # shared, made once per account, as deploy --ttl makes it
        scheduler.create_schedule_group(
            Name="llmship", Tags=[{"Key": "llmship:shared", "Value": "true"}]
        )
    return bucket


def calls_of_a_whole_deploy(tmp_path, bucket) -> list[str]:
    root = write_project(tmp_path / "whole", bucket, f"kill-whole-{time.time_ns() % 10**8}")
    log = tmp_path / "whole.log"
    done = run_cli(root, "deploy", "latest", "--yes", kill_at=0, log=log)
    assert done.returncode == 0, done.stderr
    destroyed = run_cli(root, "destroy", "--all", "--yes", "--purge")
    assert destroyed.returncode == 0, destroyed.stderr
    return log.read_text().split()


@pytest.mark.parametrize("when", ["after", pytest.param("before", marks=pytest.mark.slow)])
def test_a_deploy_killed_at_any_step_is_destroyed_without_a_trace(tmp_path, kill_bucket, when):
    calls = calls_of_a_whole_deploy(tmp_path, kill_bucket)
    # the upload, model, config, endpoint, TTL role + policy + schedule, scaling target...
    for expected in ("PutObject", "CreateModel", "CreateEndpoint", "CreateSchedule",
                     "RegisterScalableTarget", "PutScalingPolicy"):  # fmt: skip
        assert expected in calls

    def kill_then_destroy(step: int) -> tuple[int, str, list[str], list]:
        name = f"kill-{when[0]}{step}-{time.time_ns() % 10**8}"
        root = write_project(tmp_path / f"{when}-{step}", kill_bucket, name)
        killed = run_cli(
            root, "deploy", "latest", "--yes", kill_at=step, when=when, log=root / "calls.log"
        )
        assert killed.returncode == 137, (step, killed.stderr)
        destroyed = run_cli(root, "destroy", "--all", "--yes", "--purge")
        state = StateStore(root / "home" / "state.db").resources()
        return step, destroyed.stderr, leftovers(kill_bucket, name), state

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(kill_then_destroy, range(1, len(calls) + 1)))
    for step, stderr, left, state in results:
        where = f"killed {when} call {step} ({calls[step - 1]})"
        assert left == [], f"{where}: left {left}; destroy said {stderr}"
        assert state == [], f"{where}: state keeps {state}"


# uploads ------------------------------------------------------------------------------


class DiesAfter:
    """An S3 client whose connection dies once `parts` parts went up."""

    def __init__(self, real, parts: int):
        self.real, self.parts, self.sent = real, parts, []

    def upload_part(self, **kwargs):
        if len(self.sent) == self.parts:
            raise ConnectionError("connection lost")
        self.sent.append(kwargs["PartNumber"])
        return self.real.upload_part(**kwargs)

    def __getattr__(self, name):
        return getattr(self.real, name)


@pytest.fixture()
def s3(aws_env):
    s3 = client(make_session(AwsConfig(region=REGION)), "s3")
    ensure_bucket(s3, "llmship-resume-rel", REGION, {})
    return s3


@pytest.mark.parametrize("k", [0, 1, 3])
def test_an_upload_interrupted_after_k_parts_resumes_with_the_rest(s3, tmp_path, k):
    data = os.urandom(4 * 5 * MB + 123)  # five parts, the last one short
    path = tmp_path / "model.safetensors"
    path.write_bytes(data)
    key, resume = f"r/{k}/model.safetensors", tmp_path / "resume"
    flaky = DiesAfter(s3, parts=k)
    options = {"part_size": 5 * MB, "workers": 1}
    with pytest.raises(ConnectionError):
        upload_file(flaky, path, "llmship-resume-rel", key, resume, **options)
    again = DiesAfter(s3, parts=99)
    result = upload_file(again, path, "llmship-resume-rel", key, resume, **options)
    assert result.resumed_parts == k and again.sent == list(range(k + 1, 6))
    body = s3.get_object(Bucket="llmship-resume-rel", Key=key)["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    assert not list(resume.iterdir())
    unchanged = DiesAfter(s3, parts=0)  # would fail on any part: nothing is sent
    assert upload_file(unchanged, path, "llmship-resume-rel", key, resume, **options).skipped


def test_a_file_changed_after_an_interruption_is_uploaded_anew(s3, tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(os.urandom(3 * 5 * MB))
    key, resume = "changed/model.safetensors", tmp_path / "resume"
    options = {"part_size": 5 * MB, "workers": 1}
    with pytest.raises(ConnectionError):
        upload_file(DiesAfter(s3, parts=2), path, "llmship-resume-rel", key, resume, **options)
    changed = os.urandom(3 * 5 * MB)
    path.write_bytes(changed)
    again = DiesAfter(s3, parts=99)
    result = upload_file(again, path, "llmship-resume-rel", key, resume, **options)
    assert result.resumed_parts == 0 and again.sent == [1, 2, 3]
    body = s3.get_object(Bucket="llmship-resume-rel", Key=key)["Body"].read()
    assert body == changed
    # the stale upload of the old content was aborted, not left to bill
    assert s3.list_multipart_uploads(Bucket="llmship-resume-rel", Prefix=key).get("Uploads") is None
    path.write_bytes(os.urandom(100))  # small, changed: sent again, whole
    assert not upload_file(s3, path, "llmship-resume-rel", key, resume, **options).skipped


def test_unfinished_uploads_under_a_prefix_are_aborted(s3):
    for key in ("p/a", "p/b", "q/c"):
        s3.create_multipart_upload(Bucket="llmship-resume-rel", Key=key)
    assert abort_uploads(s3, "llmship-resume-rel", "p/") == 2
    left = s3.list_multipart_uploads(Bucket="llmship-resume-rel").get("Uploads", [])
    assert [u["Key"] for u in left] == ["q/c"]
    abort_uploads(s3, "llmship-resume-rel", "q/")


# a lost state store: discover and adopt ------------------------------------------------


def test_arns_map_to_state_kinds():
    cases = {
        "arn:aws:sagemaker:us-west-2:1:endpoint/my-ep": ("sagemaker:endpoint", "my-ep"),
        "arn:aws:sagemaker:us-west-2:1:endpoint-config/c-1": ("sagemaker:endpoint-config", "c-1"),
        "arn:aws:lambda:us-west-2:1:function:gw": ("lambda:function", "gw"),
        "arn:aws:apigateway:us-west-2::/restapis/a1b2": ("apigateway:rest-api", "a1b2"),
        "arn:aws:dynamodb:us-west-2:1:table/keys": ("dynamodb:table", "keys"),
        "arn:aws:s3:::bucket-1": ("s3:bucket", "bucket-1"),
        "arn:aws:cloudwatch:us-west-2:1:alarm:a": ("cloudwatch:alarm", "a"),
    }
    for arn, expected in cases.items():
        assert discover.kind_of_arn(arn) == expected
    secret = "arn:aws:secretsmanager:us-west-2:1:secret:hf-AbCdEf"
    assert discover.kind_of_arn(secret) == ("secretsmanager:secret", secret)
    job = "arn:aws:bedrock:us-west-2:1:model-customization-job/abc"
    assert discover.kind_of_arn(job) == ("bedrock:customization-job", job)
    assert discover.kind_of_arn("arn:aws:sns:us-west-2:1:topic") is None
    assert discover.kind_of_arn("not an arn") is None
    assert discover.kind_of_arn("('arn:aws:sagemaker:us-west-2:1:endpoint-config/c',)") is None


def test_teammates_discover_and_adopt_each_others_deployments(tmp_path, kill_bucket):
    """Alice deploys; Bob (another LLMSHIP_HOME, same account) finds her deployment, a
    tagged Lambda function and secret of the project, adopts them and destroys hers."""
    name = f"kill-team-{time.time_ns() % 10**8}"
    alice = write_project(tmp_path / "alice", kill_bucket, name)
    deployed = run_cli(alice, "deploy", "latest", "--yes")
    assert deployed.returncode == 0, deployed.stderr
    tags = {"llmship:project": "kill", "llmship:deployment": f"{name}-gw", "llmship:run": "r"}
    secret = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name=f"{name}-key", SecretString="x", Tags=[{"Key": k, "Value": v} for k, v in tags.items()]
    )["ARN"]
    bob = write_project(tmp_path / "bob", kill_bucket, name)
    listed = run_cli(bob, "status", "--discover")
    assert listed.returncode == 0, listed.stderr
    assert "not in the state store" in listed.stdout and name in listed.stdout
    assert StateStore(bob / "home" / "state.db").resources() == []  # listing changes nothing

    session = make_session(AwsConfig(region=REGION))
    found = discover.discover(session, project="kill", bucket=kill_bucket)
    mine = {(f.kind, f.deployment) for f in found if f.deployment.startswith(name)}
    assert {
        ("sagemaker:endpoint", name),
        ("sagemaker:endpoint-config", name),
        ("sagemaker:model", name),
        ("scheduler:schedule", name),
        ("autoscaling:target", name),
        ("iam:role", name),
        ("s3:artifact", name),
        ("secretsmanager:secret", f"{name}-gw"),
    } <= mine
    alice_store = StateStore(alice / "home" / "state.db")
    assert not [
        f for f in discover.missing_from(alice_store, found) if f.deployment == name
    ]  # Alice's own state already records all of it
    assert discover.discover(session, project="no-such-project") == []

    adopted = run_cli(bob, "status", "--discover", "--adopt")
    assert adopted.returncode == 0, adopted.stderr
    bob_store = StateStore(bob / "home" / "state.db")
    kinds = {r.kind for r in bob_store.resources(name)}
    assert {"sagemaker:endpoint", "sagemaker:model", "s3:artifact"} <= kinds
    assert all(r.status == "UP" and r.details["adopted"] for r in bob_store.resources(name))
    assert bob_store.resources(f"{name}-gw")[0].name == secret
    again = run_cli(bob, "status", "--discover", "--adopt")
    assert f"{len(found)} llmship-tagged" in again.stdout and " 0 not in the state" in again.stdout

    destroyed = run_cli(bob, "destroy", name, "--yes", "--purge")
    assert destroyed.returncode == 0, destroyed.stderr
    assert leftovers(kill_bucket, name) == [] and bob_store.resources(name) == []
    boto3.client("secretsmanager", region_name=REGION).delete_secret(
        SecretId=secret, ForceDeleteWithoutRecovery=True
    )


def test_a_killed_deploy_with_its_state_lost_is_found_adopted_and_destroyed(tmp_path, kill_bucket):
    name = f"kill-lost-{time.time_ns() % 10**8}"
    root = write_project(tmp_path / "lost", kill_bucket, name)
    log = root / "calls.log"
    killed = run_cli(root, "deploy", "latest", "--yes", kill_at=9, log=log)
    assert killed.returncode == 137  # after RegisterScalableTarget, before its policy
    assert log.read_text().split()[-1] == "RegisterScalableTarget"
    (root / "home" / "state.db").unlink()
    for extra in ("state.db-wal", "state.db-shm"):
        (root / "home" / extra).unlink(missing_ok=True)
    assert run_cli(root, "status", "--discover", "--adopt").returncode == 0
    destroyed = run_cli(root, "destroy", "--all", "--yes", "--purge")
    assert destroyed.returncode == 0, destroyed.stderr
    assert leftovers(kill_bucket, name) == []


def test_adopt_without_discover_is_refused(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from llmship.cli import app
    from llmship.errors import DeployError

    monkeypatch.setenv("LLMSHIP_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["status", "--adopt"])
    assert isinstance(result.exception, DeployError) and "--discover" in str(result.exception)


# the state store -------------------------------------------------------------------------

WRITER = """
import sys
from llmship.state import StateStore
store = StateStore(sys.argv[1])
for i in range(60):
    store.record_creating("sagemaker:model", f"{sys.argv[2]}-{i}", sys.argv[2], "p", "r")
    store.set_status("sagemaker:model", f"{sys.argv[2]}-{i}", "UP", "r")
    if i % 3 == 0:
        store.remove("sagemaker:model", f"{sys.argv[2]}-{i}", "r")
"""


def test_four_processes_writing_at_once_lose_nothing(tmp_path):
    path = tmp_path / "state.db"
    StateStore(path)
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), name], stderr=subprocess.PIPE, text=True
        )
        for name in "abcd"
    ]
    for writer in writers:
        assert writer.wait(timeout=120) == 0, writer.stderr.read()
    store = StateStore(path)
    for name in "abcd":
        kept = {r.name for r in store.resources(name)}
        assert kept == {f"{name}-{i}" for i in range(60) if i % 3}
        assert len(store.history(name)) == 60 * 2 + 20  # every event of every writer
    assert {r.status for r in store.resources()} == {"UP"}


def test_a_corrupt_store_is_reported_with_its_backup_and_a_new_one_starts(tmp_path):
    path = tmp_path / "state.db"
    StateStore(path).record_creating("sagemaker:model", "m", "d", "p")
    path.write_bytes(b"SQLite format 3\x00" + os.urandom(4096))  # a torn, garbled file
    for extra in ("state.db-wal", "state.db-shm"):
        (tmp_path / extra).unlink(missing_ok=True)
    with pytest.raises(StateError) as info:
        StateStore(path)
    message = str(info.value)
    backups = list(tmp_path.glob("state.db.corrupt-*"))
    assert len(backups) == 1 and str(backups[0]) in message
    assert "not a valid database" in message and "llmship:* tags" in message
    assert backups[0].read_bytes().startswith(b"SQLite format 3")
    assert StateStore(path).resources() == []  # a new, empty store in its place
