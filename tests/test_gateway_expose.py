"""`llmship expose ROUTE --target aws` against moto server: the plan, every resource
(DynamoDB table, IAM role, Lambda functions, REST API with authorizer, usage plan, API
keys mapped from llmship keys), tags and state records, key sync, and destroy leaving
nothing behind."""

from __future__ import annotations

import io
import json
import zipfile

import boto3
import pytest
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace

from llmship.config.loader import load_config_dict
from llmship.errors import DeployError
from llmship.gateway import aws_expose
from llmship.gateway.dynamo_store import DynamoStore
from llmship.gateway.keys import new_key
from llmship.gateway.sqlite_store import SqliteStore
from llmship.state import StateStore
from llmship.targets.gateway.target import ExposedGateway

ENDPOINT = "My-Endpoint"
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
PT = "arn:aws:bedrock:us-west-2:123456789012:provisioned-model/abc123"


def loaded_config(base, **gateway):
    tokenizer = Tokenizer(WordLevel({"[UNK]": 0, "hello": 1}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    tokenizer.save(str(base / "tokenizer.json"))
    tree = {
        "project": {"name": "demo"},
        "model": {"name_or_path": "base"},
        "data": {"source": "data.jsonl"},
        "gateway": {
            "routes": {
                "sum": {
                    "targets": [
                        {"sagemaker": ENDPOINT, "weight": 9},
                        {"bedrock": MODEL, "weight": 1},
                        {"bedrock": PT, "weight": 0},
                    ],
                    "tokenizer": "tokenizer.json",
                },
                "here": {"targets": [{"local": "http://127.0.0.1:8080"}]},
            },
            **gateway,
        },
    }
    return load_config_dict(tree, base_dir=base, env={})


@pytest.fixture()
def setup(aws_env, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMSHIP_HOME", str(tmp_path / "home"))
    keys = SqliteStore(tmp_path / "home" / "gateway.db")
    records = []
    for name, routes in (("a", ["sum"]), ("b", ["*"]), ("c", ["here"])):
        _, record = new_key(name, routes, requests_per_minute=10, tokens_per_day=100)
        keys.put_key(record)
        records.append(record)
    session = boto3.Session(region_name="us-west-2")
    # moto checks layers exist: stand in for AWS's public Lambda Web Adapter layer
    layer_zip = io.BytesIO()
    with zipfile.ZipFile(layer_zip, "w") as archive:
        archive.writestr("bootstrap", "#!/bin/sh\n")
    layer = session.client("lambda").publish_layer_version(
        LayerName="LambdaAdapterLayerX86", Content={"ZipFile": layer_zip.getvalue()}
    )["LayerVersionArn"]
    loaded = loaded_config(tmp_path, aws={"web_adapter_layer": layer})
    return loaded, keys, records, session


def test_plan_lists_resources_exact_rights_and_cost(setup):
    loaded, keys, records, session = setup
    plan = aws_expose.plan(loaded, "sum", session=session, keys=keys)
    assert plan.deployment == "demo-gw-sum"
    assert {k.key_id for k in plan.keys} == {records[0].key_id, records[1].key_id}
    text = plan.describe()
    for line in ("dynamodb:table", "iam:role", "lambda:function", "apigateway:usage-plan"):
        assert line in text
    assert "per million" in text and "read 2026-11-28" in text
    one_s, ten_s = plan.per_request_usd(1), plan.per_request_usd(10)
    # 512 MB for 9 more seconds at the x86 GB-second price
    assert ten_s - one_s == pytest.approx(0.5 * 9 * 0.0000166667)
    assert plan.invoke_resources == {
        "sagemaker:InvokeEndpoint(+WithResponseStream)": [
            "arn:aws:sagemaker:us-west-2:123456789012:endpoint/my-endpoint"
        ],
        "bedrock:InvokeModel(+WithResponseStream)": sorted(
            [PT, f"arn:aws:bedrock:us-west-2::foundation-model/{MODEL}"]
        ),
    }
    inside = zipfile.ZipFile(io.BytesIO(plan.zip_bytes))
    packed = json.loads(inside.read("gateway.json"))
    assert list(packed["routes"]) == ["sum"] and packed["store"] == "dynamodb"
    assert packed["routes"]["sum"]["tokenizer"] == "tokenizers/sum.json"
    assert "tokenizers/sum.json" in inside.namelist()
    with pytest.raises(DeployError, match="cannot be reached from Lambda"):
        aws_expose.plan(loaded, "here", session=session, keys=keys)
    with pytest.raises(DeployError, match="no route 'nope'"):
        aws_expose.plan(loaded, "nope", session=session, keys=keys)


def test_expose_creates_tagged_recorded_resources_and_destroy_removes_all(setup):
    loaded, keys, records, session = setup
    state = StateStore()
    plan = aws_expose.plan(loaded, "sum", session=session, keys=keys)
    exposed = aws_expose.apply(plan, store=state, session=session, sleep=lambda _: None)
    assert exposed.url.startswith(f"https://{exposed.api_id}.execute-api.us-west-2")

    recorded = state.resources("demo-gw-sum")
    assert {r.status for r in recorded} == {"UP"}
    assert sorted(r.kind for r in recorded) == sorted(
        ["dynamodb:table", "iam:role", "lambda:function", "lambda:function",
         "apigateway:rest-api", "apigateway:usage-plan", "apigateway:api-key",
         "apigateway:api-key"]
    )  # fmt: skip
    tags = {
        "llmship:project": "demo",
        "llmship:deployment": "demo-gw-sum",
        "llmship:run": "gateway",
    }

    dynamodb = session.client("dynamodb")
    table = dynamodb.describe_table(TableName="demo-gw-sum")["Table"]
    listed = dynamodb.list_tags_of_resource(ResourceArn=table["TableArn"])["Tags"]
    assert {t["Key"]: t["Value"] for t in listed} == tags
    ttl = dynamodb.describe_time_to_live(TableName="demo-gw-sum")["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires"

    iam = session.client("iam")
    role = iam.get_role(RoleName="llmship-demo-gw-sum")["Role"]
    assert {t["Key"]: t["Value"] for t in role["Tags"]} == tags
    policy = iam.get_role_policy(RoleName="llmship-demo-gw-sum", PolicyName="llmship-gateway")
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    assert statements["InvokeEndpoints"]["Resource"] == [
        "arn:aws:sagemaker:us-west-2:123456789012:endpoint/my-endpoint"
    ]
    assert "*" not in json.dumps(statements["InvokeModels"]["Resource"])
    assert statements["GatewayTable"]["Resource"].endswith(":table/demo-gw-sum")

    aws_lambda = session.client("lambda")
    gateway = aws_lambda.get_function(FunctionName="demo-gw-sum")
    assert gateway["Configuration"]["Handler"] == "run.sh"
    env = gateway["Configuration"]["Environment"]["Variables"]
    assert env["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap"
    assert env["AWS_LWA_INVOKE_MODE"] == "response_stream"
    assert env["LLMSHIP_GATEWAY_TABLE"] == "demo-gw-sum"
    assert "LambdaAdapterLayerX86" in gateway["Configuration"]["Layers"][0]["Arn"]
    assert gateway["Tags"] == tags
    auth = aws_lambda.get_function(FunctionName="demo-gw-sum-auth")["Configuration"]
    assert auth["Handler"] == "llmship.gateway.lambda_handler.authorize"

    apigw = session.client("apigateway")
    api = apigw.get_rest_api(restApiId=exposed.api_id)
    assert api["apiKeySource"] == "AUTHORIZER" and api["tags"] == tags
    authorizers = apigw.get_authorizers(restApiId=exposed.api_id)["items"]
    assert [a["type"] for a in authorizers] == ["REQUEST"]
    assert "demo-gw-sum-auth" in authorizers[0]["authorizerUri"]
    paths = {r["path"]: r for r in apigw.get_resources(restApiId=exposed.api_id)["items"]}
    assert {"/{proxy+}", "/playground", "/ping"} <= set(paths)
    proxy = apigw.get_method(
        restApiId=exposed.api_id, resourceId=paths["/{proxy+}"]["id"], httpMethod="ANY"
    )
    assert proxy["authorizationType"] == "CUSTOM" and proxy["apiKeyRequired"] is True
    assert "response-streaming-invocations" in proxy["methodIntegration"]["uri"]
    open_page = apigw.get_method(
        restApiId=exposed.api_id, resourceId=paths["/playground"]["id"], httpMethod="GET"
    )
    assert open_page["authorizationType"] == "NONE"

    plans = apigw.get_usage_plans()["items"]
    assert len(plans) == 1 and plans[0]["apiStages"] == [{"apiId": exposed.api_id, "stage": "api"}]
    assert plans[0]["throttle"] == {"rateLimit": 50.0, "burstLimit": 100}
    plan_keys = apigw.get_usage_plan_keys(usagePlanId=plans[0]["id"])["items"]
    assert len(plan_keys) == 2
    remote = DynamoStore("demo-gw-sum", session=session)
    for record in records[:2]:
        copied = remote.get_key(record.key_id)
        assert copied.digest == record.digest
        api_key = next(k for k in plan_keys if k["name"] == f"demo-gw-sum-{record.key_id}")
        value = apigw.get_api_key(apiKey=api_key["id"], includeValue=True)["value"]
        assert copied.details["usage_key"] == value  # what the authorizer names
    assert remote.get_key(records[2].key_id) is None  # not allowed on the route

    # a key made later is carried over; a revoked one is revoked there too
    resources = aws_expose.exposed_deployments(state)["demo-gw-sum"]
    _, late = new_key("late", ["sum"], requests_per_minute=1, tokens_per_day=1)
    assert aws_expose.sync_key(resources, late, session=session)
    assert remote.get_key(late.key_id) is not None
    revoked = records[0].revoke(5.0)
    resources = aws_expose.exposed_deployments(state)["demo-gw-sum"]
    aws_expose.sync_key(resources, revoked, session=session)
    assert remote.get_key(records[0].key_id).revoked == 5.0
    mapped = next(
        r for r in state.resources("demo-gw-sum") if r.details.get("key_id") == records[0].key_id
    )
    assert apigw.get_api_key(apiKey=mapped.details["id"])["enabled"] is False

    deleted = aws_expose.destroy(state, "demo-gw-sum", session=session)
    assert len(deleted) == 9
    assert state.resources("demo-gw-sum") == []
    assert apigw.get_rest_apis()["items"] == []
    assert apigw.get_usage_plans()["items"] == []
    assert apigw.get_api_keys()["items"] == []
    assert aws_lambda.list_functions()["Functions"] == []
    assert "demo-gw-sum" not in dynamodb.list_tables()["TableNames"]
    assert not [r for r in iam.list_roles()["Roles"] if r["RoleName"] == "llmship-demo-gw-sum"]
    assert aws_expose.destroy(state, "demo-gw-sum", session=session) == []  # again: no-op


def test_create_function_waits_for_a_new_role_lambda_cannot_assume_yet(setup):
    """Lambda answers CreateFunction with InvalidParameterValueException "The role defined
    for the function cannot be assumed by Lambda." while a new role propagates
    (boto/boto3#2976); the call is retried, with waits, until Lambda accepts the role."""
    from botocore.awsrequest import AWSResponse

    loaded, keys, _records, session = setup
    refusals = []

    def refuse_twice(**_):
        if len(refusals) < 2:
            refusals.append(1)
            error = {
                "Code": "InvalidParameterValueException",
                "Message": "The role defined for the function cannot be assumed by Lambda.",
            }
            return AWSResponse("", 400, {}, None), {
                "Error": error,
                "ResponseMetadata": {"HTTPStatusCode": 400},
            }
        return None

    session.events.register("before-call.lambda.CreateFunction", refuse_twice)
    slept: list[float] = []
    state = StateStore()
    plan = aws_expose.plan(loaded, "sum", session=session, keys=keys)
    try:
        aws_expose.apply(plan, store=state, session=session, sleep=slept.append)
    finally:
        aws_expose.destroy(state, "demo-gw-sum", session=session)
    assert len(refusals) == 2 and len(slept) == 2


def test_buffered_mode_uses_mangum_and_the_29_second_integration(setup):
    loaded, keys, _, session = setup
    loaded.config.gateway.aws.streaming = False
    state = StateStore()
    plan = aws_expose.plan(loaded, "sum", session=session, keys=keys)
    exposed = aws_expose.apply(plan, store=state, session=session, sleep=lambda _: None)
    try:
        config = session.client("lambda").get_function(FunctionName="demo-gw-sum")["Configuration"]
        assert config["Handler"] == "llmship.gateway.lambda_handler.handler"
        assert not config.get("Layers")
        apigw = session.client("apigateway")
        proxy = next(
            r
            for r in apigw.get_resources(restApiId=exposed.api_id)["items"]
            if r["path"] == "/{proxy+}"
        )
        integration = apigw.get_integration(
            restApiId=exposed.api_id, resourceId=proxy["id"], httpMethod="ANY"
        )
        assert integration["timeoutInMillis"] == 29000
        assert integration["uri"].endswith(
            "/2015-03-31/functions/" + config["FunctionArn"] + "/invocations"
        )
    finally:  # what `llmship destroy` runs once target_of names the deployment "gateway"
        target = ExposedGateway(state, session=session)
        status = target.status("demo-gw-sum", state.resources("demo-gw-sum"))
        assert status.address == exposed.url and status.state == "running"
        assert len(target.destroy("demo-gw-sum")) == 8
    assert state.resources() == []
