"""`llmship train --target bedrock`: a Bedrock model customization job from the config.

In order, and nothing in AWS before the data passed: export and check the train and
validation splits (export.py), make the run directory, upload the two files, create or
reuse the service role (role.py), start CreateModelCustomizationJob (tags,
hyperparameters checked against the table, validation data, output prefix, optional
VPC), then poll it. The job and its custom model are recorded in the state store
before the create call, under the deployment `<project>-<run>` that `llmship deploy
--target bedrock` of the same run uses, so `destroy` removes them all. Ctrl-C while
polling asks the caller's `confirm` whether to stop the job (the CLI asks on a terminal;
nothing here prompts). On completion the job's metrics CSVs become the run's
metrics.jsonl and loss curve, as a local run has them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from llmship.aws.errors import aws_call
from llmship.aws.iam import call_with_new_role
from llmship.aws.role_grants import put_grant
from llmship.aws.session import client, make_session
from llmship.bedrock.facts import BaseModel, base_model, source
from llmship.bedrock.hosted import bedrock_tags
from llmship.bedrock.role import Prefixes, ensure_role, job_grant
from llmship.errors import AwsError, DeployError, TrainError
from llmship.progress import RecordingReporter, Reporter
from llmship.runs import RunDir
from llmship.state import Kind, StateStore, Status, state_path
from llmship.state import tags as llmship_tags

JOB_KIND = Kind.BEDROCK_CUSTOMIZATION_JOB
MODEL_KIND = Kind.BEDROCK_CUSTOM_MODEL


def hyperparameters(config, model: BaseModel) -> dict[str, str]:
    """hyperParameters for the job (strings, as the API takes them), each within range."""
    chosen = {
        "epochCount": (
            config.bedrock.epochs if config.bedrock.epochs is not None else config.train.epochs,
            "bedrock.epochs" if config.bedrock.epochs is not None else "train.epochs",
        ),
        "learningRate": (
            config.bedrock.learning_rate
            if config.bedrock.learning_rate is not None
            else config.train.learning_rate,
            "bedrock.learning_rate"
            if config.bedrock.learning_rate is not None
            else "train.learning_rate",
        ),
    }
    out: dict[str, str] = {}
    for name, bounds in model.hyperparameters.items():
        if name not in chosen:  # fixed by the model (batchSize 1) or left to its default
            if bounds.min == bounds.max:
                out[name] = _text(bounds.default, bounds.kind)
            continue
        value, key = chosen[name]
        if not bounds.min <= value <= bounds.max:
            raise DeployError(
                f"{key}: {value:g} is outside {model.name}'s {name} range "
                f"{bounds.min:g}-{bounds.max:g} (default {bounds.default:g}; "
                f"{source('hyperparameters')}); set bedrock.{_config_key(name)}"
            )
        out[name] = _text(value, bounds.kind)
    return out


def _text(value: float, kind: str) -> str:
    return str(int(value)) if kind == "int" else repr(float(value))


def _config_key(name: str) -> str:
    return {"epochCount": "epochs", "learningRate": "learning_rate"}.get(name, name)


def job_request(
    *,
    name: str,
    role_arn: str,
    model: BaseModel,
    params: dict[str, str],
    train_uri: str,
    validation_uri: str | None,
    output_uri: str,
    tags: dict[str, str],
    vpc,
) -> dict:
    """The exact CreateModelCustomizationJob request."""
    tag_list = bedrock_tags(tags)
    request = {
        "jobName": name,
        "customModelName": name,
        "roleArn": role_arn,
        "baseModelIdentifier": model.model_id,
        "customizationType": "FINE_TUNING",
        "jobTags": tag_list,
        "customModelTags": tag_list,
        "trainingDataConfig": {"s3Uri": train_uri},
        "outputDataConfig": {"s3Uri": output_uri},
        "hyperParameters": params,
    }
    if validation_uri:
        request["validationDataConfig"] = {"validators": [{"s3Uri": validation_uri}]}
    if vpc.subnets:
        request["vpcConfig"] = {
            "subnetIds": list(vpc.subnets),
            "securityGroupIds": list(vpc.security_groups),
        }
    return request


def keep_running(question: str) -> bool:
    """The answer when no one is asked whether to stop the job: leave it running."""
    return False


def train_on_bedrock(
    loaded,
    *,
    reporter: Reporter,
    output: Path | None = None,
    session=None,
    store: StateStore | None = None,
    sleep: Callable[[float], None] = time.sleep,
    confirm: Callable[[str], bool] = keep_running,
) -> RunDir:
    """Fine-tune on Bedrock; returns the run directory holding metrics and loss curve.
    `confirm` answers whether Ctrl-C while polling stops the job."""
    from llmship.aws.s3 import upload_file
    from llmship.bedrock.export import build_records, write_records
    from llmship.data.prepare import load_splits, write_channel
    from llmship.runs import new_run
    from llmship.sagemaker.names import default_name

    cfg = loaded.config
    model = base_model(cfg.bedrock.base_model_id)
    params = hyperparameters(cfg, model)
    if not cfg.aws.bucket:
        raise DeployError(
            "aws.bucket is not set: the training data is uploaded there for Bedrock; run "
            "`llmship aws bootstrap` or set aws.bucket"
        )
    splits = load_splits(loaded)
    records = build_records(
        dict(splits.items()),
        prompt_template=cfg.data.prompt_template,
        output_field=cfg.data.output_field,
        system_prompt=cfg.data.system_prompt,
        model=model,
    )
    session = session or make_session(cfg.aws)
    if session.region_name not in model.regions:
        raise DeployError(
            f"aws.region: {model.name} is customized in {', '.join(model.regions)}, not "
            f"{session.region_name} ({source('hyperparameters')}); set aws.region"
        )
    store = (store or StateStore()).owned_by("bedrock")  # its destroy deletes the model
    run = new_run(loaded, output)
    for split, rows in splits.items():
        write_channel(rows, run.channel(split), split)
    _write_model_info(run, cfg)
    files = write_records(records, run.root / "data" / "bedrock")
    name = default_name(cfg.project.name, run.run_id)
    prefixes = Prefixes(cfg.aws.bucket, cfg.project.name)
    s3 = client(session, "s3")
    uris = {}
    for split, path in files.items():
        key = f"{prefixes.input}{run.run_id}/{split}.jsonl"
        upload_file(s3, path, cfg.aws.bucket, key, state_path().parent / "uploads", reporter)
        uris[split] = prefixes.uri(key)
    role_arn = cfg.bedrock.role_arn or ensure_role(
        session, prefixes=prefixes, deployment=name, run_id=run.run_id, store=store
    )
    output_uri = prefixes.uri(f"{prefixes.output}{run.run_id}/")
    request = job_request(
        name=name,
        role_arn=role_arn,
        model=model,
        params=params,
        train_uri=uris["train"],
        validation_uri=uris.get("validation"),
        output_uri=output_uri,
        tags=llmship_tags(cfg.project.name, name, run.run_id),
        vpc=cfg.bedrock.vpc,
    )
    region = session.region_name
    bedrock = client(session, "bedrock")
    details = {"run_id": run.run_id, "base_model": model.model_id, "role": role_arn}
    store.record_creating(JOB_KIND, name, name, cfg.project.name, region, details)
    store.record_creating(MODEL_KIND, name, name, cfg.project.name, region, details)
    grant = job_grant(
        session,
        role_arn,
        command="bedrock-train",
        deployment=name,
        vpc=cfg.bedrock.vpc,
        job="model-customization-job",
    )
    if grant is not None:
        put_grant(
            client(session, "iam"), grant, store=store, deployment=name, project=cfg.project.name
        )
    from botocore.exceptions import ClientError

    refused = False
    try:
        with aws_call("bedrock", "CreateModelCustomizationJob", name):
            try:
                arn = call_with_new_role(
                    lambda: bedrock.create_model_customization_job(**request),
                    role_arn=role_arn,
                    service="bedrock",
                    operation="CreateModelCustomizationJob",
                    resource=name,
                    sleep=sleep,
                )["jobArn"]
            except (ClientError, AwsError):  # AWS answered no (or never took the role)
                refused = True
                raise
    except AwsError:
        # Only a refusal forgets the records: a call with no answer (a read timeout) may have
        # created the job, which `destroy` then finds by name.
        if refused:
            store.remove(JOB_KIND, name, region)
            store.remove(MODEL_KIND, name, region)
        raise
    store.set_status(JOB_KIND, name, Status.UP, region, {"arn": arn, "output": output_uri})
    (run.root / "bedrock.json").write_text(
        json.dumps({"job_name": name, "job_arn": arn, "request": request}, indent=2) + "\n",
        encoding="utf-8",
    )
    reporter.message(f"customization job {name} started ({model.name}, {params})")
    job = wait_for_job(
        bedrock,
        name,
        reporter=reporter,
        poll_seconds=cfg.bedrock.poll_seconds,
        sleep=sleep,
        confirm=confirm,
    )
    store.set_status(MODEL_KIND, name, Status.UP, region, {"arn": job.get("outputModelArn", "")})
    _finish_run(s3, prefixes, run, job)
    return run


def wait_for_job(
    bedrock,
    name: str,
    *,
    reporter: Reporter | None = None,
    poll_seconds: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    confirm: Callable[[str], bool] = keep_running,
) -> dict:
    """Poll until the job completes; Failed prints Bedrock's failureMessage; Ctrl-C asks
    whether to stop the job (StopModelCustomizationJob) or leave it running."""
    reporter = reporter or RecordingReporter()
    last = None
    try:
        while True:
            with aws_call("bedrock", "GetModelCustomizationJob", name):
                job = bedrock.get_model_customization_job(jobIdentifier=name)
            status = job.get("status", "InProgress")
            if status != last:
                reporter.message(f"{name}: {status}")
                last = status
            if status == "Completed":
                return job
            if status == "Failed":
                raise TrainError(
                    f"customization job {name} failed: "
                    f"{job.get('failureMessage') or 'no reason given'}; fix the cause, then "
                    f"`llmship destroy {name}` and train again"
                )
            if status == "Stopped":
                raise TrainError(f"customization job {name} was stopped; `llmship destroy {name}`")
            sleep(poll_seconds)
    except KeyboardInterrupt:
        if confirm(f"Stop customization job {name}?"):
            with aws_call("bedrock", "StopModelCustomizationJob", name):
                bedrock.stop_model_customization_job(jobIdentifier=name)
            raise TrainError(
                f"customization job {name} is stopping; `llmship destroy {name}` removes it"
            ) from None
        raise TrainError(
            f"customization job {name} keeps running in Bedrock; `llmship status` shows it, "
            f"`llmship destroy {name}` stops and removes it"
        ) from None


def _write_model_info(run: RunDir, cfg) -> None:
    """model/llmship.json: how rows became prompts, for `llmship eval --target bedrock`
    (the weights stay in Bedrock)."""
    from llmship.models.info import MODEL_INFO

    run.model.mkdir(parents=True, exist_ok=True)
    info = {
        "kind": "causal",
        "prompt_format": {
            "kind": "causal",
            "prompt_template": cfg.data.prompt_template,
            "input_field": cfg.data.input_field,
            "output_field": cfg.data.output_field,
            "system_prompt": cfg.data.system_prompt,
            "use_chat_template": False,
        },
        "generation": cfg.eval.generation.model_dump(),
        "bedrock": {"base_model": cfg.bedrock.base_model_id},
    }
    (run.model / MODEL_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def _finish_run(s3, prefixes: Prefixes, run: RunDir, job: dict) -> None:
    from llmship.bedrock.metrics import write_run_metrics
    from llmship.train.plots import plot_loss

    key = f"{prefixes.output}{run.run_id}/"
    write_run_metrics(s3, prefixes.bucket, key, run.metrics)
    plot_loss(run.metrics, run.loss_plot)
    path = run.root / "bedrock.json"
    saved = json.loads(path.read_text(encoding="utf-8"))
    saved["custom_model_arn"] = job.get("outputModelArn")
    path.write_text(json.dumps(saved, indent=2) + "\n", encoding="utf-8")
