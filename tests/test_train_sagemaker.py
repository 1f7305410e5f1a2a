"""`llmship train --target sagemaker` against moto in server mode: the CreateTrainingJob
request field by field (captured as boto3 sends it), the uploads, spot and checkpoint
settings, the HF_TOKEN path through Secrets Manager, state records, and the job source.

moto completes a training job the moment it is created and has no failing jobs, so the
polling and failure tests put botocore's Stubber on a real sagemaker client for
DescribeTrainingJob (the log lines come from moto's CloudWatch Logs).
"""

from __future__ import annotations

import contextlib
import json
import tarfile
import time
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from helpers import make_config
from llmship.aws.secrets import ENV_PREFIX, SECRET_KIND, load_secrets_into
from llmship.errors import ConfigError, DeployError, TrainError
from llmship.progress import RecordingReporter
from llmship.runs import new_run
from llmship.sagemaker.images import training_image
from llmship.sagemaker.training_contract import TrainingEnvironment
from llmship.state import StateStore
from llmship.train.distributed import Launch, launch_command, needs_launch, plan_launch
from llmship.train.sagemaker_job import (
    JOB_KIND,
    LOG_GROUP,
    latest_artifact,
    submit,
    wait_for_job,
)
from llmship.train.source import build_source_archive, requirements

REGION = "us-west-2"
TOKEN = "hf_SECRETtokenVALUE123"


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMSHIP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return tmp_path / "home"


def _role(name: str) -> str:
    iam = boto3.client("iam", region_name=REGION)
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sagemaker.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    return iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]


def _setup(tmp_path, **sagemaker):
    """A config and a run whose data is prepared (as the CLI prepares it)."""
    project = f"p{uuid.uuid4().hex[:8]}"
    role = _role(f"llmship-{project}-sagemaker")
    loaded = make_config(
        tmp_path,
        project={"name": project},
        model={"name_or_path": "example-org/tiny-model"},
        data={"source": "data.jsonl"},
        train={"max_steps": 7, "sagemaker": sagemaker} if sagemaker else {"max_steps": 7},
        aws={"region": REGION, "bucket": f"{project}-bucket", "role_arn": role},
    )
    run = new_run(loaded)
    for split, rows in (("train", 3), ("validation", 1)):
        run.channel(split).mkdir(parents=True)
        lines = [json.dumps({"dialogue": f"A: hi {i}", "summary": "hi"}) for i in range(rows)]
        (run.channel(split) / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    return loaded, run


def _capture(session) -> dict:
    """The CreateTrainingJob parameters exactly as boto3 sends them."""
    sent: dict = {}

    def keep(params, **_):
        sent.update(json.loads(json.dumps(params)))

    session.events.register("provide-client-params.sagemaker.CreateTrainingJob", keep)
    return sent


def _submit(loaded, run, **kwargs):
    session = boto3.Session(region_name=REGION)
    sent = _capture(session)
    reporter = RecordingReporter()
    job = submit(loaded, run, session=session, reporter=reporter, sleep=lambda s: None, **kwargs)
    return job, sent, reporter


def test_request_fields_uploads_and_state(aws_env, home, tmp_path):
    loaded, run = _setup(
        tmp_path,
        instance_type="ml.g5.12xlarge",
        instance_count=2,
        volume_size_gb=200,
        max_runtime_hours=3,
        keep_alive_minutes=10,
        transformers_version="4.49.0",
        environment={"NCCL_DEBUG": "INFO"},
        vpc={"subnets": ["subnet-1"], "security_groups": ["sg-1"]},
    )
    project = loaded.config.project.name
    job, sent, reporter = _submit(loaded, run)
    deployment = f"{project}-{run.run_id}"
    prefix = f"s3://{project}-bucket/llmship/{project}/{deployment}/training/{job.name}/"

    assert job.name.startswith(f"{deployment}-") and len(job.name) <= 63
    assert sent["TrainingJobName"] == job.name
    assert sent["RoleArn"] == loaded.config.aws.role_arn
    image = training_image(REGION, "4.49.0")
    assert sent["AlgorithmSpecification"]["TrainingImage"] == image.uri
    assert image.uri.endswith(
        "huggingface-pytorch-training:2.5.1-transformers4.49.0-gpu-py311-cu124-ubuntu22.04"
    )
    assert sent["AlgorithmSpecification"]["TrainingInputMode"] == "File"
    assert sent["ResourceConfig"] == {
        "InstanceType": "ml.g5.12xlarge",
        "InstanceCount": 2,
        "VolumeSizeInGB": 200,
        "KeepAlivePeriodInSeconds": 600,
    }
    assert sent["StoppingCondition"] == {"MaxRuntimeInSeconds": 3 * 3600}
    assert sent["EnableManagedSpotTraining"] is False
    assert sent["CheckpointConfig"] == {
        "S3Uri": f"s3://{project}-bucket/llmship/{project}/{deployment}/checkpoints/{run.run_id}/",
        "LocalPath": "/opt/ml/checkpoints",
    }
    assert sent["OutputDataConfig"] == {"S3OutputPath": f"{prefix}output"}
    assert sent["VpcConfig"] == {"SecurityGroupIds": ["sg-1"], "Subnets": ["subnet-1"]}
    assert sent["Environment"] == {"NCCL_DEBUG": "INFO"}
    assert {t["Key"]: t["Value"] for t in sent["Tags"]} == {
        "llmship:project": project,
        "llmship:deployment": deployment,
        "llmship:run": run.run_id,
    }
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"] for c in sent["InputDataConfig"]}
    assert channels == {
        name: {
            "S3DataType": "S3Prefix",
            "S3Uri": f"{prefix}data/{name}/",
            "S3DataDistributionType": "FullyReplicated",
        }
        for name in ("train", "validation")
    }
    hps = {key: json.loads(value) for key, value in sent["HyperParameters"].items()}
    assert hps["sagemaker_program"] == "llmship_train.py"
    assert hps["sagemaker_submit_directory"] == f"{prefix}source/sourcedir.tar.gz"
    assert hps["config"] == "llmship.yaml"
    assert hps["train.max_steps"] == 7 and hps["train.lora.r"] == 16
    assert not any(key.startswith("train.sagemaker") for key in hps)

    # what was uploaded is what the channels and the toolkit point at
    s3 = boto3.client("s3", region_name=REGION)
    keys = {
        o["Key"]
        for o in s3.list_objects_v2(Bucket=f"{project}-bucket")["Contents"]
        if o["Key"].startswith(f"llmship/{project}/")
    }
    base = prefix.removeprefix(f"s3://{project}-bucket/")
    assert keys == {
        f"{base}data/train/train.jsonl",
        f"{base}data/validation/validation.jsonl",
        f"{base}source/sourcedir.tar.gz",
    }
    body = s3.get_object(Bucket=f"{project}-bucket", Key=f"{base}data/train/train.jsonl")
    assert body["Body"].read() == (run.channel("train") / "train.jsonl").read_bytes()

    # state: the job, with its artifact; latest_artifact finds it; the run records it
    store = StateStore()
    jobs = [r for r in store.resources(deployment) if r.kind == JOB_KIND]
    assert [(r.name, r.status, r.region) for r in jobs] == [(job.name, "UP", REGION)]
    assert (
        jobs[0].details["model_data"]
        == job.model_data
        == (f"{prefix}output/{job.name}/output/model.tar.gz")
    )
    assert latest_artifact(store, project) == job.model_data
    assert latest_artifact(store, "some-other-project") is None
    assert json.loads((run.root / "job.json").read_text())["model_data"] == job.model_data
    assert any("Completed" in str(e) for e in reporter.events)


def test_spot_checkpoints_and_describe(aws_env, home, tmp_path):
    loaded, run = _setup(tmp_path, spot=True, max_runtime_hours=2)
    job, sent, _ = _submit(loaded, run)
    assert sent["EnableManagedSpotTraining"] is True
    assert sent["StoppingCondition"] == {
        "MaxRuntimeInSeconds": 7200,
        "MaxWaitTimeInSeconds": 14400,  # default: twice the runtime
    }
    described = boto3.client("sagemaker", region_name=REGION).describe_training_job(
        TrainingJobName=job.name
    )
    assert described["EnableManagedSpotTraining"] is True
    assert described["CheckpointConfig"]["LocalPath"] == "/opt/ml/checkpoints"
    assert described["StoppingCondition"]["MaxWaitTimeInSeconds"] >= 7200


def test_spot_wait_below_runtime_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="max_wait_hours"):
        make_config(
            tmp_path,
            model={"name_or_path": "x"},
            data={"source": "d.jsonl"},
            train={"sagemaker": {"spot": True, "max_runtime_hours": 5, "max_wait_hours": 4}},
        )


def test_token_goes_through_secrets_manager_only(aws_env, home, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    loaded, run = _setup(tmp_path)
    job, sent, reporter = _submit(loaded, run)
    project = loaded.config.project.name
    deployment = f"{project}-{run.run_id}"

    arn = sent["Environment"][f"{ENV_PREFIX}HF_TOKEN"]
    assert sent["Environment"] == {f"{ENV_PREFIX}HF_TOKEN": arn}
    assert TOKEN not in json.dumps(sent)
    described = boto3.client("sagemaker", region_name=REGION).describe_training_job(
        TrainingJobName=job.name
    )
    assert TOKEN not in json.dumps(described, default=str)
    assert TOKEN not in json.dumps(reporter.events)

    secrets = boto3.client("secretsmanager", region_name=REGION)
    found = secrets.describe_secret(SecretId=arn)
    assert found["Name"] == f"llmship/{project}/{deployment}/hf-token"
    assert {t["Key"]: t["Value"] for t in found["Tags"]}["llmship:deployment"] == deployment
    store = StateStore()
    assert [r.name for r in store.resources(deployment) if r.kind == SECRET_KIND] == [found["Name"]]
    # the role may read exactly that secret
    role = loaded.config.aws.role_arn.rsplit("/", 1)[-1]
    iam = boto3.client("iam", region_name=REGION)
    policy = iam.get_role_policy(RoleName=role, PolicyName=f"llmship-secret-{deployment}")
    statements = policy["PolicyDocument"]["Statement"]
    assert statements == [
        {
            "Sid": "ReadOneSecret",
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": arn,
        }
    ]
    # inside the job, the entry point puts the value into its own environment
    environ = {f"{ENV_PREFIX}HF_TOKEN": arn}
    assert load_secrets_into(environ, client=secrets) == ["HF_TOKEN"]
    assert environ["HF_TOKEN"] == TOKEN
    # and the shipped config refers to it, never holds it
    archive = run.root / "source" / "sourcedir.tar.gz"
    with tarfile.open(archive) as tar:
        shipped = tar.extractfile("llmship.yaml").read().decode()
    assert TOKEN not in shipped


def test_config_token_is_never_shipped(tmp_path):
    from llmship.config.loader import load_config_dict

    tree = {
        "model": {"name_or_path": "org/m", "hf_token": "${MY_TOKEN}"},
        "data": {"source": "d.jsonl"},
    }
    loaded = load_config_dict(tree, base_dir=tmp_path, env={"MY_TOKEN": TOKEN})
    assert loaded.config.model.hf_token.get_secret_value() == TOKEN
    out = build_source_archive(tmp_path / "src.tar.gz", loaded, "2.9.0", "5.3.0")
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
        shipped = tar.extractfile("llmship.yaml").read().decode()
        reqs = tar.extractfile("requirements.txt").read().decode()
    assert {"llmship_train.py", "llmship/train/entrypoint.py", "requirements.txt"} <= names
    assert not any("__pycache__" in n for n in names)
    assert TOKEN not in shipped and "${HF_TOKEN:-}" in shipped
    assert "torch==2.9.0\n" in reqs and "transformers==5.3.0\n" in reqs


def test_requirements_pin_the_image_versions():
    for version in ("4.49.0", "4.55.0", "4.56.2", "5.3.0"):
        framework = training_image(REGION, version).framework
        text = requirements(framework["pytorch"], framework["transformers"])
        pins = [line for line in text.splitlines() if "==" in line]
        assert pins == [f"torch=={framework['pytorch']}", f"transformers=={version}"]
        assert {"peft>=0.14", "pydantic>=2.7,<3", "python-dotenv>=1.0"} <= set(text.splitlines())
    assert training_image(REGION).version == "5.3.0"
    with pytest.raises(DeployError, match=r"train\.sagemaker\.transformers_version"):
        training_image(REGION, "4.51.3")
    assert "bitsandbytes" in requirements("2.9.0", "5.3.0", "qlora")


def test_plan_errors_name_the_setting(aws_env, home, tmp_path):
    loaded, run = _setup(tmp_path, spot=True, keep_alive_minutes=5)
    with pytest.raises(DeployError, match="keep_alive_minutes"):
        _submit(loaded, run)
    loaded, run = _setup(tmp_path / "b", environment={"HF_TOKEN": "x"})
    with pytest.raises(DeployError, match=r"environment\.HF_TOKEN"):
        _submit(loaded, run)
    tree = {**loaded.snapshot, "aws": {"region": REGION, "bucket": "b"}}
    from llmship.config.loader import load_config_dict

    with pytest.raises(DeployError, match=r"aws\.role_arn"):
        _submit(load_config_dict(tree, base_dir=tmp_path / "b"), run)
    assert StateStore().resources() == []


def test_declined_creates_nothing(aws_env, home, tmp_path):
    loaded, run = _setup(tmp_path)
    shown = []
    job, _, _ = _submit(loaded, run, confirm=lambda summary: shown.append(summary) or False)
    assert job is None
    assert "training prices may differ" in shown[0] and "/h" in shown[0]
    assert StateStore().resources() == []


def _put_logs(job: str, lines: list[str]) -> None:
    logs = boto3.client("logs", region_name=REGION)
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=LOG_GROUP)
    stream = f"{job}/algo-1-1700000000"
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
    now = int(time.time() * 1000)  # CloudWatch refuses events older than 14 days
    logs.put_log_events(
        logGroupName=LOG_GROUP,
        logStreamName=stream,
        logEvents=[{"timestamp": now + i, "message": m} for i, m in enumerate(lines)],
    )


def _described(name: str, status: str, secondary: str, **extra) -> dict:
    return {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:123456789012:training-job/{name}",
        "TrainingJobStatus": status,
        "SecondaryStatus": secondary,
        "AlgorithmSpecification": {"TrainingInputMode": "File"},
        "ModelArtifacts": {"S3ModelArtifacts": extra.pop("model", "")},
        "ResourceConfig": {"InstanceType": "ml.g5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
        "CreationTime": 0,
        **extra,
    }


def _stubbed(name: str, answers: list[dict]):
    sm = boto3.client("sagemaker", region_name=REGION)
    stub = Stubber(sm)
    for answer in answers:
        stub.add_response("describe_training_job", answer, {"TrainingJobName": name})
    stub.activate()
    return sm, stub


def test_polling_streams_status_and_logs(aws_env, home):
    name = f"job-{uuid.uuid4().hex[:8]}"
    _put_logs(name, ["train step 1/2 loss 2.0", "train step 2/2 loss 1.5"])
    store = StateStore()
    store.record_creating(JOB_KIND, name, "dep", "proj", REGION)
    model = f"s3://b/{name}/output/model.tar.gz"
    sm, stub = _stubbed(
        name,
        [
            _described(name, "InProgress", "Starting"),
            _described(name, "InProgress", "Training"),
            _described(name, "Completed", "Completed", model=model),
        ],
    )
    sleeps, reporter = [], RecordingReporter()
    found = wait_for_job(
        sm,
        boto3.client("logs", region_name=REGION),
        name,
        reporter=reporter,
        poll_seconds=7,
        sleep=sleeps.append,
        store=store,
        region=REGION,
    )
    stub.assert_no_pending_responses()
    assert found["TrainingJobStatus"] == "Completed" and sleeps == [7, 7]
    messages = [text for kind, text in reporter.events if kind == "message"]
    assert [m.split(" after")[0] for m in messages if m.startswith(name)] == [
        f"{name}: InProgress (Starting)",
        f"{name}: InProgress (Training)",
        f"{name}: Completed (Completed)",
    ]
    assert messages.count("train step 2/2 loss 1.5") == 1  # each line once, in order
    assert messages.index("train step 1/2 loss 2.0") < messages.index("train step 2/2 loss 1.5")
    assert store.resources("dep")[0].details["model_data"] == model
    assert latest_artifact(store, "proj") == model


def test_failed_job_shows_reason_and_last_log_lines(aws_env, home):
    name = f"job-{uuid.uuid4().hex[:8]}"
    _put_logs(name, [f"line {i}" for i in range(40)] + ["CUDA out of memory"])
    store = StateStore()
    store.record_creating(JOB_KIND, name, "dep", "proj", REGION)
    reason = "AlgorithmError: ExecuteUserScriptError: exit code 1"
    sm, _ = _stubbed(
        name,
        [
            _described(name, "InProgress", "Training"),
            _described(name, "Failed", "Failed", FailureReason=reason),
        ],
    )
    with pytest.raises(TrainError) as caught:
        wait_for_job(
            sm,
            boto3.client("logs", region_name=REGION),
            name,
            sleep=lambda s: None,
            store=store,
            region=REGION,
            tail=5,
        )
    text = str(caught.value)
    assert reason in text and "CUDA out of memory" in text and "line 37" in text
    assert "line 35" not in text  # only the last 5 lines
    record = store.resources("dep")[0]
    assert record.details["failure_reason"] == reason and "model_data" not in record.details
    assert latest_artifact(store, "proj") is None


@pytest.mark.parametrize(
    ("hosts", "gpus", "current", "expected"),
    [
        (["algo-1"], 1, "algo-1", None),
        (["algo-1"], 8, "algo-1", (1, 8, 0, "127.0.0.1")),
        (["algo-1", "algo-2"], 8, "algo-2", (2, 8, 1, "algo-1")),
    ],
)
def test_launch_command(hosts, gpus, current, expected, tmp_path):
    env = TrainingEnvironment.from_environ(
        {
            "SM_HOSTS": json.dumps(hosts),
            "SM_CURRENT_HOST": current,
            "SM_NUM_GPUS": str(gpus),
            "SM_MODEL_DIR": str(tmp_path),
        }
    )
    launch = plan_launch(env)
    if expected is None:
        assert launch == Launch(1, 1, 0, "127.0.0.1") and not needs_launch(launch, {})
        return
    nnodes, nproc, rank, master = expected
    assert needs_launch(launch, {}) and not needs_launch(launch, {"LOCAL_RANK": "0"})
    command = launch_command(launch, ["--config", "llmship.yaml"], python="py")
    assert command == [
        "py",
        "-m",
        "torch.distributed.run",
        f"--nnodes={nnodes}",
        f"--nproc_per_node={nproc}",
        f"--node_rank={rank}",
        f"--master_addr={master}",
        "--master_port=29500",
        "-m",
        "llmship.train.entrypoint",
        "--config",
        "llmship.yaml",
    ]
    assert launch.world_size == nnodes * nproc


@pytest.mark.slow
def test_cli_target_sagemaker(aws_env, home, tmp_path, tiny_llama, samsum_file):
    from typer.testing import CliRunner

    from llmship.cli import app

    project = f"c{uuid.uuid4().hex[:8]}"
    role = _role(f"llmship-{project}-sagemaker")
    config = tmp_path / "llmship.yaml"
    config.write_text(
        json.dumps(
            {
                "project": {"name": project},
                "model": {"name_or_path": str(tiny_llama), "max_length": 256},
                "data": {"source": str(samsum_file), "max_rows": 20},
                "train": {"target": "sagemaker", "sagemaker": {"poll_seconds": 1}},
                "aws": {"region": REGION, "bucket": f"{project}-bucket", "role_arn": role},
            }
        )
    )
    result = CliRunner().invoke(app, ["train", "--config", str(config), "--yes"])
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())  # rich wraps long lines
    assert "training prices may differ" in flat
    assert "permissions:" in flat  # the permission check is part of the job's plan
    recorded = StateStore().resources(project=project)
    assert sorted(r.kind for r in recorded) == ["s3:artifact", JOB_KIND]
    model_data = latest_artifact(StateStore(), project)
    assert "".join(result.output.split()).count(model_data) == 2  # the artifact, how to deploy
    # a local base model travels as the model channel
    s3 = boto3.client("s3", region_name=REGION)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=f"{project}-bucket")["Contents"]]
    assert any("/data/model/config.json" in k for k in keys)
    declined = CliRunner().invoke(
        app, ["train", "--config", str(config), "--python", "x"], input="n\n"
    )
    assert declined.exit_code != 0 and "local-container" in declined.output
    assert Path(config).is_file()


def test_destroy_removes_the_job_record_secret_and_grant(aws_env, home, tmp_path, monkeypatch):
    """`llmship destroy` of a trained run's deployment: the ended job's record, the
    HF_TOKEN secret and the role's read grant on it all go; a second destroy is a no-op."""
    from llmship.config.schema import AwsConfig
    from llmship.targets.sagemaker.target import SageMakerTarget

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    loaded, run = _setup(tmp_path)
    _submit(loaded, run)
    deployment = f"{loaded.config.project.name}-{run.run_id}"
    store = StateStore()
    kinds = {r.kind for r in store.resources(deployment)}
    assert {"sagemaker:training-job", SECRET_KIND, "iam:role-policy"} <= kinds
    target = SageMakerTarget(store, AwsConfig(region=REGION))
    deleted = target.destroy(deployment)
    assert {d.split()[0] for d in deleted} >= {"sagemaker:training-job", SECRET_KIND}
    assert not [r for r in store.resources(deployment) if r.kind != "s3:artifact"]
    secrets = boto3.client("secretsmanager", region_name=REGION)
    project = loaded.config.project.name
    names = [x["Name"] for x in secrets.list_secrets()["SecretList"]]
    assert not [n for n in names if n.startswith(f"llmship/{project}/")]
    role = loaded.config.aws.role_arn.rsplit("/", 1)[-1]
    iam = boto3.client("iam", region_name=REGION)
    assert iam.list_role_policies(RoleName=role)["PolicyNames"] == []
    assert target.destroy(deployment) == []


def test_destroy_stops_a_running_job_first(home, monkeypatch):
    """A job still running is stopped and waited for before its record goes (moto lacks
    StopTrainingJob: the exact calls are checked against the real service model)."""
    from llmship.config.schema import AwsConfig
    from llmship.targets.sagemaker.target import SageMakerTarget

    name = "p-run-1"
    store = StateStore()
    store.record_creating("sagemaker:training-job", name, "p-run", "p", REGION)
    store.set_status("sagemaker:training-job", name, "UP", REGION)
    sm, stub = _stubbed(name, [_described(name, "InProgress", "Training")])
    stub.add_response("stop_training_job", {}, {"TrainingJobName": name})
    for status, secondary in (("Stopping", "Stopping"), ("Stopped", "Stopped")):
        stub.add_response(
            "describe_training_job", _described(name, status, secondary), {"TrainingJobName": name}
        )
    target = SageMakerTarget(store, AwsConfig(region=REGION))
    target._clients[("sagemaker", REGION)] = sm
    slept: list[float] = []
    monkeypatch.setattr("llmship.train.sagemaker_job.time.sleep", slept.append)
    assert target.destroy("p-run") == [f"sagemaker:training-job {name}"]
    stub.assert_no_pending_responses()
    assert len(slept) == 2 and store.resources("p-run") == []
