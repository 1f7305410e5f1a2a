"""`llmship invoke` and `llmship eval --target sagemaker` through sagemaker-runtime.

Invocations go to llmship's own runtime server (a real tiny model, a real event
stream) through boto3 with endpoint_url. Async invocations use moto for S3 and
botocore's Stubber for InvokeEndpointAsync: moto's answer is canned and writes no
output object, so the stub (validated against the real service model) stands in for
the endpoint, and the test writes the answer where SageMaker would.
"""

from __future__ import annotations

import json
import textwrap
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.stub import ANY, Stubber
from typer.testing import CliRunner

from helpers import runtime
from llmship.aws.runtime import invoke, invoke_async, invoke_stream
from llmship.bedrock.hosted import IMPORTED_KIND, PT_KIND
from llmship.cli import app, invoke_cmd
from llmship.config.schema import EvalConfig
from llmship.data.loading import Row
from llmship.data.prepare import write_channel
from llmship.data.samples import samsum_rows
from llmship.errors import AwsError, DeployError
from llmship.protocol.toolkit import generated_text, prompt_body, stream_text
from llmship.serve.app import create_app
from llmship.serve.background import running
from llmship.serve.limits import limits_for
from llmship.state import StateStore
from llmship.targets.local.target import SERVER_KIND
from llmship.train.evaluation import endpoint_generator, evaluate, prompt_format_of, report_paths

DIALOGUE = samsum_rows()[300]["dialogue"]
runner = CliRunner()


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory):
    from llmship.serve.server import resolve_artifact

    model_dir = resolve_artifact(trained[1], tmp_path_factory.mktemp("unpacked"))
    with running(create_app(model_dir, "tiny", limits_for("realtime"))) as url:
        yield url


@pytest.fixture()
def no_aws(monkeypatch, tmp_path):
    """No config in the working directory and no AWS settings: the default chain."""
    monkeypatch.chdir(tmp_path)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)


# ---- the library calls ----------------------------------------------------------------


def test_stream_gives_the_same_text_as_one_answer(server):
    client = runtime(server)
    body = prompt_body(DIALOGUE, {"max_new_tokens": 12})
    assert json.loads(body) == {"inputs": DIALOGUE, "parameters": {"max_new_tokens": 12}}
    whole = invoke(client, "tiny", body=body)
    assert whole.content_type == "application/json"
    text = generated_text(whole.body)
    assert text
    parts = list(invoke_stream(client, "tiny", body=body))
    pieces = list(stream_text(parts))
    assert len(pieces) >= 2  # piece by piece, not one answer
    assert "".join(pieces).strip() == text


def test_runtime_errors_are_aws_errors(server):
    with pytest.raises(AwsError, match=r"InvokeEndpoint on other failed: ValidationError"):
        invoke(runtime(server), "other", body=prompt_body("x"))
    with pytest.raises(AwsError, match=r"on tiny failed: ModelError.*unknown parameters: bogus"):
        list(invoke_stream(runtime(server), "tiny", body=prompt_body("x", {"bogus": 1})))


def test_stream_text_reassembles_lines_tgi_events_and_raw_text():
    split_lines = [
        b'{"token": {"text": "He"}}\n{"tok',
        b'en": {"text": "llo"}}\n',
        b'{"generated_text": "Hello"}\n',
    ]
    assert list(stream_text(split_lines)) == ["He", "llo"]
    tgi = [
        b'data:{"token":{"id":1,"text":" a","special":false},"generated_text":null}\n\n',
        b'data:{"token":{"id":2,"text":"</s>","special":true},"generated_text":" a"}\n\n',
    ]
    assert list(stream_text(tgi)) == [" a"]
    assert "".join(stream_text([b"caf", b"\xc3", b"\xa9 ok"])) == "café ok"
    assert generated_text(b'[{"generated_text": "a"}, {"generated_text": "b"}]') == "a\nb"
    assert generated_text(b'{"echo": 1}') is None and generated_text(b"plain") is None


# ---- the command ------------------------------------------------------------------------


def test_invoke_command_prints_text_streams_it_and_writes_files(server, no_aws, tmp_path):
    base = ["invoke", "tiny", "--endpoint-url", server, "--prompt", DIALOGUE]
    params = ["--param", "max_new_tokens=12", "--param", "do_sample=false"]
    whole = runner.invoke(app, [*base, *params])
    assert whole.exit_code == 0, whole.output
    expected = generated_text(
        invoke(
            runtime(server),
            "tiny",
            body=prompt_body(DIALOGUE, {"max_new_tokens": 12, "do_sample": False}),
        ).body
    )
    assert whole.stdout == expected + "\n"

    streamed = runner.invoke(app, [*base, *params, "--stream"])
    assert streamed.exit_code == 0, streamed.output
    assert streamed.stdout.strip() == expected

    out = tmp_path / "answer.json"
    written = runner.invoke(app, [*base, *params, "--output", str(out)])
    assert written.exit_code == 0, written.output
    assert json.loads(out.read_bytes()) == [{"generated_text": expected}]
    assert written.stdout == ""

    refused = runner.invoke(app, ["invoke", "tiny", "--endpoint-url", server])
    assert refused.exit_code == 2 and "exactly one of --prompt and --body" in refused.output
    missing = runner.invoke(app, ["invoke", "nope", "--endpoint-url", server, "--prompt", "x"])
    assert isinstance(missing.exception, AwsError)
    assert "Endpoint nope of account local not found" in str(missing.exception)


ECHO = """
    import json
    def model_fn(model_dir):
        return None
    def transform_fn(model, body, content_type, accept):
        request = json.loads(body)
        return json.dumps({
            "content_type": content_type,
            "text": request["text"][: request["request_output_len"]],
        })
"""


def test_marketplace_style_body_goes_through_as_it_is(tmp_path, no_aws):
    root = tmp_path / "artifact"
    (root / "code").mkdir(parents=True)
    (root / "code" / "inference.py").write_text(textwrap.dedent(ECHO))
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"text": "hello market", "request_output_len": 5}))
    with running(create_app(root, "market", limits_for("realtime"))) as url:
        result = runner.invoke(
            app,
            [
                "invoke",
                "market",
                "--endpoint-url",
                url,
                "--body",
                str(request),
                "--content-type",
                "application/vnd.market+json",
            ],
        )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "content_type": "application/vnd.market+json",
        "text": "hello",
    }


# ---- the deployment's recorded target decides how it is invoked ---------------------------


@pytest.fixture()
def no_credentials(no_aws, tmp_path, monkeypatch):
    """No AWS credentials or region anywhere: what a local-only user has."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


def record_local(store: StateStore, name: str, url: str) -> None:
    """What `deploy --target local` records for a server it started."""
    store.record_creating(SERVER_KIND, name, name, "demo")
    store.set_status(SERVER_KIND, name, "UP", details={"url": url, "pid": 0})


@pytest.mark.usefixtures("no_credentials")
def test_a_local_deployment_answers_invoke_without_target_or_credentials(tmp_path, store):
    """`deploy --target local` prints `llmship invoke NAME --prompt ...` as the next step:
    that must reach the local server, not ask for AWS credentials."""
    root = tmp_path / "artifact"
    (root / "code").mkdir(parents=True)
    (root / "code" / "inference.py").write_text(textwrap.dedent(ECHO))
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"text": "hello local", "request_output_len": 5}))
    with running(create_app(root, "mine", limits_for("realtime"))) as url:
        record_local(store, "mine", url)
        result = runner.invoke(app, ["invoke", "mine", "--body", str(request)])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["text"] == "hello"

        explicit = runner.invoke(
            app, ["invoke", "mine", "--target", "local", "--body", str(request)]
        )
        assert explicit.exit_code == 0, explicit.output

    for wrong in ("sagemaker", "bedrock"):
        refused = runner.invoke(app, ["invoke", "mine", "--target", wrong, "--prompt", "x"])
        assert isinstance(refused.exception, DeployError)
        message = str(refused.exception)
        assert f"--target {wrong} contradicts" in message and "deployed to local" in message
    asynchronous = runner.invoke(app, ["invoke", "mine", "--async", "--prompt", "x"])
    assert asynchronous.exit_code == 2 and "runs locally" in asynchronous.output
    nothing = runner.invoke(app, ["invoke", "other", "--target", "local", "--prompt", "x"])
    assert isinstance(nothing.exception, DeployError)
    assert "no local server recorded for other" in str(nothing.exception)


def test_a_bedrock_deployment_is_invoked_through_bedrock_without_target(store, no_aws, monkeypatch):
    arn = "arn:aws:bedrock:us-west-2:123456789012:provisioned-model/abc123"
    store.record_creating(PT_KIND, "demo-pt", "demo-dep", "demo", "us-west-2", {"arn": arn})
    runtime = boto3.client(
        "bedrock-runtime", region_name="us-west-2", aws_access_key_id="a", aws_secret_access_key="b"
    )
    regions = []

    def session(loaded, local, region=None):
        regions.append(region)
        return runtime  # the Bedrock calls take a session or a ready client

    monkeypatch.setattr("llmship.aws.runtime.caller_session", session)
    with Stubber(runtime) as stubber:
        stubber.add_response(
            "converse",
            {
                "output": {"message": {"role": "assistant", "content": [{"text": "Lunch at 1."}]}},
                "stopReason": "end_turn",
                "usage": {"inputTokens": 5, "outputTokens": 3, "totalTokens": 8},
                "metrics": {"latencyMs": 10},
            },
            {
                "modelId": arn,
                "messages": [{"role": "user", "content": [{"text": "Anna: lunch?"}]}],
                "inferenceConfig": {"maxTokens": 20, "temperature": 0.0},
            },
        )
        result = runner.invoke(
            app, ["invoke", "demo-dep", "--prompt", "Anna: lunch?", "--param", "max_new_tokens=20"]
        )
        stubber.assert_no_pending_responses()
    assert result.exit_code == 0, result.output
    assert result.stdout == "Lunch at 1.\n" and regions == ["us-west-2"]

    refused = runner.invoke(app, ["invoke", "demo-dep", "--target", "sagemaker", "--prompt", "x"])
    assert isinstance(refused.exception, DeployError)
    assert "deployed to bedrock" in str(refused.exception)
    body = runner.invoke(app, ["invoke", "demo-dep", "--body", "-"], input="{}")
    assert body.exit_code == 2 and "answers through Bedrock" in body.output


def test_an_imported_model_and_an_exposed_api_route_by_their_records(store, no_aws):
    store.record_creating(IMPORTED_KIND, "m", "imported", "demo", "us-west-2", {"arn": "arn:m"})
    assert invoke_cmd.route("imported", None) == "bedrock"
    assert invoke_cmd.route("imported", "bedrock") == "bedrock"
    store.record_creating("lambda:function", "f", "api", "demo", details={"gateway_route": "r"})
    result = runner.invoke(app, ["invoke", "api", "--prompt", "x"])
    assert isinstance(result.exception, DeployError)
    assert "api is a gateway deployment, not a model endpoint" in str(result.exception)
    # A name llmship did not deploy is an endpoint (e.g. one made in the console).
    assert invoke_cmd.route("made-elsewhere", None) == "sagemaker"
    assert invoke_cmd.route("made-elsewhere", "bedrock") == "bedrock"


# ---- async: moto S3, Stubber InvokeEndpointAsync ----------------------------------------


def async_runtime(output: str, failure: str, input_location=ANY):
    client = boto3.client(
        "sagemaker-runtime",
        region_name="us-west-2",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    stub = Stubber(client)
    stub.add_response(
        "invoke_endpoint_async",
        {"InferenceId": "abc", "OutputLocation": output, "FailureLocation": failure},
        {"EndpointName": "aq", "InputLocation": input_location, "ContentType": "application/json"},
    )
    stub.activate()
    return client, stub


@pytest.fixture()
def bucket(aws_env):
    s3 = boto3.client("s3", region_name="us-west-2")
    name = f"llmship-async-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    return s3, name


def test_async_uploads_invokes_and_reads_the_answer(bucket):
    s3, name = bucket
    output, failure = f"s3://{name}/out/1.out", f"s3://{name}/failed/1.out"
    client, stub = async_runtime(output, failure, f"s3://{name}/in/1.json")
    slept: list[float] = []

    def endpoint_finishes(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 2:  # the answer lands after two polls
            s3.put_object(Bucket=name, Key="out/1.out", Body=b'[{"generated_text": "done"}]')

    result = invoke_async(
        client,
        s3,
        "aq",
        body=prompt_body("hi"),
        input_location=f"s3://{name}/in/1.json",
        poll_seconds=7,
        sleep=endpoint_finishes,
    )
    stub.assert_no_pending_responses()
    assert json.loads(s3.get_object(Bucket=name, Key="in/1.json")["Body"].read()) == {
        "inputs": "hi"
    }
    assert result.output_location == output and result.failure_location == failure
    assert generated_text(result.body) == "done"
    assert slept == [7, 7]


def test_async_failure_and_timeout_are_clear(bucket):
    s3, name = bucket
    failure = f"s3://{name}/failed/2.out"
    s3.put_object(Bucket=name, Key="failed/2.out", Body=b"CUDA out of memory")
    client, _ = async_runtime(f"s3://{name}/out/2.out", failure)
    with pytest.raises(AwsError, match=r"InvokeEndpointAsync on aq failed: CUDA out of memory"):
        invoke_async(
            client, s3, "aq", body=b"{}", input_location=f"s3://{name}/in/2.json", sleep=print
        )
    client, _ = async_runtime(f"s3://{name}/out/3.out", f"s3://{name}/failed/3.out")
    with pytest.raises(DeployError, match=r"no answer from aq after 10 s.*out/3.out"):
        invoke_async(
            client,
            s3,
            "aq",
            body=b"{}",
            input_location=f"s3://{name}/in/3.json",
            poll_seconds=5,
            timeout_seconds=10,
            sleep=lambda _: None,
        )


def test_async_command_uploads_under_the_deployment_prefix(bucket, tmp_path, monkeypatch):
    s3, name = bucket
    config = tmp_path / "llmship.yaml"
    config.write_text(
        textwrap.dedent(
            f"""
            project: {{name: demo}}
            model: {{name_or_path: base}}
            data: {{source: data.jsonl}}
            aws: {{region: us-west-2, bucket: {name}}}
            """
        )
    )
    s3.put_object(Bucket=name, Key="out/cli.out", Body=b'{"answer": 42}')
    client, stub = async_runtime(f"s3://{name}/out/cli.out", f"s3://{name}/failed/cli.out")
    monkeypatch.setattr("llmship.aws.runtime.sagemaker_runtime", lambda loaded, url=None: client)
    result = runner.invoke(
        app, ["invoke", "aq", "--async", "--prompt", "hi", "--config", str(config)]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"answer": 42}
    stub.assert_no_pending_responses()
    keys = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=name, Prefix="llmship/demo/aq/async-input/")["Contents"]
    ]
    assert len(keys) == 1 and keys[0].endswith(".json")

    no_bucket = runner.invoke(app, ["invoke", "aq", "--async", "--prompt", "hi"])
    assert isinstance(no_bucket.exception, DeployError)
    assert "set aws.bucket" in str(no_bucket.exception)


# ---- eval through the endpoint ------------------------------------------------------------


def test_eval_through_the_endpoint_equals_local_generation(trained, server, no_aws):
    run = trained[0]
    rows = samsum_rows()[300:303]
    write_channel([Row(str(i), r) for i, r in enumerate(rows)], run.channel("test"), "test")
    eval_cfg = EvalConfig(max_samples=3, batch_size=1, generation={"max_new_tokens": 12})
    local = evaluate(run, eval_cfg)
    generator = endpoint_generator(
        runtime(server), "tiny", prompt_format_of(run).input_field, eval_cfg.generation
    )
    remote = evaluate(run, eval_cfg, generator=generator, target="sagemaker-tiny")

    def predictions(target: str) -> list[str]:
        path = report_paths(run, target)[1]
        return [json.loads(line)["prediction"] for line in path.read_text().splitlines()]

    assert predictions("sagemaker-tiny") == predictions("local")
    assert any(predictions("local"))
    assert (remote.rouge1, remote.rougeL) == (local.rouge1, local.rougeL)
    written = json.loads(report_paths(run, "sagemaker-tiny")[0].read_text())
    assert written["target"] == "sagemaker-tiny" and written["rows"] == 3
    assert json.loads(run.eval_report.read_text())["target"] == "local"  # not overwritten

    # The command: the same, with the endpoint named and reached by URL.
    result = runner.invoke(
        app,
        [
            "eval",
            str(run.root),
            "--config",
            str(run.config),
            "--set",
            "eval.max_samples=3",
            "--set",
            "eval.generation.max_new_tokens=12",
            "--target",
            "sagemaker",
            "--endpoint",
            "tiny",
            "--endpoint-url",
            server,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "sagemaker-tiny" in result.stdout
    assert predictions("sagemaker-tiny") == predictions("local")


def test_eval_goes_through_the_target_the_endpoint_was_deployed_to(trained, server, store, no_aws):
    """`eval --endpoint NAME` asks the deployment where it was deployed: here a local one,
    at its recorded URL; a --target that contradicts the record is refused."""
    run = trained[0]
    rows = samsum_rows()[300:302]
    write_channel([Row(str(i), r) for i, r in enumerate(rows)], run.channel("test"), "test")
    record_local(store, "tiny", server)
    base = ["eval", str(run.root), "--config", str(run.config), "--set", "eval.max_samples=2"]
    result = runner.invoke(app, [*base, "--endpoint", "tiny"])
    assert result.exit_code == 0, result.output
    assert "local-tiny" in result.stdout
    assert json.loads(report_paths(run, "local-tiny")[0].read_text())["rows"] == 2

    refused = runner.invoke(app, [*base, "--target", "bedrock", "--endpoint", "tiny"])
    assert isinstance(refused.exception, DeployError)
    assert "--target bedrock contradicts" in str(refused.exception)
    assert "deployed to local" in str(refused.exception)


def test_eval_target_must_be_known(trained, no_aws):
    run = trained[0]
    result = runner.invoke(
        app, ["eval", str(run.root), "--config", str(run.config), "--target", "moon"]
    )
    assert result.exit_code == 2 and "choose local, sagemaker or bedrock" in result.output


def test_eval_needs_a_trained_model(tmp_path):
    from llmship.errors import EvalError
    from llmship.runs import RunDir

    with pytest.raises(EvalError, match="has no trained model"):
        prompt_format_of(RunDir(Path(tmp_path)))
