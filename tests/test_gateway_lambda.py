"""The gateway on Lambda: the handler in-process with real API Gateway REST (v1), HTTP API
(v2) and function URL event payloads, keys in DynamoDB (moto server); the REQUEST
authorizer; and the function zip, which must hold everything the gateway imports and
nothing of torch: it is unpacked and run by an interpreter that sees only the zip.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import textwrap
import zipfile

import boto3
import pytest

from llmship.config.gateway import GatewayConfig
from llmship.gateway import lambda_handler
from llmship.gateway.bundle import build_zip
from llmship.gateway.dynamo_store import DynamoStore
from llmship.gateway.keys import new_key
from llmship.serve.background import running
from test_gateway_app import fake_openai

ACCOUNT = "123456789012"


@pytest.fixture(scope="module")
def target():
    with running(fake_openai("lam"), wait_ready=False) as url:
        yield url


@pytest.fixture()
def deployed(aws_env, target, tmp_path, monkeypatch):
    """A table with one key for route `r`, and the handler's settings pointing at it."""
    table = f"gw-{tmp_path.name[-20:]}".replace("_", "-")
    boto3.client("dynamodb").create_table(
        TableName=table,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    config = GatewayConfig.model_validate({"routes": {"r": {"targets": [{"local": target}]}}})
    path = tmp_path / "gateway.json"
    path.write_text(config.model_dump_json())
    monkeypatch.setenv("LLMSHIP_GATEWAY_CONFIG", str(path))
    monkeypatch.setenv("LLMSHIP_GATEWAY_TABLE", table)
    lambda_handler._gateway.cache_clear()
    store = DynamoStore(table, session=boto3.Session())
    key, record = new_key("lam", ["r"], requests_per_minute=100, tokens_per_day=1000)
    store.put_key(record.__class__(**{**record.__dict__, "details": {"usage_key": "u" * 30}}))
    yield key, record, store
    lambda_handler._gateway.cache_clear()


BODY = json.dumps({"model": "r", "prompt": "hi", "max_tokens": 4})


def rest_v1_event(key: str | None, path="/v1/completions", body=BODY, method="POST") -> dict:
    """API Gateway REST API proxy integration (payload format 1.0), as AWS sends it."""
    headers = {
        "Content-Type": "application/json",
        "Host": "abc123.execute-api.us-west-2.amazonaws.com",
    }
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourceId": "x1y2z3",
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "extendedRequestId": "c5f9EFfNvHcFTcw=",
            "requestTime": "28/Nov/2026:10:00:00 +0000",
            "path": f"/api{path}",
            "accountId": ACCOUNT,
            "protocol": "HTTP/1.1",
            "stage": "api",
            "domainPrefix": "abc123",
            "requestTimeEpoch": 1795860000000,
            "requestId": "3f2f1c1e-1111-2222-3333-444455556666",
            "identity": {"sourceIp": "203.0.113.9", "userAgent": "openai-python", "apiKey": None},
            "authorizer": {"principalId": "k", "key_id": "k", "integrationLatency": 12},
            "domainName": "abc123.execute-api.us-west-2.amazonaws.com",
            "apiId": "abc123",
        },
        "body": body,
        "isBase64Encoded": False,
    }


def http_v2_event(key: str | None, path="/v1/completions", body=BODY, url_domain=None) -> dict:
    """HTTP API (payload format 2.0); a function URL sends the same shape with its domain."""
    domain = url_domain or "abc123.execute-api.us-west-2.amazonaws.com"
    headers = {"content-type": "application/json", "host": domain}
    if key:
        headers["x-api-key"] = key
    encoded = base64.b64encode(body.encode()).decode()
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous" if url_domain else ACCOUNT,
            "apiId": domain.split(".")[0],
            "domainName": domain,
            "domainPrefix": domain.split(".")[0],
            "http": {
                "method": "POST",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.9",
                "userAgent": "curl/8.5.0",
            },
            "requestId": "a1b2c3d4-0000-1111-2222-333344445555",
            "routeKey": "$default",
            "stage": "$default",
            "time": "28/Nov/2026:10:00:00 +0000",
            "timeEpoch": 1795860000000,
        },
        "body": encoded,
        "isBase64Encoded": True,
    }


def function_url_event(key: str | None, **kwargs) -> dict:
    return http_v2_event(key, url_domain="fnurl123abc.lambda-url.us-west-2.on.aws", **kwargs)


def _json(answer: dict) -> dict:
    body = answer["body"]
    if answer.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return json.loads(body)


@pytest.mark.parametrize("make_event", [rest_v1_event, http_v2_event, function_url_event])
def test_handler_answers_each_event_kind(deployed, make_event):
    key, record, store = deployed
    answer = lambda_handler.handler(make_event(key), None)
    assert answer["statusCode"] == 200, answer
    assert _json(answer)["choices"][0]["text"] == "I am lam and done"
    refused = lambda_handler.handler(make_event(None), None)
    assert refused["statusCode"] == 401
    assert _json(refused)["error"]["code"] == "missing_api_key"
    wrong = json.dumps({"model": "other", "prompt": "x"})
    assert lambda_handler.handler(make_event(key, body=wrong), None)["statusCode"] == 403
    logged = [e for e in store.logs(0) if e.key_id == record.key_id]
    assert [e.status for e in logged] == [200, 403] and logged[0].completion_tokens == 3


def test_handler_streams_are_buffered_into_one_sse_body(deployed):
    key, _, _ = deployed
    body = json.dumps({"model": "r", "prompt": "hi", "stream": True})
    answer = lambda_handler.handler(rest_v1_event(key, body=body), None)
    assert answer["statusCode"] == 200
    text = (
        answer["body"]
        if not answer.get("isBase64Encoded")
        else base64.b64decode(answer["body"]).decode()
    )
    assert text.strip().endswith("data: [DONE]") and '"text": " and"' in text


def test_authorizer_maps_keys_to_their_usage_identifier(deployed):
    key, record, store = deployed
    arn = f"arn:aws:execute-api:us-west-2:{ACCOUNT}:abc123/api/POST/v1/completions"
    event = {
        "type": "REQUEST",
        "methodArn": arn,
        "headers": {"Authorization": f"Bearer {key}"},
        "requestContext": {"apiId": "abc123", "stage": "api"},
    }
    allowed = lambda_handler.authorize(event, None)
    assert allowed["principalId"] == record.key_id
    assert allowed["usageIdentifierKey"] == "u" * 30
    statement = allowed["policyDocument"]["Statement"][0]
    assert statement["Effect"] == "Allow"
    assert statement["Resource"] == f"arn:aws:execute-api:us-west-2:{ACCOUNT}:abc123/api/*"
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        lambda_handler.authorize({**event, "headers": {}}, None)
    store.put_key(record.revoke(1.0))
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        lambda_handler.authorize(event, None)


def test_gateway_imports_no_torch_transformers_or_engine():
    code = (
        "import sys; import llmship.gateway.app, llmship.gateway.lambda_handler, "
        "llmship.gateway.targets, llmship.gateway.dynamo_store, llmship.gateway.bundle; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers') "
        "or m.startswith('llmship.engine') or m.startswith('llmship.serve')]; print(bad)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout


def test_the_zip_runs_on_its_own_and_holds_no_torch(deployed, tmp_path, target):
    key, _, _ = deployed
    config = GatewayConfig.model_validate({"routes": {"r": {"targets": [{"local": target}]}}})
    data = build_zip(config, base_dir=tmp_path)
    archive = zipfile.ZipFile(io.BytesIO(data))
    names = archive.namelist()
    assert not [n for n in names if n.split("/")[0] in ("torch", "transformers", "boto3")]
    assert "llmship/gateway/app.py" in names and "gateway.json" in names
    assert not [
        n for n in names if n.startswith(("llmship/engine", "llmship/serve", "llmship/train"))
    ]
    assert archive.getinfo("run.sh").external_attr >> 16 == 0o755
    assert len(data) < 50 * 1024 * 1024  # Lambda's direct upload limit
    assert build_zip(config, base_dir=tmp_path) == data  # deterministic
    root = tmp_path / "task"
    archive.extractall(root)
    event = json.dumps(rest_v1_event(key))
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.path[:] = [p for p in sys.path if "site-packages" not in p]
        sys.path.insert(0, {str(root)!r})
        import boto3_shim  # noqa: boto3 comes from the runtime, as on Lambda
        from llmship.gateway.lambda_handler import handler
        answer = handler(json.loads({event!r}), None)
        bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers')]
        print(json.dumps({{"status": answer["statusCode"], "bad": bad}}))
        """
    )
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "boto3_shim.py").write_text(_runtime_shim())
    env = {
        "LLMSHIP_GATEWAY_CONFIG": str(root / "gateway.json"),
        "LLMSHIP_GATEWAY_TABLE": lambda_handler.os.environ["LLMSHIP_GATEWAY_TABLE"],
        "PYTHONPATH": str(shim),
        **{k: v for k, v in lambda_handler.os.environ.items() if k.startswith("AWS_")},
    }
    done = subprocess.run(
        [sys.executable, "-s", "-c", script], capture_output=True, text=True, env=env, cwd=root
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"status": 200, "bad": []}


def _runtime_shim() -> str:
    """Put boto3 and its dependencies (what the Lambda runtime provides) on the path, and
    nothing else of this environment."""
    import botocore

    site = str(__import__("pathlib").Path(botocore.__file__).parents[1])
    return textwrap.dedent(
        f"""
        import importlib.util, sys, types
        SITE = {site!r}
        ALLOWED = ("boto3", "botocore", "s3transfer", "jmespath", "urllib3", "dateutil", "six")
        class _Finder:
            @classmethod
            def find_spec(cls, name, path=None, target=None):
                if name.split(".")[0] not in ALLOWED:
                    return None
                from importlib.machinery import PathFinder
                return PathFinder.find_spec(name, [SITE] if path is None else path)
        sys.meta_path.append(_Finder)
        """
    )
