"""llmship serve: the container contract, the Runtime API through boto3, streaming,
limits and every error status, with a real tiny model and with users' own handlers."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from botocore.exceptions import ClientError, EventStreamError

from helpers import LLMSHIP_CLI, runtime
from llmship.config.schema import GenerationConfig
from llmship.data.samples import samsum_rows
from llmship.errors import PackageError
from llmship.models.generation import generate, load_finetuned
from llmship.serve.app import create_app
from llmship.serve.background import running
from llmship.serve.limits import EndpointLimits, limits_for

DIALOGUES = [r["dialogue"] for r in samsum_rows()[300:304]]


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory):
    from llmship.serve.server import resolve_artifact

    model_dir = resolve_artifact(trained[1], tmp_path_factory.mktemp("unpacked"))
    with running(create_app(model_dir, "tiny", limits_for("serverless"))) as url:
        yield url


def request(text: str, **parameters) -> bytes:
    return json.dumps({"inputs": text, "parameters": {"max_new_tokens": 12, **parameters}}).encode()


def test_boto3_invoke_endpoint_answers_like_llmship(server, trained):
    client = runtime(server)
    model = load_finetuned(trained[0].model)
    expected = [
        generate(model, [{"dialogue": d}], GenerationConfig(max_new_tokens=12))[0]
        for d in DIALOGUES
    ]
    assert len(set(expected)) >= 2
    for dialogue, want in zip(DIALOGUES, expected, strict=True):
        response = client.invoke_endpoint(
            EndpointName="tiny",
            Body=request(dialogue),
            ContentType="application/json",
            Accept="application/json",
        )
        assert response["ContentType"] == "application/json"
        assert response["InvokedProductionVariant"] == "AllTraffic"
        assert json.loads(response["Body"].read()) == [{"generated_text": want}]


def test_boto3_response_stream_yields_the_same_text(server):
    client = runtime(server)
    whole = json.loads(
        client.invoke_endpoint(
            EndpointName="tiny", Body=request(DIALOGUES[0]), ContentType="application/json"
        )["Body"].read()
    )
    response = client.invoke_endpoint_with_response_stream(
        EndpointName="tiny", Body=request(DIALOGUES[0]), ContentType="application/json"
    )
    lines = b"".join(event["PayloadPart"]["Bytes"] for event in response["Body"]).splitlines()
    parts = [json.loads(line) for line in lines]
    pieces = [p["token"]["text"] for p in parts if "token" in p]
    assert len(pieces) >= 2  # streamed piece by piece, not in one answer
    assert "".join(pieces).strip() == whole[0]["generated_text"]
    assert parts[-1] == {"generated_text": whole[0]["generated_text"]}


def test_runtime_errors_have_aws_shapes(server):
    client = runtime(server)
    cases = [
        (
            dict(EndpointName="other", Body=request("x"), ContentType="application/json"),
            "ValidationError",
            "Endpoint other of account local not found",
        ),
        (
            dict(EndpointName="tiny", Body=b"{oops", ContentType="application/json"),
            "ModelError",
            "(400)",
        ),
        (dict(EndpointName="tiny", Body=b"a,b", ContentType="text/csv"), "ModelError", "(415)"),
        (
            dict(
                EndpointName="tiny",
                Body=request("x"),
                ContentType="application/json",
                Accept="text/csv",
            ),
            "ModelError",
            "(406)",
        ),
        (
            dict(EndpointName="tiny", Body=request("x", bogus=1), ContentType="application/json"),
            "ModelError",
            "unknown parameters: bogus",
        ),
        (
            dict(
                EndpointName="tiny",
                Body=b"x" * (4 * 1024 * 1024 + 1),
                ContentType="application/json",
            ),
            "ValidationError",
            "less than or equal to",
        ),
    ]
    for kwargs, code, text in cases:
        with pytest.raises(ClientError) as info:
            client.invoke_endpoint(**kwargs)
        error = info.value.response["Error"]
        assert error["Code"] == code, (kwargs, info.value.response)
        assert text in error["Message"], error
        if code == "ModelError":
            assert info.value.response["OriginalStatusCode"] in (400, 415, 406)
    # The server kept serving through all of that.
    ok = client.invoke_endpoint(
        EndpointName="tiny", Body=request("x"), ContentType="application/json"
    )
    assert ok["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_container_routes_statuses(server):
    url = f"{server}/invocations"
    json_type = {"Content-Type": "application/json"}
    assert httpx.get(f"{server}/ping").json() == {"status": "healthy"}
    assert (
        httpx.post(url, content=b"x" * (4 * 1024 * 1024 + 1), headers=json_type).status_code == 413
    )
    assert httpx.post(url, content=b"a", headers={"Content-Type": "text/csv"}).status_code == 415
    assert (
        httpx.post(
            url, content=request("x"), headers={**json_type, "Accept": "text/csv"}
        ).status_code
        == 406
    )
    bad = httpx.post(url, content=b"{oops", headers=json_type)
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["message"]
    good = httpx.post(url, content=request(DIALOGUES[0]), headers=json_type)
    assert good.status_code == 200 and "generated_text" in good.json()[0]


# A handler that sleeps as long as the request asks: for time limits, queues and stops.
SLEEPER = """
    import time
    def model_fn(model_dir):
        return None
    def predict_fn(data, model):
        time.sleep(data.get("sleep", 0))
        return {"slept": data.get("sleep", 0)}
"""


def user_artifact(tmp_path: Path, code: str) -> Path:
    root = tmp_path / "artifact"
    (root / "code").mkdir(parents=True)
    (root / "code" / "inference.py").write_text(textwrap.dedent(code))
    return root


HANDLER_STYLES = {
    "four functions with context": """
        import json
        def model_fn(model_dir, context):
            assert context.system_properties["model_dir"] == model_dir
            return {"prefix": "echo:"}
        def input_fn(body, content_type, context):
            return json.loads(body)["text"]
        def predict_fn(data, model, context):
            return model["prefix"] + data
        def output_fn(prediction, accept, context):
            return json.dumps({"out": prediction})
    """,
    "transform_fn": """
        import json
        def model_fn(model_dir):
            return "echo:"
        def transform_fn(model, body, content_type, accept):
            return json.dumps({"out": model + json.loads(body)["text"]})
    """,
    "output_fn returns (body, content_type)": """
        import json
        def model_fn(model_dir):
            return "echo:"
        def predict_fn(data, model):
            return model + data["text"]
        def output_fn(prediction, accept):
            return json.dumps({"out": prediction}), "application/x-custom"
    """,
    "predict_fn only, default JSON in and out": """
        def model_fn(model_dir):
            return "echo:"
        def predict_fn(data, model):
            return {"out": model + data["text"]}
    """,
}


@pytest.mark.parametrize("style", sorted(HANDLER_STYLES))
def test_users_own_handler_styles(tmp_path, style):
    app = create_app(user_artifact(tmp_path, HANDLER_STYLES[style]), "mine", limits_for("realtime"))
    with running(app) as url:
        response = runtime(url).invoke_endpoint(
            EndpointName="mine", Body=b'{"text": "hi"}', ContentType="application/json"
        )
        assert json.loads(response["Body"].read()) == {"out": "echo:hi"}
        if "tuple" in style or "(body" in style:
            assert response["ContentType"] == "application/x-custom"


def test_handler_exception_is_a_clear_error_and_serving_goes_on(tmp_path):
    code = """
        def model_fn(model_dir):
            return None
        def predict_fn(data, model):
            if data.get("fail"):
                raise RuntimeError("the handler broke")
            return {"ok": True}
    """
    with running(create_app(user_artifact(tmp_path, code), "m", limits_for("realtime"))) as url:
        failed = httpx.post(f"{url}/invocations", json={"fail": True})
        assert failed.status_code == 500
        assert failed.json()["message"] == "RuntimeError: the handler broke"
        assert httpx.post(f"{url}/invocations", json={}).json() == {"ok": True}


def test_failure_mid_stream_arrives_as_model_stream_error(tmp_path):
    code = """
        def model_fn(model_dir):
            return None
        def predict_fn(data, model):
            return data
        def stream_fn(data, model):
            yield "first piece"
            raise RuntimeError("generation broke")
    """
    with running(create_app(user_artifact(tmp_path, code), "m", limits_for("realtime"))) as url:
        response = runtime(url).invoke_endpoint_with_response_stream(
            EndpointName="m", Body=b"{}", ContentType="application/json"
        )
        received = []
        with pytest.raises(EventStreamError) as info:
            for event in response["Body"]:
                received.append(event["PayloadPart"]["Bytes"])
        assert received == [b"first piece"]
        assert "ModelStreamError" in str(info.value) and "generation broke" in str(info.value)


def test_invocation_past_the_time_limit_is_a_timeout_error(tmp_path):
    limits = EndpointLimits("realtime", 6 * 1024 * 1024, timeout_s=0.5)
    with running(create_app(user_artifact(tmp_path, SLEEPER), "m", limits)) as url:
        assert httpx.post(f"{url}/invocations", json={"sleep": 2}).status_code == 408
        with pytest.raises(ClientError) as info:
            runtime(url).invoke_endpoint(
                EndpointName="m", Body=b'{"sleep": 2}', ContentType="application/json"
            )
        assert info.value.response["Error"]["Code"] == "ModelError"
        assert "timed out" in info.value.response["Error"]["Message"]


def test_ping_reports_why_the_model_failed_to_load(tmp_path):
    code = """
        def model_fn(model_dir):
            raise FileNotFoundError("weights.safetensors is missing")
        def predict_fn(data, model):
            return data
    """
    with running(
        create_app(user_artifact(tmp_path, code), "m", limits_for("realtime")), wait_ready=False
    ) as url:
        for _ in range(200):
            ping = httpx.get(f"{url}/ping")
            if ping.json()["status"] == "failed":
                break
            time.sleep(0.05)
        assert ping.status_code == 503
        assert "weights.safetensors is missing" in ping.json()["reason"]
        with pytest.raises(ClientError) as info:
            runtime(url).invoke_endpoint(
                EndpointName="m", Body=b"{}", ContentType="application/json"
            )
        assert info.value.response["Error"]["Code"] == "ModelNotReadyException"


def test_bad_handler_signatures_fail_at_start(tmp_path):
    from llmship.serve.handler import Handler

    code = "def model_fn():\n    return 1\ndef predict_fn(d, m):\n    return d\n"
    with pytest.raises(PackageError, match="model_fn takes 0 parameters"):
        Handler(user_artifact(tmp_path, code))
    with pytest.raises(PackageError, match="defines neither predict_fn nor transform_fn"):
        Handler(user_artifact(tmp_path / "b", "def model_fn(d):\n    return 1\n"))


def test_the_serve_command_binds_the_sagemaker_port(trained, tmp_path):
    import os
    import signal
    import subprocess

    from llmship.serve.background import free_port, wait_until_healthy

    port = free_port()
    command = [
        *LLMSHIP_CLI,
        "serve",
        str(trained[1]),
        "--name",
        "cli",
    ]
    process = subprocess.Popen(
        command,
        env={**os.environ, "SAGEMAKER_BIND_TO_PORT": str(port)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process, 120)
        reply = runtime(url).invoke_endpoint(
            EndpointName="cli", Body=request(DIALOGUES[0]), ContentType="application/json"
        )
        assert "generated_text" in json.loads(reply["Body"].read())[0]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0  # an orderly stop, as SageMaker stops containers


def test_sigterm_drains_in_flight_requests_then_exits_0(tmp_path):
    import os
    import signal
    import subprocess
    import threading

    from llmship.serve.background import free_port, wait_until_healthy

    artifact = user_artifact(tmp_path, SLEEPER)
    port = free_port()
    command = [
        *LLMSHIP_CLI,
        "serve",
        str(artifact),
        "--port",
        str(port),
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy()
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_healthy(url, process, 60)
    answers = []
    slow = threading.Thread(
        target=lambda: answers.append(
            httpx.post(f"{url}/invocations", json={"sleep": 2}, timeout=30)
        )
    )
    slow.start()
    time.sleep(0.5)  # the request is in flight
    process.send_signal(signal.SIGTERM)
    slow.join(timeout=30)
    assert answers and answers[0].status_code == 200 and answers[0].json() == {"slept": 2}
    assert process.wait(timeout=30) == 0


def test_past_the_queue_bound_requests_get_503_with_retry_after(tmp_path):
    import asyncio

    app = create_app(
        user_artifact(tmp_path, SLEEPER), "m", limits_for("realtime"), max_batch=1, max_waiting=1
    )
    with running(app) as url:

        async def burst():
            async with httpx.AsyncClient(timeout=30) as http:
                return await asyncio.gather(
                    *[http.post(f"{url}/invocations", json={"sleep": 1}) for _ in range(4)]
                )

        statuses = sorted(r.status_code for r in asyncio.run(burst()))
        assert statuses == [200, 200, 503, 503]  # one running, one waiting, the rest refused
        refused = next(r for r in asyncio.run(burst()) if r.status_code == 503)
        assert refused.headers["retry-after"] == "1"
        assert "already in line" in refused.json()["message"]
