"""`llmship expose ROUTE --target aws`: the gateway as a Lambda function behind API Gateway.

What one exposed route owns (deployment `<project>-gw-<route>`; every resource tagged
llmship:project / llmship:deployment / llmship:run and recorded in state before its
create call, so `llmship destroy` or `expose --destroy` can always clean up):

    dynamodb:table          <deployment>            keys (hashes), counters, request log
    iam:role                llmship-<deployment>    invoke rights on exactly the route's
                                                    endpoints / models, the table, its logs
    lambda:function         <deployment>            the gateway (zip built by bundle.py)
    lambda:function         <deployment>-auth       the REQUEST authorizer (same zip)
    apigateway:rest-api     <deployment>            /{proxy+} and / (authorizer, API key
                                                    source AUTHORIZER), /playground, /ping
    apigateway:usage-plan   <deployment>            throttle (+ optional quota) per key
    apigateway:api-key      <deployment>-<key id>   one per llmship key allowed on the route

Streaming: Python Lambdas stream only through a custom runtime or the Lambda Web
Adapter; llmship uses the adapter (AWS's public layer): the same ASGI app runs under
uvicorn exactly as on this machine, with no runtime protocol code of our own to keep
right. The REST integration then calls the function's response-streaming invocation
(responseTransferMode STREAM). With gateway.aws.streaming off, Mangum answers whole
responses, and API Gateway cuts buffered integrations at 29 s (SageMaker allows 60 s).

The API keys' values are generated here and never given to callers: with the API key
source AUTHORIZER, the authorizer names each llmship key's API key as the usage
identifier, so callers send only their llmship key (Bearer or x-api-key) and the usage
plan still counts requests per key, as a backstop behind the gateway's own limits.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from llmship.aws.errors import aws_call, ignore_not_found, is_not_found
from llmship.aws.session import client
from llmship.config.gateway import GatewayConfig, GatewayTarget
from llmship.errors import DeployError
from llmship.gateway.keys import KeyRecord
from llmship.gateway.store import GatewayStore
from llmship.state import Kind, Resource, StateStore, Status, tag_list, tags

if TYPE_CHECKING:
    from llmship.config.loader import LoadedConfig

KINDS = (
    Kind.DYNAMODB_TABLE,
    Kind.IAM_ROLE,
    Kind.LAMBDA_FUNCTION,
    Kind.REST_API,
    Kind.USAGE_PLAN,
    Kind.API_KEY,
)
# The call destroy makes for each kind (named in errors; "not found" counts as deleted).
DELETES = {
    Kind.DYNAMODB_TABLE: "DeleteTable",
    Kind.IAM_ROLE: "DeleteRole",
    Kind.LAMBDA_FUNCTION: "DeleteFunction",
    Kind.REST_API: "DeleteRestApi",
    Kind.USAGE_PLAN: "DeleteUsagePlan",
    Kind.API_KEY: "DeleteApiKey",
}
WEB_ADAPTER = "arn:{partition}:lambda:{region}:753240598075:layer:LambdaAdapterLayer{arch}:26"
# Public list prices, US East (N. Virginia), from aws.amazon.com/lambda/pricing,
# aws.amazon.com/api-gateway/pricing and aws.amazon.com/dynamodb/pricing/on-demand,
# as read 2026-11-28. Other regions differ by a few percent.
PRICES = {
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_s_x86_64": 0.0000166667,
    "lambda_gb_s_arm64": 0.0000133334,
    "apigw_rest_request": 3.50 / 1e6,
    "dynamodb_write": 0.625 / 1e6,
    "dynamodb_read": 0.125 / 1e6,
}
PRICE_SOURCE = (
    "list prices, us-east-1, from the Lambda, API Gateway and DynamoDB pricing pages "
    "(read 2026-11-28)"
)
AUTHORIZER_MB, AUTHORIZER_S = 128, 0.05


def deployment_name(project: str, route: str) -> str:
    from llmship.sagemaker.names import check_name

    return check_name(f"{project}-gw-{route}"[:58].rstrip("-"), "gateway.routes (route name)")


def table_name(deployment: str) -> str:
    return deployment


def function_name(deployment: str) -> str:
    """The gateway's Lambda function (`aws check --for expose` plans with it too)."""
    return deployment


def role_name(deployment: str) -> str:
    """The gateway functions' execution role."""
    return f"llmship-{deployment}"[:64]


@dataclass(frozen=True)
class ExposePlan:
    """What apply will create; built from read-only calls and the local zip build."""

    deployment: str
    project: str
    route: str
    region: str
    account: str
    partition: str
    config: GatewayConfig  # only the exposed route
    zip_bytes: bytes
    keys: tuple[KeyRecord, ...]  # active keys allowed on the route
    invoke_resources: dict[str, list[str]] = field(default_factory=dict)  # action -> ARNs

    @property
    def tags(self) -> dict[str, str]:
        return tags(self.project, self.deployment, "gateway")

    @property
    def function(self) -> str:
        return function_name(self.deployment)

    @property
    def authorizer(self) -> str:
        return f"{self.deployment}-auth"

    @property
    def role(self) -> str:
        return role_name(self.deployment)

    @property
    def settings(self):
        return self.config.aws

    @property
    def question(self) -> str:
        """Asked before apply: nothing bills by the hour, but a public API and a role are
        created, so exposing always asks (the one flow, llmship.target.carry_out)."""
        return "Create these resources?"

    def check(self) -> None:
        """Nothing left to refuse: plan() already refused a route Lambda cannot reach."""

    def per_request_usd(self, model_seconds: float) -> float:
        """One request that keeps the gateway function waiting `model_seconds`."""
        arch = self.settings.architecture
        gb_s = PRICES[f"lambda_gb_s_{arch}"]
        gateway = PRICES["lambda_request"] + self.settings.memory_mb / 1024 * model_seconds * gb_s
        authorizer = PRICES["lambda_request"] + AUTHORIZER_MB / 1024 * AUTHORIZER_S * gb_s
        # writes: rate counter, token counter, log entry; reads: key (twice), token count
        table = 3 * PRICES["dynamodb_write"] + 3 * PRICES["dynamodb_read"]
        return gateway + authorizer + PRICES["apigw_rest_request"] + table

    def describe(self) -> str:
        s = self.settings
        mode = (
            "streaming (Lambda Web Adapter layer, REST integration in STREAM mode)"
            if s.streaming
            else "buffered (Mangum; API Gateway stops buffered integrations at 29 s)"
        )
        lines = [
            f"expose route {self.route} as {self.deployment} in {self.region} ({mode}):",
            f"  dynamodb:table         {table_name(self.deployment)} (on demand, TTL on expires)",
            f"  iam:role               {self.role}",
        ]
        for action, arns in self.invoke_resources.items():
            lines += [f"      {action} on {arn}" for arn in arns]
        lines += [
            f"  lambda:function        {self.function} ({s.runtime}, {s.architecture}, "
            f"{s.memory_mb} MB, {s.timeout_s} s, zip {len(self.zip_bytes) / 1e6:.1f} MB, no torch)",
            f"  lambda:function        {self.authorizer} (REQUEST authorizer, 128 MB)",
            f"  apigateway:rest-api    {self.deployment} (stage {s.stage})",
            f"  apigateway:usage-plan  {self.deployment} ({s.rate_limit:g} req/s, burst "
            f"{s.burst_limit}"
            + (f", {s.daily_request_quota}/day" if s.daily_request_quota else "")
            + " per key)",
            f"  apigateway:api-key     {len(self.keys)} (one per llmship key allowed on "
            f"{self.route}: {', '.join(k.key_id for k in self.keys) or 'none yet'})",
            "cost per request (nothing while idle; " + PRICE_SOURCE + "):",
        ]
        for seconds in (1, 10, 30):
            lines.append(
                f"  ${self.per_request_usd(seconds):.7f} when the model takes {seconds} s "
                f"(${self.per_request_usd(seconds) * 1e6:,.0f} per million)"
            )
        lines.append("  plus the model's own price (SageMaker instance hours or Bedrock tokens)")
        return "\n".join(lines)


def plan(loaded: LoadedConfig, route: str, *, session, keys: GatewayStore) -> ExposePlan:
    """Check the route can run on AWS and build the zip (nothing is created); the CLI
    shows it, asks and applies it through the one flow (llmship.target.carry_out)."""
    from llmship.aws.iam import _identity
    from llmship.gateway.bundle import build_zip

    gateway = loaded.config.gateway
    if route not in gateway.routes:
        raise DeployError(
            f"gateway.routes: no route {route!r}; routes: {', '.join(gateway.routes) or 'none'}"
        )
    chosen = gateway.routes[route]
    local = [t.local or t.endpoint_url for t in chosen.targets if t.local or t.endpoint_url]
    if local:
        raise DeployError(
            f"gateway.routes.{route}.targets: {', '.join(local)} is on this machine and cannot be "
            "reached from Lambda; route to a SageMaker endpoint or a Bedrock model"
        )
    region = session.region_name
    account, partition = _identity(session)
    config = gateway.model_copy(update={"routes": {route: chosen}})
    zip_bytes = build_zip(
        config,
        base_dir=loaded.base_dir,
        runtime=gateway.aws.runtime,
        architecture=gateway.aws.architecture,
    )
    allowed = tuple(k for k in keys.list_keys() if k.active and k.allows(route))
    return ExposePlan(
        deployment=deployment_name(loaded.config.project.name, route),
        project=loaded.config.project.name,
        route=route,
        region=region,
        account=account,
        partition=partition,
        config=config,
        zip_bytes=zip_bytes,
        keys=allowed,
        invoke_resources=invoke_resources(chosen.targets, region, account, partition),
    )


def invoke_resources(
    targets: list[GatewayTarget], region: str, account: str, partition: str
) -> dict[str, list[str]]:
    """IAM action -> the exact ARNs the route's targets need."""
    sagemaker, bedrock = [], []
    for target in targets:
        where = target.region or region
        if target.sagemaker:
            # endpoint ARNs are lower case whatever the name's case
            sagemaker.append(
                f"arn:{partition}:sagemaker:{where}:{account}:endpoint/{target.sagemaker.lower()}"
            )
        elif target.bedrock:
            model = target.bedrock
            if model.startswith("arn:"):
                bedrock.append(model)
            else:
                bedrock.append(f"arn:{partition}:bedrock:{where}::foundation-model/{model}")
    out = {}
    if sagemaker:
        out["sagemaker:InvokeEndpoint(+WithResponseStream)"] = sorted(set(sagemaker))
    if bedrock:
        out["bedrock:InvokeModel(+WithResponseStream)"] = sorted(set(bedrock))
    return out


def role_policy(p: ExposePlan) -> dict[str, Any]:
    table = f"arn:{p.partition}:dynamodb:{p.region}:{p.account}:table/{table_name(p.deployment)}"
    logs = f"arn:{p.partition}:logs:{p.region}:{p.account}:log-group:/aws/lambda/{p.deployment}"
    statements: list[dict[str, Any]] = [
        {
            "Sid": "GatewayTable",
            "Effect": "Allow",
            "Action": [
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:Query",
            ],
            "Resource": table,
        },
        {
            "Sid": "OwnLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [logs, f"{logs}-auth", f"{logs}:*", f"{logs}-auth:*"],
        },
    ]
    for action, arns in p.invoke_resources.items():
        if action.startswith("sagemaker"):
            actions = ["sagemaker:InvokeEndpoint", "sagemaker:InvokeEndpointWithResponseStream"]
            sid = "InvokeEndpoints"
        else:
            actions = ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
            sid = "InvokeModels"
        statements.append({"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": arns})
    return {"Version": "2012-10-17", "Statement": statements}


@dataclass(frozen=True)
class Exposed:
    deployment: str
    url: str
    api_id: str


class _Apply:
    """The create calls, in order, each recorded in state before it is made."""

    def __init__(self, p: ExposePlan, store: StateStore, session, sleep: Callable[[float], None]):
        self.p, self.session, self.sleep = p, session, sleep
        self.store = store.owned_by("gateway")
        self.iam = client(session, "iam")
        self.aws_lambda = client(session, "lambda")
        self.apigw = client(session, "apigateway")
        self.dynamodb = client(session, "dynamodb")

    def record(self, kind: str, name: str, **details) -> None:
        self.store.record_creating(
            kind,
            name,
            self.p.deployment,
            self.p.project,
            self.p.region,
            {"gateway_route": self.p.route, **details},
        )

    def up(self, kind: str, name: str, **details) -> None:
        self.store.set_status(kind, name, Status.UP, self.p.region, details)

    def call(self, service_client, operation: str, resource: str, **kwargs):
        service = service_client.meta.service_model.service_name
        with aws_call(service, operation, resource):
            return getattr(service_client, operation)(**kwargs)

    def table(self) -> str:
        name = table_name(self.p.deployment)
        self.record(Kind.DYNAMODB_TABLE, name)
        self.call(
            self.dynamodb,
            "create_table",
            name,
            TableName=name,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
            Tags=tag_list(self.p.tags),
        )
        self.dynamodb.get_waiter("table_exists").wait(
            TableName=name, WaiterConfig={"Delay": 2, "MaxAttempts": 60}
        )
        self.call(
            self.dynamodb,
            "update_time_to_live",
            name,
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"},
        )
        arn = self.dynamodb.describe_table(TableName=name)["Table"]["TableArn"]
        self.up(Kind.DYNAMODB_TABLE, name, arn=arn)
        return name

    def role(self) -> str:
        name = self.p.role
        self.record(Kind.IAM_ROLE, name)
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        arn = self.call(
            self.iam,
            "create_role",
            name,
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(trust),
            Description=f"llmship gateway {self.p.deployment}",
            Tags=tag_list(self.p.tags),
        )["Role"]["Arn"]
        self.call(
            self.iam,
            "put_role_policy",
            name,
            RoleName=name,
            PolicyName="llmship-gateway",
            PolicyDocument=json.dumps(role_policy(self.p)),
        )
        self.up(Kind.IAM_ROLE, name, arn=arn, policies=["llmship-gateway"])
        return arn

    def function(self, name: str, role_arn: str, table: str, *, authorizer: bool) -> str:
        s = self.p.settings
        streaming = s.streaming and not authorizer
        environment = {"LLMSHIP_GATEWAY_CONFIG": "gateway.json", "LLMSHIP_GATEWAY_TABLE": table}
        options: dict[str, Any] = {}
        if streaming:
            arch = "X86" if s.architecture == "x86_64" else "Arm64"
            layer = s.web_adapter_layer or WEB_ADAPTER.format(
                partition=self.p.partition, region=self.p.region, arch=arch
            )
            options["Layers"] = [layer]
            environment.update(
                AWS_LAMBDA_EXEC_WRAPPER="/opt/bootstrap",
                AWS_LWA_INVOKE_MODE="response_stream",
                AWS_LWA_PORT="8080",
                AWS_LWA_READINESS_CHECK_PATH="/ping",
            )
        if authorizer:
            handler = "llmship.gateway.lambda_handler.authorize"
        else:
            handler = "run.sh" if streaming else "llmship.gateway.lambda_handler.handler"
        self.record(Kind.LAMBDA_FUNCTION, name, streaming=streaming)
        from llmship.aws.iam import call_with_new_role

        with aws_call("lambda", "CreateFunction", name):
            arn = call_with_new_role(  # a new role takes a few seconds to be usable by Lambda
                lambda: self.aws_lambda.create_function(
                    FunctionName=name,
                    Runtime=s.runtime,
                    Role=role_arn,
                    Handler=handler,
                    Code={"ZipFile": self.p.zip_bytes},
                    Timeout=10 if authorizer else s.timeout_s,
                    MemorySize=AUTHORIZER_MB if authorizer else s.memory_mb,
                    Architectures=[s.architecture],
                    Environment={"Variables": environment},
                    Tags=self.p.tags,
                    **options,
                )["FunctionArn"],
                role_arn=role_arn,
                service="lambda",
                operation="CreateFunction",
                resource=name,
                sleep=self.sleep,
            )
        self.up(Kind.LAMBDA_FUNCTION, name, arn=arn)
        return arn

    def api(self, gateway_arn: str, authorizer_arn: str) -> tuple[str, str]:
        p, s = self.p, self.p.settings
        name = p.deployment
        self.record(Kind.REST_API, name)
        api = self.call(
            self.apigw,
            "create_rest_api",
            name,
            name=name,
            description=f"llmship gateway for route {p.route}",
            apiKeySource="AUTHORIZER",
            endpointConfiguration={"types": ["REGIONAL"]},
            tags=p.tags,
        )
        api_id = api["id"]
        # the record's name is the API's name; its id is in details (destroy needs it)
        self.store.set_status(Kind.REST_API, name, Status.CREATING, p.region, {"id": api_id})
        apigw_lambda = f"arn:{p.partition}:apigateway:{p.region}:lambda:path"
        authorizer = self.call(
            self.apigw,
            "create_authorizer",
            name,
            restApiId=api_id,
            name="llmship-keys",
            type="REQUEST",
            authorizerUri=f"{apigw_lambda}/2015-03-31/functions/{authorizer_arn}/invocations",
            authorizerResultTtlInSeconds=0,  # no identity source: called for every request
        )["id"]
        root = next(
            r["id"] for r in self.apigw.get_resources(restApiId=api_id)["items"] if r["path"] == "/"
        )
        if s.streaming:
            uri = (
                f"{apigw_lambda}/2021-11-15/functions/{gateway_arn}/response-streaming-invocations"
            )
            integration = {"responseTransferMode": "STREAM", "timeoutInMillis": s.timeout_s * 1000}
        else:
            uri = f"{apigw_lambda}/2015-03-31/functions/{gateway_arn}/invocations"
            integration = {"timeoutInMillis": min(29_000, s.timeout_s * 1000)}

        def method(resource_id: str, http: str, protected: bool) -> None:
            auth = {"authorizationType": "CUSTOM", "authorizerId": authorizer} if protected else {}
            self.call(
                self.apigw,
                "put_method",
                name,
                restApiId=api_id,
                resourceId=resource_id,
                httpMethod=http,
                apiKeyRequired=protected,
                **({"authorizationType": "NONE"} | auth),
            )
            self.call(
                self.apigw,
                "put_integration",
                name,
                restApiId=api_id,
                resourceId=resource_id,
                httpMethod=http,
                type="AWS_PROXY",
                integrationHttpMethod="POST",
                uri=uri,
                **integration,
            )

        proxy = self.call(
            self.apigw,
            "create_resource",
            name,
            restApiId=api_id,
            parentId=root,
            pathPart="{proxy+}",
        )["id"]
        method(proxy, "ANY", protected=True)
        for open_path in ("playground", "ping"):
            resource = self.call(
                self.apigw,
                "create_resource",
                name,
                restApiId=api_id,
                parentId=root,
                pathPart=open_path,
            )["id"]
            method(resource, "GET", protected=False)
        source = f"arn:{p.partition}:execute-api:{p.region}:{p.account}:{api_id}/*"
        for function in (p.function, p.authorizer):
            self.call(
                self.aws_lambda,
                "add_permission",
                function,
                FunctionName=function,
                StatementId="llmship-apigateway",
                Action="lambda:InvokeFunction",
                Principal="apigateway.amazonaws.com",
                SourceArn=source,
            )
        self.call(self.apigw, "create_deployment", name, restApiId=api_id, stageName=s.stage)
        url = f"https://{api_id}.execute-api.{p.region}.amazonaws.com/{s.stage}"
        self.up(Kind.REST_API, name, id=api_id, url=url)
        return api_id, url

    def usage_plan(self, api_id: str) -> str:
        p, s = self.p, self.p.settings
        self.record(Kind.USAGE_PLAN, p.deployment)
        extra = (
            {"quota": {"limit": s.daily_request_quota, "period": "DAY"}}
            if s.daily_request_quota
            else {}
        )
        plan_id = self.call(
            self.apigw,
            "create_usage_plan",
            p.deployment,
            name=p.deployment,
            description=f"llmship gateway {p.route}: a backstop behind the gateway's own limits",
            apiStages=[{"apiId": api_id, "stage": s.stage}],
            throttle={"rateLimit": s.rate_limit, "burstLimit": s.burst_limit},
            tags=p.tags,
            **extra,
        )["id"]
        self.up(Kind.USAGE_PLAN, p.deployment, id=plan_id, api_id=api_id, stage=s.stage)
        return plan_id


def apply(
    p: ExposePlan,
    *,
    store: StateStore,
    session,
    sleep: Callable[[float], None] = time.sleep,
) -> Exposed:
    """Create everything the plan lists, in dependency order, recording each first."""
    from llmship.gateway.dynamo_store import DynamoStore

    run = _Apply(p, store, session, sleep)
    table = run.table()
    role_arn = run.role()
    gateway_arn = run.function(p.function, role_arn, table, authorizer=False)
    authorizer_arn = run.function(p.authorizer, role_arn, table, authorizer=True)
    api_id, url = run.api(gateway_arn, authorizer_arn)
    run.usage_plan(api_id)
    remote = DynamoStore(table, session=session)
    for record in p.keys:
        _map_key(store, session, p.deployment, remote, record)
    return Exposed(p.deployment, url, api_id)


def _map_key(
    store: StateStore, session, deployment: str, remote: GatewayStore, record: KeyRecord
) -> str:
    """Copy a key (its hash) into the table with a fresh API Gateway key mapped to it."""
    resources = store.resources(deployment)
    plan_record = next(r for r in resources if r.kind == Kind.USAGE_PLAN)
    apigw = client(session, "apigateway")
    name = f"{deployment}-{record.key_id}"
    usage_key = secrets.token_urlsafe(30)
    store.record_creating(
        Kind.API_KEY,
        name,
        deployment,
        plan_record.project,
        plan_record.region,
        {"gateway_route": plan_record.details.get("gateway_route"), "key_id": record.key_id},
    )
    with aws_call("apigateway", "CreateApiKey", name):
        key_id = apigw.create_api_key(
            name=name,
            description=f"usage identifier of llmship key {record.key_id} ({record.name})",
            enabled=record.active,
            value=usage_key,
            tags=tags(plan_record.project, deployment, "gateway"),
        )["id"]
        apigw.create_usage_plan_key(
            usagePlanId=plan_record.details["id"], keyId=key_id, keyType="API_KEY"
        )
    store.set_status(Kind.API_KEY, name, Status.UP, plan_record.region, {"id": key_id})
    remote.put_key(replace(record, details={**record.details, "usage_key": usage_key}))
    return name


def exposed_deployments(store: StateStore) -> dict[str, list[Resource]]:
    """Recorded exposed gateways: deployment -> its resources."""
    out: dict[str, list[Resource]] = {}
    for resource in store.resources():
        if resource.details.get("gateway_route"):
            out.setdefault(resource.deployment, []).append(resource)
    return {d: rs for d, rs in out.items() if any(r.kind == Kind.DYNAMODB_TABLE for r in rs)}


def sync_key(resources: list[Resource], record: KeyRecord, *, session=None, aws=None) -> list[str]:
    """Bring one exposed gateway up to date with a key change: a new key allowed on its
    route is copied and mapped; a revoked key is revoked there and its API key disabled.
    Without a session, one from `aws` (the config's AwsConfig) in the gateway's region."""
    from llmship.aws.session import make_session
    from llmship.gateway.dynamo_store import DynamoStore

    table = next(r for r in resources if r.kind == Kind.DYNAMODB_TABLE)
    route = table.details["gateway_route"]
    if not record.allows(route):
        return []
    session = session or make_session(aws, region=table.region)
    remote = DynamoStore(table.name, session=session)
    existing = remote.get_key(record.key_id)
    if existing is None and record.active:
        store = StateStore(owner="gateway")
        _map_key(store, session, table.deployment, remote, record)
        return [f"key {record.key_id} added to the exposed gateway {table.deployment}"]
    if existing is not None and not record.active:
        remote.put_key(replace(existing, revoked=record.revoked))
        for resource in resources:
            if resource.kind == Kind.API_KEY and resource.details.get("key_id") == record.key_id:
                client(session, "apigateway").update_api_key(
                    apiKey=resource.details["id"],
                    patchOperations=[{"op": "replace", "path": "/enabled", "value": "false"}],
                )
        return [f"key {record.key_id} revoked on the exposed gateway {table.deployment}"]
    return []


def destroy(store: StateStore, deployment: str, *, session) -> list[str]:
    """Delete what expose created for `deployment`, newest first; each record is removed
    only after its deletion succeeded (or it was already gone). Safe to run again."""
    from botocore.exceptions import ClientError

    order = {kind: i for i, kind in enumerate(reversed(KINDS))}
    resources = sorted(
        (r for r in store.resources(deployment) if r.kind in order), key=lambda r: order[r.kind]
    )
    apigw, iam = client(session, "apigateway"), client(session, "iam")
    aws_lambda, dynamodb = client(session, "lambda"), client(session, "dynamodb")
    deleted = []
    for r in resources:
        store.set_status(r.kind, r.name, Status.DELETING, r.region)
        with ignore_not_found(r.kind.split(":")[0], DELETES[r.kind], r.name):
            if r.kind == Kind.API_KEY and "id" in r.details:
                apigw.delete_api_key(apiKey=r.details["id"])
            elif r.kind == Kind.USAGE_PLAN and "id" in r.details:
                stage = f"{r.details['api_id']}:{r.details['stage']}"
                try:
                    apigw.update_usage_plan(
                        usagePlanId=r.details["id"],
                        patchOperations=[{"op": "remove", "path": "/apiStages", "value": stage}],
                    )
                except ClientError as exc:
                    if not is_not_found(exc, "apigateway"):
                        raise
                apigw.delete_usage_plan(usagePlanId=r.details["id"])
            elif r.kind == Kind.REST_API and "id" in r.details:
                apigw.delete_rest_api(restApiId=r.details["id"])
            elif r.kind == Kind.LAMBDA_FUNCTION:
                aws_lambda.delete_function(FunctionName=r.name)
            elif r.kind == Kind.IAM_ROLE:
                for policy in iam.list_role_policies(RoleName=r.name)["PolicyNames"]:
                    iam.delete_role_policy(RoleName=r.name, PolicyName=policy)
                iam.delete_role(RoleName=r.name)
            elif r.kind == Kind.DYNAMODB_TABLE:
                dynamodb.delete_table(TableName=r.name)
        store.remove(r.kind, r.name, r.region)
        deleted.append(f"{r.kind} {r.name}")
    return deleted
