"""Bedrock against moto in server mode where moto 5.2.5 implements it (customization
jobs, custom models, tags; S3 and IAM) and botocore's Stubber on real clients for what
it does not (provisioned throughput, custom model deployment, model import,
Converse, InvokeModel), asserting the exact request llmship sends. The Stubber answers
in order, so the destroy tests also assert the order of the calls. ConverseStream is
answered by a small local HTTP server speaking the real event-stream encoding, so the
real client parses it.
"""

from __future__ import annotations

import binascii
import io
import json
import struct
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from llmship.aws.s3 import ensure_bucket
from llmship.bedrock import facts
from llmship.bedrock.customize import JOB_KIND, MODEL_KIND, train_on_bedrock
from llmship.bedrock.hosted import DEPLOYMENT_KIND, IMPORT_JOB_KIND, IMPORTED_KIND, PT_KIND
from llmship.bedrock.invoke import converse, converse_generator, converse_stream
from llmship.bedrock.role import ROLE_KIND
from llmship.config.loader import load_config_dict
from llmship.config.schema import AwsConfig
from llmship.errors import DataError, DeployError, TrainError
from llmship.progress import RecordingReporter
from llmship.runs import RunDir
from llmship.target import recorded, request_for, target_of
from llmship.targets.bedrock.target import BedrockTarget
from llmship.targets.bedrock_import.target import BedrockImportTarget
from llmship.train.evaluation import evaluate, prompt_format_of

REGION = "us-west-2"
ACCOUNT = "123456789012"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
LLAMA = "meta.llama3-2-1b-instruct-v1:0:128k"


@pytest.fixture()
def bucket(session):
    name = f"llmship-bedrock-{time.time_ns()}"
    ensure_bucket(session.client("s3"), name, REGION, {})
    return name


def project_name() -> str:
    return f"br{time.time_ns() % 10**10}"


def rows(count: int) -> list[dict]:
    return [
        {"dialogue": f"Anna: lunch at {i}?\nBen: sure", "summary": f"Lunch at {i}."}
        for i in range(count)
    ]


def loaded_config(tmp_path, bucket, records=None, project=None, **sections):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (records or rows(120))))
    tree = {
        "project": {"name": project or project_name()},
        "model": {"name_or_path": "tiny"},
        "data": {
            "source": str(path),
            "system_prompt": "Summarize.",
            "validation_fraction": 0.1,
            "test_fraction": 0.05,
        },
        "train": {"epochs": 2, "learning_rate": 1e-4, "target": "bedrock"},
        "deploy": {"target": "bedrock"},
        "aws": {"region": REGION, "bucket": bucket},
        "eval": {"max_samples": 2, "batch_size": 1, "generation": {"max_new_tokens": 16}},
    }
    for name, values in sections.items():
        tree[name] = {**tree.get(name, {}), **values}
    return load_config_dict(tree, base_dir=tmp_path, env={})


def moto_jobs():
    from moto.bedrock.models import bedrock_backends

    return bedrock_backends[ACCOUNT][REGION].model_customization_jobs


TRAIN_CSV = (
    "step_number,epoch_number,training_loss,perplexity\n0,0,2.5,12.2\n1,0,2.0,7.4\n2,1,1.5,4.5\n"
)
VALIDATION_CSV = "step_number,epoch_number,validation_loss,perplexity\n2,1,1.7,5.5\n"


def finishing(session, project: str, status="Completed", failure=None):
    """A sleep that ends the project's job in moto (with its metrics CSVs in S3)."""

    def sleep(_seconds):
        job = next(
            j
            for j in moto_jobs().values()
            if j.job_name.startswith(project) and j.status == "InProgress"
        )
        bucket, _, prefix = job.output_data_config["s3Uri"].removeprefix("s3://").partition("/")
        base = f"{prefix}model-customization-job-abc123/"
        s3 = session.client("s3")
        s3.put_object(
            Bucket=bucket,
            Key=f"{base}training_artifacts/step_wise_training_metrics.csv",
            Body=TRAIN_CSV.encode(),
        )
        s3.put_object(
            Bucket=bucket,
            Key=f"{base}validation_artifacts/post_fine_tuning_validation/validation/"
            "validation_metrics.csv",
            Body=VALIDATION_CSV.encode(),
        )
        job.status = status
        if failure:
            job.failure_message = failure

    return sleep


def train(tmp_path, session, bucket, store, **kwargs):
    loaded = loaded_config(tmp_path, bucket, **kwargs)
    project = loaded.config.project.name
    run = train_on_bedrock(
        loaded,
        reporter=RecordingReporter(),
        session=session,
        store=store,
        sleep=finishing(session, project),
    )
    return loaded, run


def bedrock_target(store, session, cls=BedrockTarget, **options):
    return cls(store, AwsConfig(region=REGION), session=session, sleep=lambda s: None, **options)


# ---- customization job (moto) ---------------------------------------------------------


def test_train_on_bedrock_end_to_end(tmp_path, session, bucket, store):
    loaded, run = train(tmp_path, session, bucket, store)
    project = loaded.config.project.name
    name = f"{project}-{run.run_id}"
    job = moto_jobs()[name]
    # the request: base model, hyperparameters in range as strings, data and output, tags
    assert job.base_model_identifier == "meta.llama3-2-1b-instruct-v1:0:128k"
    assert job.hyper_parameters == {"epochCount": "2", "learningRate": "0.0001", "batchSize": "1"}
    assert job.customization_type == "FINE_TUNING"
    input_prefix = f"s3://{bucket}/llmship/{project}/bedrock/input/{run.run_id}/"
    assert job.training_data_config == {"s3Uri": input_prefix + "train.jsonl"}
    assert job.validation_data_config == {
        "validators": [{"s3Uri": input_prefix + "validation.jsonl"}]
    }
    assert job.output_data_config["s3Uri"].endswith(f"/bedrock/output/{run.run_id}/")
    tags = session.client("bedrock").list_tags_for_resource(resourceARN=job.job_arn)["tags"]
    assert {t["key"]: t["value"] for t in tags} == {
        "llmship:project": project,
        "llmship:deployment": name,
        "llmship:run": run.run_id,
    }
    # the uploaded training file is the checked conversation records
    body = (
        session.client("s3")
        .get_object(Bucket=bucket, Key=f"llmship/{project}/bedrock/input/{run.run_id}/train.jsonl")[
            "Body"
        ]
        .read()
    )
    first = json.loads(body.splitlines()[0])
    assert first["schemaVersion"] == "bedrock-conversation-2024"
    # the role: bedrock.amazonaws.com for this account's jobs, tagged
    role = session.client("iam").get_role(RoleName=f"llmship-{project}-bedrock")["Role"]
    statement = role["AssumeRolePolicyDocument"]["Statement"][0]
    assert statement["Principal"] == {"Service": "bedrock.amazonaws.com"}
    assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}
    assert (
        f"arn:aws:bedrock:{REGION}:{ACCOUNT}:model-customization-job/*"
        in statement["Condition"]["ArnEquals"]["aws:SourceArn"]
    )
    assert job.role_arn == role["Arn"]
    # state: job, custom model (with its ARN) and role, all UP under the run's deployment
    kinds = {(r.kind, r.status) for r in store.resources(name)}
    assert kinds == {(JOB_KIND, "UP"), (MODEL_KIND, "UP"), (ROLE_KIND, "UP")}
    model = next(r for r in store.resources(name) if r.kind == MODEL_KIND)
    assert model.details["arn"].endswith(f":custom-model/{name}-{name}")
    # metrics like a local run: steps from 1, training then validation, and a loss curve
    records = [json.loads(line) for line in run.metrics.read_text().splitlines()]
    assert records == [
        {"step": 1, "loss": 2.5, "epoch": 0, "perplexity": 12.2},
        {"step": 2, "loss": 2.0, "epoch": 0, "perplexity": 7.4},
        {"step": 3, "loss": 1.5, "epoch": 1, "perplexity": 4.5},
        {"step": 3, "eval_loss": 1.7, "epoch": 1, "perplexity": 5.5},
    ]
    assert run.loss_plot.stat().st_size > 1000
    assert target_of(store.resources(name)) == "bedrock"

    # destroy: custom model and role gone in AWS and in state; a rerun has nothing to do
    target = bedrock_target(store, session)
    deleted = target.destroy(name)
    assert f"{MODEL_KIND} {name}" in deleted and f"{ROLE_KIND} llmship-{project}-bedrock" in deleted
    assert store.resources(name) == []
    with pytest.raises(Exception, match="not found"):
        session.client("bedrock").get_custom_model(modelIdentifier=name)
    with pytest.raises(Exception, match=r"NoSuchEntity|cannot be found"):
        session.client("iam").get_role(RoleName=f"llmship-{project}-bedrock")
    assert target.destroy(name) == []


def test_role_is_reused_by_the_next_run(tmp_path, session, bucket, store):
    loaded, _first = train(tmp_path, session, bucket, store)
    project = loaded.config.project.name
    arn = session.client("iam").get_role(RoleName=f"llmship-{project}-bedrock")["Role"]["Arn"]
    _, second = train(tmp_path, session, bucket, store, project=project)
    assert moto_jobs()[f"{project}-{second.run_id}"].role_arn == arn
    roles = [r for r in store.resources() if r.kind == ROLE_KIND]
    assert len(roles) == 1


def test_failed_job_prints_its_failure_message(tmp_path, session, bucket, store):
    loaded = loaded_config(tmp_path, bucket)
    project = loaded.config.project.name
    sleep = finishing(session, project, "Failed", "Training data has a malformed record")
    with pytest.raises(TrainError, match="failed: Training data has a malformed record"):
        train_on_bedrock(
            loaded, reporter=RecordingReporter(), session=session, store=store, sleep=sleep
        )


@pytest.mark.parametrize("stop", [True, False])
def test_ctrl_c_asks_whether_to_stop(tmp_path, session, bucket, store, stop):
    loaded = loaded_config(tmp_path, bucket)
    project = loaded.config.project.name
    asked = []

    def interrupt(_seconds):
        raise KeyboardInterrupt

    def confirm(question):
        asked.append(question)
        return stop

    with pytest.raises(TrainError, match="is stopping" if stop else "keeps running"):
        train_on_bedrock(
            loaded,
            reporter=RecordingReporter(),
            session=session,
            store=store,
            sleep=interrupt,
            confirm=confirm,
        )
    job = next(j for j in moto_jobs().values() if j.job_name.startswith(project))
    assert asked == [f"Stop customization job {job.job_name}?"]
    assert job.status == ("Stopped" if stop else "InProgress")


def test_a_bad_row_uploads_nothing(tmp_path, session, bucket, store):
    data = rows(120)
    data[5]["summary"] = ""
    loaded = loaded_config(
        tmp_path, bucket, records=data, data={"validation_fraction": 0.0, "test_fraction": 0.0}
    )
    with pytest.raises(DataError, match=r"d\.jsonl:6: missing field 'summary'"):
        train_on_bedrock(loaded, reporter=RecordingReporter(), session=session, store=store)
    assert session.client("s3").list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    assert store.resources() == []
    assert not (tmp_path / "runs").exists()


def test_out_of_range_hyperparameter_names_the_key(tmp_path, session, bucket, store):
    loaded = loaded_config(tmp_path, bucket, bedrock={"epochs": 20})
    with pytest.raises(
        DeployError, match=r"bedrock\.epochs: 20 is outside .* epochCount range 1-10"
    ):
        train_on_bedrock(loaded, reporter=RecordingReporter(), session=session, store=store)
    assert store.resources() == []


# ---- hosting: plan (moto), provisioned throughput and deployment (Stubber) -------------


def pt_response(name, arn, model_arn, status):
    return {
        "modelUnits": 1,
        "desiredModelUnits": 1,
        "provisionedModelName": name,
        "provisionedModelArn": arn,
        "modelArn": model_arn,
        "desiredModelArn": model_arn,
        "foundationModelArn": f"arn:aws:bedrock:{REGION}::foundation-model/{LLAMA}",
        "status": status,
        "creationTime": NOW,
        "lastModifiedTime": NOW,
    }


def test_plan_creates_nothing_and_says_the_price_is_unknown(tmp_path, session, bucket, store):
    loaded, run = train(tmp_path, session, bucket, store)
    before = store.resources()
    target = bedrock_target(store, session)
    plan = target.plan(request_for(loaded, run))
    assert store.resources() == before
    assert plan.problems == []
    assert plan.kind == "provisioned throughput"
    assert [(a.verb, a.kind) for a in plan.actions] == [("keep", MODEL_KIND), ("create", PT_KIND)]
    assert plan.bills_hourly  # asks before apply although the price is unknown
    assert plan.cost.hourly_usd is None
    assert "https://aws.amazon.com/bedrock/pricing/" in plan.cost.describe()


def test_provisioned_cost_from_the_table():
    model = facts.base_model("meta.llama3-2-1b-instruct-v1:0:128k")
    priced = facts.BaseModel(
        **{**model.__dict__, "hourly_usd_per_model_unit": {"none": 21.18, "1-month": None}}
    )
    cost = BedrockTarget._provisioned_cost(priced, 2, "none")
    assert cost.hourly_usd == 42.36 and cost.monthly_usd == 30922.8
    with pytest.raises(DeployError, match=r"bedrock\.commitment: 3-years"):
        BedrockTarget._provisioned_cost(model, 1, "3-years")


def test_provisioned_throughput_apply_status_destroy(tmp_path, session, bucket, store):
    loaded, run = train(tmp_path, session, bucket, store, bedrock={"commitment": "1-month"})
    project, name = loaded.config.project.name, f"{loaded.config.project.name}-{run.run_id}"
    model_arn = session.client("bedrock").get_custom_model(modelIdentifier=name)["modelArn"]
    target = bedrock_target(store, session, now=lambda: time.time() + 7200)
    plan = target.plan(request_for(loaded, run))
    stubbed = session.client("bedrock")
    target._clients["bedrock"] = stubbed
    arn = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:provisioned-model/abcdefghijkl"
    tags = [
        {"key": "llmship:deployment", "value": name},
        {"key": "llmship:project", "value": project},
        {"key": "llmship:run", "value": run.run_id},
    ]
    with Stubber(stubbed) as stubber:
        stubber.add_response(
            "create_provisioned_model_throughput",
            {"provisionedModelArn": arn},
            {
                "modelUnits": 1,
                "provisionedModelName": name,
                "modelId": model_arn,
                "tags": tags,
                "commitmentDuration": "OneMonth",
            },
        )
        for status in ("Creating", "InService"):
            stubber.add_response(
                "get_provisioned_model_throughput",
                pt_response(name, arn, model_arn, status),
                {"provisionedModelId": arn},
            )
        deployed = target.apply(plan)
        stubber.assert_no_pending_responses()
    assert (deployed.address, deployed.status) == (arn, "InService")
    pt = next(r for r in store.resources(name) if r.kind == PT_KIND)
    assert pt.status == "UP" and pt.details["arn"] == arn and pt.details["commitment"] == "1-month"

    # status: live state; unknown price said with the pricing page
    with Stubber(stubbed) as stubber:
        stubber.add_response(
            "get_provisioned_model_throughput",
            pt_response(name, arn, model_arn, "InService"),
            {"provisionedModelId": arn},
        )
        row = target.status(name, store.resources(name))
    assert (row.state, row.instance, row.hourly_usd) == ("InService", "1 model unit(s)", None)
    assert "https://aws.amazon.com/bedrock/pricing/" in row.notes[0]

    # destroy, in order: job first (already done), throughput, custom model; then the role
    with Stubber(stubbed) as stubber:
        stubber.add_response(
            "get_model_customization_job",
            {
                "jobArn": f"arn:aws:bedrock:{REGION}:{ACCOUNT}:model-customization-job/x",
                "jobName": name,
                "outputModelName": name,
                "roleArn": f"arn:aws:iam::{ACCOUNT}:role/r",
                "status": "InProgress",
                "creationTime": NOW,
                "baseModelArn": pt_response(name, arn, model_arn, "x")["foundationModelArn"],
                "trainingDataConfig": {},
                "validationDataConfig": {"validators": []},
                "outputDataConfig": {"s3Uri": "s3://b/o/"},
            },
            {"jobIdentifier": name},
        )
        stubber.add_response("stop_model_customization_job", {}, {"jobIdentifier": name})
        stubber.add_response("delete_provisioned_model_throughput", {}, {"provisionedModelId": arn})
        stubber.add_response("delete_custom_model", {}, {"modelIdentifier": name})
        deleted = target.destroy(name)
        stubber.assert_no_pending_responses()
    assert deleted[:3] == [
        f"{JOB_KIND} {name} (stopped)",
        f"{PT_KIND} {name}",
        f"{MODEL_KIND} {name}",
    ]
    assert store.resources(name) == []


def test_on_demand_deployment_is_preferred_where_offered(
    tmp_path, session, bucket, store, monkeypatch
):
    loaded, run = train(tmp_path, session, bucket, store)
    name = f"{loaded.config.project.name}-{run.run_id}"
    model = facts.base_model("meta.llama3-2-1b-instruct-v1:0:128k")
    offered = facts.BaseModel(**{**model.__dict__, "on_demand_deployment": True})
    monkeypatch.setattr("llmship.targets.bedrock.target.base_model", lambda _id: offered)
    target = bedrock_target(store, session)
    plan = target.plan(request_for(loaded, run))
    assert plan.kind == "on-demand" and not plan.bills_hourly
    model_arn = session.client("bedrock").get_custom_model(modelIdentifier=name)["modelArn"]
    stubbed = session.client("bedrock")
    target._clients["bedrock"] = stubbed
    arn = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:custom-model-deployment/abcdefghijkl"
    with Stubber(stubbed) as stubber:
        stubber.add_response(
            "create_custom_model_deployment",
            {"customModelDeploymentArn": arn},
            {
                "modelDeploymentName": name,
                "modelArn": model_arn,
                "description": f"llmship deployment {name}",
                "tags": plan.spec.tags,
            },
        )
        stubber.add_response(
            "get_custom_model_deployment",
            {
                "customModelDeploymentArn": arn,
                "modelDeploymentName": name,
                "modelArn": model_arn,
                "createdAt": NOW,
                "status": "Active",
            },
            {"customModelDeploymentIdentifier": arn},
        )
        deployed = target.apply(plan)
    assert deployed.status == "Active"
    assert next(r for r in store.resources(name) if r.kind == DEPLOYMENT_KIND).details["arn"] == arn

    # invoke through the deployment: Converse with the HF payload's text, answered as HF
    runtime = session.client("bedrock-runtime")
    target._clients["bedrock-runtime"] = runtime
    with Stubber(runtime) as stubber:
        stubber.add_response(
            "converse",
            converse_answer("Lunch at 1."),
            {
                "modelId": arn,
                "messages": [{"role": "user", "content": [{"text": "Anna: lunch?"}]}],
                "inferenceConfig": {"maxTokens": 20, "temperature": 0.0},
            },
        )
        answer = target.invoke(
            name,
            json.dumps({"inputs": "Anna: lunch?", "parameters": {"max_new_tokens": 20}}).encode(),
        )
    assert json.loads(answer) == [{"generated_text": "Lunch at 1."}]


def test_on_demand_refused_where_not_offered(tmp_path, session, bucket, store):
    loaded, run = train(tmp_path, session, bucket, store, bedrock={"hosting": "on-demand"})
    plan = bedrock_target(store, session).plan(request_for(loaded, run))
    assert any("bedrock.hosting: on-demand deployment is not offered" in p for p in plan.problems)
    with pytest.raises(DeployError, match="cannot be created as planned"):
        plan.check()


def test_deploy_without_a_bedrock_run_says_what_to_do(tmp_path, store, session):
    loaded = loaded_config(tmp_path, "b")
    run = RunDir(tmp_path / "20260101-000000")
    with pytest.raises(DeployError, match="no Bedrock custom model is recorded for run"):
        bedrock_target(store, session).plan(request_for(loaded, run))


# ---- Converse, ConverseStream, eval ----------------------------------------------------


def converse_answer(text):
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 5, "outputTokens": 3, "totalTokens": 8},
        "metrics": {"latencyMs": 10},
    }


def test_converse_sends_system_and_inference():
    runtime = boto3.client(
        "bedrock-runtime", region_name=REGION, aws_access_key_id="a", aws_secret_access_key="b"
    )
    messages = [{"role": "user", "content": [{"text": "hi"}]}]
    with Stubber(runtime) as stubber:
        stubber.add_response(
            "converse",
            converse_answer("hello"),
            {
                "modelId": "arn:model",
                "messages": messages,
                "inferenceConfig": {"maxTokens": 7, "temperature": 0.5, "topP": 0.9},
                "system": [{"text": "be brief"}],
            },
        )
        response = converse(
            runtime,
            "arn:model",
            messages,
            system="be brief",
            inference={"maxTokens": 7, "temperature": 0.5, "topP": 0.9},
        )
    assert response["output"]["message"]["content"][0]["text"] == "hello"


def test_eval_through_bedrock_compares_in_its_own_report(tmp_path, session, bucket, store):
    loaded, run = train(tmp_path, session, bucket, store)
    cfg = loaded.config
    test_rows = [
        json.loads(line) for line in (run.channel("test") / "test.jsonl").read_text().splitlines()
    ]
    runtime = session.client("bedrock-runtime")
    with Stubber(runtime) as stubber:
        for row in test_rows[:2]:
            stubber.add_response(
                "converse",
                converse_answer(row["summary"]),
                {
                    "modelId": "arn:pt",
                    "messages": [
                        {
                            "role": "user",
                            "content": [{"text": f"Summarize this dialogue:\n{row['dialogue']}"}],
                        }
                    ],
                    "inferenceConfig": {"maxTokens": 16, "temperature": 0.0},
                    "system": [{"text": "Summarize."}],
                },
            )
        generator = converse_generator(
            runtime, "arn:pt", prompt_format_of(run), cfg.eval.generation, workers=1
        )
        report = evaluate(run, cfg.eval, generator=generator, target="bedrock-x")
        stubber.assert_no_pending_responses()
    assert report.rows == 2 and report.rouge1 == 1.0 and report.target == "bedrock-x"
    assert (run.root / "eval" / "bedrock-x" / "report.json").is_file()


def _event(event_type: str, payload: dict) -> bytes:
    """One message of the AWS event-stream encoding (what ConverseStream answers in)."""
    headers = b""
    for name, value in (
        (":message-type", "event"),
        (":event-type", event_type),
        (":content-type", "application/json"),
    ):
        raw = value.encode()
        headers += bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(raw)) + raw
    body = json.dumps(payload).encode()
    total = 12 + len(headers) + len(body) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + headers + body
    return message + struct.pack(">I", binascii.crc32(message) & 0xFFFFFFFF)


def test_converse_stream_yields_text_as_it_arrives():
    seen = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            seen["path"] = self.path
            seen["body"] = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.amazon.eventstream")
            self.end_headers()
            self.wfile.write(_event("messageStart", {"role": "assistant"}))
            for piece in ("Lunch ", "at ", "one."):
                self.wfile.write(
                    _event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}})
                )
            self.wfile.write(_event("messageStop", {"stopReason": "end_turn"}))

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        runtime = boto3.client(
            "bedrock-runtime",
            region_name=REGION,
            endpoint_url=f"http://127.0.0.1:{server.server_address[1]}",
            aws_access_key_id="a",
            aws_secret_access_key="b",
        )
        pieces = list(
            converse_stream(
                runtime,
                "my-model",
                [{"role": "user", "content": [{"text": "Anna: lunch?"}]}],
                system=None,
                inference={"maxTokens": 8, "temperature": 0.0},
            )
        )
    finally:
        server.shutdown()
    assert pieces == ["Lunch ", "at ", "one."]
    assert seen["path"] == "/model/my-model/converse-stream"
    assert seen["body"] == {
        "messages": [{"role": "user", "content": [{"text": "Anna: lunch?"}]}],
        "inferenceConfig": {"maxTokens": 8, "temperature": 0.0},
    }


# ---- Custom Model Import (Stubber for the import calls, moto S3 and IAM) --------------


def model_run(tmp_path, architecture="LlamaForCausalLM", skip=()) -> RunDir:
    root = tmp_path / "runs" / "20260101-120000"
    model = root / "model"
    model.mkdir(parents=True)
    (root / "config.yaml").write_text("project: {name: t}\n")
    files = {
        "config.json": json.dumps({"architectures": [architecture], "model_type": "llama"}),
        "model.safetensors": "weights",
        "tokenizer.json": "{}",
        "tokenizer_config.json": "{}",
    }
    for name, text in files.items():
        if name not in skip:
            (model / name).write_text(text)
    return RunDir(root)


@pytest.mark.parametrize(
    ("architecture", "skip", "problem"),
    [
        ("BertForMaskedLM", (), "architecture BertForMaskedLM is not one Custom Model Import"),
        ("LlamaForCausalLM", ("tokenizer.json",), "lacks tokenizer.json"),
        ("LlamaForCausalLM", ("model.safetensors",), "lacks *.safetensors weights"),
        ("LlamaForCausalLM", ("config.json",), "has no config.json"),
    ],
)
def test_import_plan_checks_architecture_and_files(
    tmp_path, session, bucket, store, architecture, skip, problem
):
    loaded = loaded_config(tmp_path, bucket, deploy={"target": "bedrock-import"})
    run = model_run(tmp_path, architecture, skip)
    plan = bedrock_target(store, session, BedrockImportTarget).plan(request_for(loaded, run))
    assert any(problem in p for p in plan.problems), plan.problems
    with pytest.raises(DeployError):
        plan.check()


def test_import_apply_invoke_destroy(tmp_path, session, bucket, store):
    loaded = loaded_config(tmp_path, bucket, deploy={"target": "bedrock-import"})
    project = loaded.config.project.name
    run = model_run(tmp_path)
    target = bedrock_target(store, session, BedrockImportTarget)
    plan = target.plan(request_for(loaded, run))
    assert plan.problems == [] and store.resources() == []  # planning creates nothing
    assert session.client("s3").list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    name = plan.deployment
    source = f"s3://{bucket}/llmship/{project}/bedrock/input/{name}/model/"
    stubbed = session.client("bedrock")
    target._clients["bedrock"] = stubbed
    job_arn = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:model-import-job/abcdefghijkl"
    model_arn = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:imported-model/abcdefghijkl"
    with Stubber(stubbed) as stubber:
        stubber.add_response(
            "create_model_import_job",
            {"jobArn": job_arn},
            {
                "jobName": plan.spec.job_name,
                "importedModelName": name,
                "roleArn": f"arn:aws:iam::{ACCOUNT}:role/llmship-{project}-bedrock",
                "modelDataSource": {"s3DataSource": {"s3Uri": source}},
                "jobTags": plan.spec.tags,
                "importedModelTags": plan.spec.tags,
            },
        )
        stubber.add_response(
            "get_model_import_job",
            {"jobArn": job_arn, "status": "Completed", "importedModelArn": model_arn},
            {"jobIdentifier": job_arn},
        )
        deployed = target.apply(plan)
        stubber.assert_no_pending_responses()
    assert deployed.address == model_arn
    keys = {o["Key"] for o in session.client("s3").list_objects_v2(Bucket=bucket)["Contents"]}
    assert keys == {
        f"llmship/{project}/bedrock/input/{name}/model/{f}"
        for f in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
    }
    assert target_of(store.resources(name)) == "bedrock-import"

    # invoke: InvokeModel with Llama's native body
    runtime = session.client("bedrock-runtime")
    target._clients["bedrock-runtime"] = runtime
    reply = json.dumps({"generation": "Lunch at 1.", "stop_reason": "stop"}).encode()
    with Stubber(runtime) as stubber:
        stubber.add_response(
            "invoke_model",
            {
                "body": StreamingBody(io.BytesIO(reply), len(reply)),
                "contentType": "application/json",
            },
            {
                "modelId": model_arn,
                "body": json.dumps(
                    {"prompt": "Anna: lunch?", "max_gen_len": 128, "temperature": 0.0}
                ).encode(),
                "contentType": "application/json",
                "accept": "application/json",
            },
        )
        answer = target.invoke(name, json.dumps({"inputs": "Anna: lunch?"}).encode())
    assert json.loads(answer) == [{"generated_text": "Lunch at 1."}]

    # destroy with --purge leaves nothing: imported model, job record, upload, role
    with Stubber(stubbed) as stubber:
        stubber.add_response("delete_imported_model", {}, {"modelIdentifier": model_arn})
        deleted = target.destroy(name, purge=True)
        stubber.assert_no_pending_responses()
    assert f"{IMPORTED_KIND} {name}" in deleted
    assert f"{IMPORT_JOB_KIND} {plan.spec.job_name} (record)" in deleted
    assert store.resources() == [] and name not in recorded(store)
    assert session.client("s3").list_objects_v2(Bucket=bucket)["KeyCount"] == 0
