"""`llmship train --target sagemaker`: the run as a SageMaker training job, through boto3.

Plan (read-only: names, role, bucket, image, price) -> show -> confirm (the one flow,
llmship.target.carry_out; the caller renders and asks) -> upload the data
channels and the job's source (llmship + launcher + config + requirements.txt, see
source.py) -> store HF_TOKEN in Secrets Manager and let the execution role read exactly
that secret -> CreateTrainingJob -> poll DescribeTrainingJob while streaming the job's
CloudWatch logs -> record the model artifact's S3 URI.

Everything created is tagged (llmship:project, llmship:deployment, llmship:run) and
recorded in the state store before the call that creates it. The deployment is the
one `llmship deploy` would use for this run (deploy.name, else <project>-<run>), so
`llmship destroy` finds the job's resources beside the endpoint's. This module never
imports torch: the CLI prepares the run's data before calling submit().
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from llmship.aws.errors import aws_call, ignore_not_found
from llmship.aws.session import client, make_session
from llmship.aws.uris import s3_parts
from llmship.config.loader import LoadedConfig
from llmship.errors import DeployError, TrainError
from llmship.progress import RecordingReporter, Reporter
from llmship.runs import RunDir
from llmship.sagemaker.images import Image, training_image
from llmship.state import TAG_PREFIX, Kind, Resource, StateStore, Status, state_path, tag_list, tags
from llmship.train.source import CONFIG_NAME, PROGRAM, build_source_archive

JOB_KIND = Kind.SAGEMAKER_TRAINING_JOB  # the name tests and older callers import
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
CHECKPOINT_PATH = "/opt/ml/checkpoints"
CHANNELS = ("train", "validation")
MAX_SECONDS = 28 * 24 * 3600  # SageMaker's longest runtime (and spot wait)
TERMINAL = ("Completed", "Failed", "Stopped")
JOB_FILE = "job.json"
# What the entry point's LineReporter prints, for the SageMaker console's metric charts.
METRIC_DEFINITIONS = [
    {"Name": "train:loss", "Regex": r"train step \d+/\d+ loss ([0-9.eE+-]+)"},
    {"Name": "train:tokens_per_second", "Regex": r"tok_s ([0-9,.]+)"},
]
TOKEN_ENV = "HF_TOKEN"


@dataclass(frozen=True)
class JobPlan:
    """What submit() will create, resolved and checked without creating anything."""

    job_name: str
    deployment: str
    project: str
    run_id: str
    region: str
    bucket: str
    role_arn: str
    image: Image
    instance_type: str
    instance_count: int
    hourly_usd: float | None
    price_note: str
    max_runtime_s: int
    max_wait_s: int | None
    checkpoint_uri: str
    keep_alive_s: int | None
    grant: Any = None  # role_grants.RoleGrant: the execution role's extra policy, if any

    @property
    def prefix(self) -> str:
        """s3://bucket/llmship/<project>/<deployment>/training/<job>/: data, source, output."""
        return (
            f"s3://{self.bucket}/llmship/{self.project}/{self.deployment}/training/{self.job_name}/"
        )

    @property
    def tags(self) -> dict[str, str]:
        return tags(self.project, self.deployment, self.run_id)

    def describe(self) -> str:
        """The summary shown before asking to create (price included)."""
        hours = self.max_runtime_s / 3600
        lines = [
            f"training job {self.job_name} in {self.region}",
            f"  image      {self.image.uri}",
            f"             transformers {self.image.framework['transformers']}, PyTorch "
            f"{self.image.framework['pytorch']}",
            f"  instances  {self.instance_count} x {self.instance_type}, at most {hours:g} h"
            + (f" (spot: waits at most {self.max_wait_s / 3600:g} h)" if self.max_wait_s else ""),
            f"  checkpoints {self.checkpoint_uri}",
        ]
        if self.grant is not None:
            lines.append(f"  role grant {self.grant.record}: {self.grant.describe()}")
            lines += [f"  warning    {warning}" for warning in self.grant.warnings]
        lines.append(f"  price      {self.price}")
        return "\n".join(lines)

    @property
    def price(self) -> str:
        """Per hour and at most for the whole runtime, with where the price comes from."""
        if self.hourly_usd is None:
            return self.price_note
        hours = self.max_runtime_s / 3600 + (self.keep_alive_s or 0) / 3600
        return (
            f"${self.hourly_usd:.2f}/h on demand, at most ${self.hourly_usd * hours:,.2f} for "
            f"the whole runtime{' (spot bills less)' if self.max_wait_s else ''}; "
            f"{self.price_note}"
        )

    @property
    def question(self) -> str:
        """Asked before creating the job: its instances bill while it runs."""
        return f"Create training job {self.job_name} (billed while it runs: {self.price})?"

    def check(self) -> None:
        """Refuse a job whose execution role cannot be granted what it needs."""
        if self.grant is not None and self.grant.problems:
            raise DeployError("train.sagemaker: " + "; ".join(self.grant.problems))


@dataclass
class TrainingJob:
    """A finished (or failed) job."""

    name: str
    status: str
    model_data: str | None
    description: dict[str, Any] = field(repr=False, default_factory=dict)


def plan_job(
    loaded: LoadedConfig,
    run: RunDir,
    *,
    region: str,
    store: StateStore,
) -> JobPlan:
    """Names, role, bucket, image and price for training `run`; DeployError on a setting
    that cannot work, naming its key."""
    from llmship.sagemaker.cost import instance_cost
    from llmship.sagemaker.instances import price_source
    from llmship.sagemaker.names import new_version
    from llmship.target import request_for

    config = loaded.config
    settings, aws = config.train.sagemaker, config.aws
    if not aws.role_arn:
        raise DeployError(
            "aws.role_arn is not set: a training job runs as an execution role; run "
            "`llmship aws bootstrap` and set aws.role_arn to the role it prints"
        )
    if not aws.bucket:
        raise DeployError(
            "aws.bucket is not set: the data, source and model go there; run "
            "`llmship aws bootstrap` or set aws.bucket"
        )
    if settings.spot and settings.keep_alive_minutes:
        raise DeployError(
            "train.sagemaker.keep_alive_minutes: warm pools do not work with managed spot "
            "training; turn one of them off (train.sagemaker.spot)"
        )
    if TOKEN_ENV in settings.environment:
        raise DeployError(
            f"train.sagemaker.environment.{TOKEN_ENV}: DescribeTrainingJob would show it; set "
            "model.hf_token (or HF_TOKEN in the environment) and llmship passes it through "
            "Secrets Manager"
        )
    deployment = request_for(loaded, run).name
    taken = {r.name for r in store.resources() if r.kind == Kind.SAGEMAKER_TRAINING_JOB}
    job_name = new_version(deployment, lambda name: name in taken)
    image = training_image(region, settings.transformers_version)
    cost = instance_cost(settings.instance_type, settings.instance_count, region)
    runtime = min(round(settings.max_runtime_hours * 3600), MAX_SECONDS)
    max_wait = None
    if settings.spot:
        wanted = settings.max_wait_hours
        max_wait = round(wanted * 3600) if wanted else min(2 * runtime, MAX_SECONDS)
        max_wait = max(min(max_wait, MAX_SECONDS), runtime)
    checkpoint = settings.checkpoint_s3_uri or (
        f"s3://{aws.bucket}/llmship/{config.project.name}/{deployment}/checkpoints/{run.run_id}/"
    )
    note = (
        f"SageMaker hosting list price of {settings.instance_type} ({price_source()}); "
        "training prices may differ"
        if cost.hourly_usd is not None
        else cost.note
    )
    return JobPlan(
        job_name=job_name,
        deployment=deployment,
        project=config.project.name,
        run_id=run.run_id,
        region=region,
        bucket=aws.bucket,
        role_arn=aws.role_arn,
        image=image,
        instance_type=settings.instance_type,
        instance_count=settings.instance_count,
        hourly_usd=cost.hourly_usd,
        price_note=note,
        max_runtime_s=runtime,
        max_wait_s=max_wait,
        checkpoint_uri=checkpoint,
        keep_alive_s=settings.keep_alive_minutes * 60 if settings.keep_alive_minutes else None,
    )


def hyperparameters(loaded: LoadedConfig, toolkit: dict[str, Any]) -> dict[str, str]:
    """The job's hyperparameters, JSON-encoded as the training toolkit reads them: the
    toolkit's own (`toolkit`, sagemaker_*), the config file, and every train.* setting
    (visible in the console, and what a tuning job would vary). Never a secret."""
    values: dict[str, Any] = {**toolkit, "config": CONFIG_NAME}
    train = loaded.config.train.model_dump(mode="json", exclude={"target", "sagemaker"})
    values.update(_flatten(train, "train"))
    return {key: json.dumps(value) for key, value in values.items()}


def toolkit_hyperparameters(plan: JobPlan, source_uri: str) -> dict[str, Any]:
    """What the training toolkit in the container reads: the program and its source."""
    return {
        "sagemaker_program": PROGRAM,
        "sagemaker_submit_directory": source_uri,
        "sagemaker_region": plan.region,
        "sagemaker_container_log_level": 20,
        "sagemaker_job_name": plan.job_name,
    }


def _flatten(tree: dict[str, Any], prefix: str) -> Iterator[tuple[str, Any]]:
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}.{key}")
        else:
            yield f"{prefix}.{key}", value


def job_request(
    loaded: LoadedConfig,
    plan: JobPlan,
    *,
    channels: dict[str, str],
    source_uri: str,
    secret_env: dict[str, str],
) -> dict[str, Any]:
    """The CreateTrainingJob request (pure: the tests read it field by field)."""
    settings = loaded.config.train.sagemaker
    resources: dict[str, Any] = {
        "InstanceType": plan.instance_type,
        "InstanceCount": plan.instance_count,
        "VolumeSizeInGB": settings.volume_size_gb,
    }
    if plan.keep_alive_s:
        resources["KeepAlivePeriodInSeconds"] = plan.keep_alive_s
    stopping: dict[str, int] = {"MaxRuntimeInSeconds": plan.max_runtime_s}
    if plan.max_wait_s:
        stopping["MaxWaitTimeInSeconds"] = plan.max_wait_s
    request: dict[str, Any] = {
        "TrainingJobName": plan.job_name,
        "RoleArn": plan.role_arn,
        "AlgorithmSpecification": {
            "TrainingImage": plan.image.uri,
            "TrainingInputMode": "File",
            "MetricDefinitions": METRIC_DEFINITIONS,
        },
        "HyperParameters": hyperparameters(loaded, toolkit_hyperparameters(plan, source_uri)),
        "InputDataConfig": [
            {
                "ChannelName": name,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": uri,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                "InputMode": "File",
            }
            for name, uri in channels.items()
        ],
        "OutputDataConfig": {"S3OutputPath": f"{plan.prefix}output"},
        "ResourceConfig": resources,
        "StoppingCondition": stopping,
        "EnableManagedSpotTraining": plan.max_wait_s is not None,
        "CheckpointConfig": {"S3Uri": plan.checkpoint_uri, "LocalPath": CHECKPOINT_PATH},
        "Environment": {**settings.environment, **secret_env},
        "Tags": tag_list(plan.tags),
    }
    if settings.vpc.subnets:
        request["VpcConfig"] = {
            "SecurityGroupIds": list(settings.vpc.security_groups),
            "Subnets": list(settings.vpc.subnets),
        }
    return request


def hf_token(loaded: LoadedConfig) -> str | None:
    """model.hf_token, else HF_TOKEN from this environment (None: no token needed)."""
    token = loaded.config.model.hf_token
    return token.get_secret_value() if token else os.environ.get(TOKEN_ENV) or None


def submit(
    loaded: LoadedConfig,
    run: RunDir,
    *,
    reporter: Reporter | None = None,
    show: Callable[[JobPlan], None] = lambda plan: None,
    confirm: Callable[[str], bool] = lambda question: True,
    session=None,
    store: StateStore | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> TrainingJob | None:
    """Train `run` (its data already prepared in run/data) as a SageMaker training job and
    wait for it, through the one flow (target.carry_out): `show` gets the plan, `confirm`
    its question (the price named); None when it declines. TrainError when the job fails."""
    from llmship.target import carry_out

    reporter = reporter or RecordingReporter()
    store = (store or StateStore()).owned_by("sagemaker")  # its destroy stops the job
    session = session or make_session(loaded.config.aws)
    if not any(run.channel("train").glob("*.jsonl")):
        raise TrainError(f"{run.channel('train')} holds no data; prepare the run's data first")
    plan = plan_job(loaded, run, region=session.region_name, store=store)
    plan = replace(plan, grant=_role_grant(session, loaded, plan))

    def apply(plan: JobPlan) -> TrainingJob:
        return _apply(plan, loaded, run, reporter, session, store, sleep, clock)

    return carry_out(plan, apply, show=show, confirm=confirm)


def _apply(
    plan: JobPlan,
    loaded: LoadedConfig,
    run: RunDir,
    reporter: Reporter,
    session,
    store: StateStore,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> TrainingJob:
    """Upload, grant, create the job (each recorded first) and wait for it to finish."""
    common = {"deployment": plan.deployment, "project": plan.project}
    s3 = client(session, "s3")
    from llmship.aws.s3 import ensure_bucket

    ensure_bucket(s3, plan.bucket, plan.region, {f"{TAG_PREFIX}project": plan.project})
    store.record_creating(Kind.S3_ARTIFACT, plan.prefix, region=plan.region, **common)
    channels = _upload_channels(s3, loaded, run, plan, reporter)
    source = build_source_archive(
        run.root / "source" / "sourcedir.tar.gz",
        loaded,
        plan.image.framework["pytorch"],
        plan.image.framework["transformers"],
    )
    source_uri = _upload(s3, source, f"{plan.prefix}source/sourcedir.tar.gz", reporter)
    store.set_status(Kind.S3_ARTIFACT, plan.prefix, Status.UP, plan.region)
    if plan.grant is not None:  # before the job runs as the role
        from llmship.aws.role_grants import put_grant

        put_grant(client(session, "iam"), plan.grant, store=store, **common)
    secret_env = _pass_token(session, loaded, plan, store)
    request = job_request(
        loaded, plan, channels=channels, source_uri=source_uri, secret_env=secret_env
    )
    sm = client(session, "sagemaker")
    _create(sm, request, plan, store, sleep)
    _write_job_file(run, plan, None, "InProgress")
    reporter.message(
        f"created training job {plan.job_name}; Ctrl-C stops watching, not the job "
        f"(`llmship destroy {plan.deployment}` stops it)"
    )
    description = wait_for_job(
        sm,
        client(session, "logs"),
        plan.job_name,
        reporter=reporter,
        poll_seconds=loaded.config.train.sagemaker.poll_seconds,
        sleep=sleep,
        clock=clock,
        store=store,
        region=plan.region,
    )
    model_data = description["ModelArtifacts"]["S3ModelArtifacts"]
    _write_job_file(run, plan, model_data, "Completed")
    return TrainingJob(plan.job_name, "Completed", model_data, description)


def _role_grant(session, loaded: LoadedConfig, plan: JobPlan):
    """What the execution role needs beyond the project bucket for this job: SageMaker's
    VPC permissions and a checkpoint_s3_uri in another bucket (read to resume, write to
    sync). Its problems (a bucket that does not exist) make the plan's check refuse it."""
    from llmship.aws.role_grants import execution_role_grant

    return execution_role_grant(
        session,
        plan.role_arn,
        command="train",
        deployment=plan.deployment,
        bucket=plan.bucket,
        vpc=loaded.config.train.sagemaker.vpc,
        data=[(plan.checkpoint_uri, "read-write")],
    )


def _upload(s3, path: Path, uri: str, reporter: Reporter) -> str:
    from llmship.aws.s3 import upload_file

    bucket, key = s3_parts(uri)
    upload_file(s3, path, bucket, key, state_path().parent / "uploads", reporter)
    return uri


def _upload_channels(s3, loaded, run: RunDir, plan: JobPlan, reporter) -> dict[str, str]:
    """train and validation from the run's prepared data; model when the base model is
    a local directory (the job cannot read this machine)."""
    uris = {}
    for split in CHANNELS:
        files = sorted(run.channel(split).glob("*.jsonl"))
        if not files:
            continue
        uri = f"{plan.prefix}data/{split}/"
        for path in files:
            _upload(s3, path, f"{uri}{path.name}", reporter)
        uris[split] = uri
    base = Path(loaded.resolve_path(loaded.config.model.name_or_path))
    if base.is_dir():
        uri = f"{plan.prefix}data/model/"
        for path in sorted(p for p in base.rglob("*") if p.is_file()):
            _upload(s3, path, f"{uri}{path.relative_to(base).as_posix()}", reporter)
        uris["model"] = uri
    return uris


def _pass_token(session, loaded, plan: JobPlan, store: StateStore) -> dict[str, str]:
    """HF_TOKEN into Secrets Manager, readable by the role; the job environment's entry
    (the secret's ARN only). Empty when there is no token."""
    from llmship.aws.secrets import ENV_PREFIX, grant_read, secret_name, store_secret

    token = hf_token(loaded)
    if not token:
        return {}
    common = {"deployment": plan.deployment, "project": plan.project}
    arn = store_secret(
        client(session, "secretsmanager"),
        secret_name(plan.project, plan.deployment, TOKEN_ENV),
        token,
        tags=plan.tags,
        store=store,
        region=plan.region,
        **common,
    )
    grant_read(client(session, "iam"), plan.role_arn, arn, store=store, **common)
    return {f"{ENV_PREFIX}{TOKEN_ENV}": arn}


def _create(sm, request: dict, plan: JobPlan, store: StateStore, sleep) -> None:
    from llmship.aws.iam import call_with_new_role

    details = {"image": plan.image.uri, "instance_type": plan.instance_type, "status": "Creating"}
    store.record_creating(
        Kind.SAGEMAKER_TRAINING_JOB,
        plan.job_name,
        plan.deployment,
        plan.project,
        plan.region,
        details,
    )
    with aws_call("sagemaker", "CreateTrainingJob", plan.job_name):
        call_with_new_role(
            lambda: sm.create_training_job(**request),
            role_arn=plan.role_arn,
            service="sagemaker",
            operation="CreateTrainingJob",
            resource=plan.job_name,
            sleep=sleep,
        )
    store.set_status(
        Kind.SAGEMAKER_TRAINING_JOB, plan.job_name, Status.UP, plan.region, {"status": "InProgress"}
    )


def _write_job_file(run: RunDir, plan: JobPlan, model_data: str | None, status: str) -> None:
    record = {
        "job_name": plan.job_name,
        "region": plan.region,
        "deployment": plan.deployment,
        "image": plan.image.uri,
        "status": status,
        "model_data": model_data,
    }
    (run.root / JOB_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


class JobLogs:
    """New lines of a training job's CloudWatch streams (`<job>/algo-N-<epoch>`), in
    order per stream; nothing (not an error) before the group or streams exist."""

    def __init__(self, logs, job_name: str):
        self.logs, self.job_name = logs, job_name
        self.tokens: dict[str, str | None] = {}

    def poll(self) -> list[str]:
        lines: list[str] = []
        with ignore_not_found("logs", "GetLogEvents", f"{LOG_GROUP} {self.job_name}"):
            streams = [
                s["logStreamName"]
                for page in self.logs.get_paginator("describe_log_streams").paginate(
                    logGroupName=LOG_GROUP, logStreamNamePrefix=f"{self.job_name}/"
                )
                for s in page.get("logStreams", [])
            ]
            for stream in sorted(streams):
                lines += self._read(stream, len(streams) > 1)
        return lines

    def _read(self, stream: str, label: bool) -> list[str]:
        host = stream.split("/", 1)[-1].rsplit("-", 1)[0]
        lines = []
        while True:
            options: dict[str, Any] = {
                "logGroupName": LOG_GROUP,
                "logStreamName": stream,
                "startFromHead": True,
            }
            if self.tokens.get(stream):
                options["nextToken"] = self.tokens[stream]
            page = self.logs.get_log_events(**options)
            for event in page.get("events", []):
                text = event["message"].rstrip("\n")
                lines.append(f"[{host}] {text}" if label else text)
            token = page.get("nextForwardToken")
            if not page.get("events") or token == self.tokens.get(stream):
                self.tokens[stream] = token
                return lines
            self.tokens[stream] = token


def wait_for_job(
    sm,
    logs,
    name: str,
    *,
    reporter: Reporter | None = None,
    poll_seconds: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    store: StateStore | None = None,
    region: str = "",
    tail: int = 30,
) -> dict:
    """Poll until the job ends, printing its status changes and its log lines; the final
    description when it Completed, else TrainError with FailureReason and the last
    `tail` log lines. The state record gets the outcome (and model_data)."""
    reporter = reporter or RecordingReporter()
    stream, last_lines = JobLogs(logs, name), deque(maxlen=tail)
    started, seen = clock(), None
    while True:
        with aws_call("sagemaker", "DescribeTrainingJob", name):
            found = sm.describe_training_job(TrainingJobName=name)
        status, secondary = found["TrainingJobStatus"], found.get("SecondaryStatus", "")
        if (status, secondary) != seen:
            reporter.message(f"{name}: {status} ({secondary}) after {clock() - started:.0f} s")
            seen = (status, secondary)
        for line in stream.poll():
            reporter.message(line)
            last_lines.append(line)
        if status in TERMINAL:
            break
        sleep(poll_seconds)
    model_data = found.get("ModelArtifacts", {}).get("S3ModelArtifacts")
    if store is not None:
        details = {"status": status}
        if status == "Completed":
            details["model_data"] = model_data
        if found.get("FailureReason"):
            details["failure_reason"] = found["FailureReason"]
        store.set_status(Kind.SAGEMAKER_TRAINING_JOB, name, Status.UP, region, details)
    if status == "Completed":
        return found
    reason = found.get("FailureReason") or "no FailureReason given"
    shown = "\n    ".join(last_lines) or f"(no log lines in {LOG_GROUP} for {name})"
    raise TrainError(
        f"training job {name} {status.lower()}: {reason}\n  last log lines:\n    {shown}"
    )


def latest_artifact(store: StateStore, project: str) -> str | None:
    """The S3 URI of the newest successful training job's model.tar.gz in `project`."""
    done = [
        r
        for r in store.resources(project=project)
        if r.kind == Kind.SAGEMAKER_TRAINING_JOB and r.details.get("model_data")
    ]
    return done[-1].details["model_data"] if done else None


def stop_jobs(
    store: StateStore,
    resources: list[Resource],
    sagemaker_for: Callable[[str | None], Any],
    poll_s: float = 10.0,
) -> list[str]:
    """`destroy` of the training jobs among `resources`: each still running is stopped and
    waited for (a job cannot be deleted, only stopped), then its record goes. The client
    comes from `sagemaker_for(region)`; returns "<kind> <name>" for each job ended."""
    ended = []
    for job in [r for r in resources if r.kind == Kind.SAGEMAKER_TRAINING_JOB]:
        store.set_status(job.kind, job.name, Status.DELETING, job.region)
        stop_job(sagemaker_for(job.region or None), job.name, poll_s)
        store.remove(job.kind, job.name, job.region)
        ended.append(f"{Kind.SAGEMAKER_TRAINING_JOB} {job.name}")
    return ended


def stop_job(sm, name: str, poll_s: float) -> None:
    """Stop job `name` if it runs and wait until it has ended. A job SageMaker does not
    know (its create was refused, or never returned) has nothing to stop."""
    with ignore_not_found("sagemaker", "DescribeTrainingJob", name):
        status = sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"]
        if status == "InProgress":
            with ignore_not_found("sagemaker", "StopTrainingJob", name):
                sm.stop_training_job(TrainingJobName=name)
        while status in ("InProgress", "Stopping"):
            time.sleep(poll_s)
            status = sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"]
