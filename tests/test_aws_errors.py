"""One AWS error vocabulary: "not found" per service as AWS really answers it, the
translation of a failed call into AwsError, and the teardown paths that depend on them.

Every error shape below is one AWS documents (API reference, botocore's service model)
or one reported from a real account, cited beside it; none is moto's wording. Where moto
lacks the API or answers differently, botocore's Stubber plays AWS on a real client.
"""

from __future__ import annotations

import json
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.stub import Stubber

from llmship.aws.errors import (
    aws_call,
    error_code,
    gone_or_raise,
    ignore_not_found,
    is_access_denied,
    is_not_found,
    translate,
)
from llmship.aws.secrets import ROLE_POLICY_KIND, SECRET_KIND, grant_read, store_secret
from llmship.bedrock.customize import MODEL_KIND
from llmship.config.schema import AwsConfig
from llmship.errors import AwsError
from llmship.targets.bedrock.target import PT_KIND, BedrockTarget
from llmship.targets.sagemaker.network import VPC_ENDPOINT_KIND
from llmship.targets.sagemaker.target import SageMakerTarget
from llmship.train.sagemaker_job import JOB_KIND

REGION = "us-west-2"
ACCOUNT = "123456789012"
# aws/aws-sdk#165 (and aws/amazon-sagemaker-examples#2360, from a real account):
# "An error occurred (ValidationException) when calling the DescribeTrainingJob
# operation: Requested resource not found." for a job that does not exist.
MISSING_JOB = ("ValidationException", "Requested resource not found.")


def client_error(code: str, message: str, operation: str = "Call", status: int = 400):
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        operation,
    )


# ---- "not found", per service ---------------------------------------------------------

GONE = [
    # SageMaker: aws/aws-sdk#165 (DescribeTrainingJob, real account)
    ("sagemaker", *MISSING_JOB),
    # SageMaker: the ResourceNotFound shape botocore's model lists for DescribeTrainingJob
    # and StopTrainingJob (botocore/data/sagemaker/2017-07-24/service-2.json)
    ("sagemaker", "ResourceNotFound", "Resource being access is not found."),
    # SageMaker DeleteEndpoint on a deleted endpoint (aws/amazon-sagemaker-examples#2402)
    (
        "sagemaker",
        "ValidationException",
        'Could not find endpoint "arn:aws:sagemaker:us-west-2:521695447989:endpoint/ipinsights".',
    ),
    # Bedrock API reference, Common/operation errors: ResourceNotFoundException, 404
    (
        "bedrock",
        "ResourceNotFoundException",
        "The specified resource ARN was not found. Check the ARN and try your request again.",
    ),
    # S3: a HEAD has no body, so botocore reports the status code (HeadObject/HeadBucket)
    ("s3", "404", "Not Found"),
    ("s3", "NoSuchKey", "The specified key does not exist."),
    ("s3", "NoSuchBucket", "The specified bucket does not exist"),
    ("s3", "NoSuchUpload", "The specified upload does not exist."),
    # IAM API reference, GetRole / DeleteRolePolicy: NoSuchEntity, 404
    ("iam", "NoSuchEntity", "The role with name llmship-ttl-x cannot be found."),
    # EC2 API reference, error codes: InvalidVpcEndpointId.NotFound
    ("ec2", "InvalidVpcEndpointId.NotFound", "The Vpc Endpoint Id 'vpce-1234' does not exist"),
    # Secrets Manager API reference, DeleteSecret: ResourceNotFoundException
    (
        "secretsmanager",
        "ResourceNotFoundException",
        "Secrets Manager can't find the specified secret.",
    ),
    ("scheduler", "ResourceNotFoundException", "Schedule llmship-ttl-x does not exist."),
    ("logs", "ResourceNotFoundException", "The specified log group does not exist."),
    ("lambda", "ResourceNotFoundException", "Function not found: arn:aws:lambda:f"),
    ("dynamodb", "ResourceNotFoundException", "Requested resource not found"),
    # SQS's JSON protocol sends the query-compatible code (softwaremill/elasticmq#825 shows
    # real AWS: "(AWS.SimpleQueueService.NonExistentQueue) when calling the GetQueueUrl
    # operation: The specified queue does not exist for this wsdl version."; boto/boto3#2306)
    (
        "sqs",
        "AWS.SimpleQueueService.NonExistentQueue",
        "The specified queue does not exist for this wsdl version.",
    ),
    ("sqs", "QueueDoesNotExist", "The specified queue does not exist."),
    # API Gateway API reference: NotFoundException, 404
    ("apigateway", "NotFoundException", "Invalid API Key identifier specified"),
    # Application Auto Scaling (ansible/ansible#40237, eagletmt/hako#69)
    (
        "application-autoscaling",
        "ObjectNotFoundException",
        "No scalable target registered for service namespace: sagemaker, resource ID: "
        "endpoint/ep/variant/AllTraffic, scalable dimension: "
        "sagemaker:variant:DesiredInstanceCount",
    ),
    # SNS's model: NotFoundException has the code NotFound; KMS's: NotFoundException
    ("sns", "NotFound", "Topic does not exist"),
    ("kms", "NotFoundException", "Alias arn:aws:kms:us-west-2:123456789012:alias/x is not found."),
    # CloudWatch's model: DeleteAlarms raises ResourceNotFound (code ResourceNotFound)
    ("cloudwatch", "ResourceNotFound", "The named resource does not exist."),
]

NOT_GONE = [
    # A refusal is not absence: the resource may still exist and bill.
    ("sagemaker", "ValidationException", 'Cannot update in-progress endpoint "ep".'),
    (
        "sagemaker",
        "ValidationException",
        "1 validation error detected: Value 'a_b' at 'trainingJobName' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9])*",
    ),
    # Bedrock: a ValidationException is never "gone" (issue 15, item 6), even when its
    # words would be SageMaker's
    ("bedrock", "ValidationException", "Input validation failed. Check your request parameters."),
    ("bedrock", "ValidationException", "Requested resource not found."),
    ("bedrock", "ConflictException", "Error occurred because of a conflict."),
    ("s3", "AccessDenied", "Access Denied"),
    ("s3", "403", "Forbidden"),
    ("iam", "DeleteConflict", "Cannot delete entity, must delete policies first."),
    ("ec2", "InvalidParameterValue", "Invalid value for VpcEndpointIds"),
    ("ec2", "UnauthorizedOperation", "You are not authorized to perform this operation."),
    ("secretsmanager", "InvalidRequestException", "You can't perform this operation on a secret"),
    ("dynamodb", "ResourceInUseException", "Attempt to change a resource which is still in use"),
    # The codes of one service mean nothing for another
    ("iam", "ResourceNotFoundException", "x"),
    ("sqs", "NoSuchEntity", "x"),
]


@pytest.mark.parametrize(("service", "code", "message"), GONE)
def test_not_found_as_each_service_says_it(service, code, message):
    assert is_not_found(client_error(code, message), service)


@pytest.mark.parametrize(("service", "code", "message"), NOT_GONE)
def test_a_refusal_is_not_not_found(service, code, message):
    assert not is_not_found(client_error(code, message), service)


def test_only_client_errors_can_say_not_found():
    assert not is_not_found(ValueError("Could not find"), "sagemaker")
    assert error_code(ValueError("x")) == ""
    assert is_access_denied(client_error("UnauthorizedOperation", "no"))
    assert is_access_denied(client_error("403", "Forbidden"))  # S3 HEAD: no body, the status
    assert is_access_denied(client_error("AuthorizationError", "no"))  # SNS's code
    assert not is_access_denied(client_error("ThrottlingException", "slow down"))


# ---- contexts ---------------------------------------------------------------------------


def test_aws_call_names_service_operation_and_resource():
    with pytest.raises(AwsError) as info, aws_call("sagemaker", "DescribeEndpoint", "ep"):
        raise client_error("ThrottlingException", "Rate exceeded")
    assert str(info.value) == (
        "sagemaker DescribeEndpoint on ep failed: ThrottlingException: Rate exceeded"
    )
    failed = r"s3 PutObject on s3://b/k failed: Could not connect"
    with pytest.raises(AwsError, match=failed), aws_call("s3", "PutObject", "s3://b/k"):
        raise EndpointConnectionError(endpoint_url="https://s3.example")


def test_ignore_not_found_swallows_only_not_found():
    with ignore_not_found("sagemaker", "DescribeTrainingJob", "job") as outcome:
        raise client_error(*MISSING_JOB)
    assert outcome.missing
    with ignore_not_found("sagemaker", "DescribeTrainingJob", "job") as outcome:
        pass
    assert not outcome.missing
    failed = "bedrock DeleteCustomModel on m failed: Validation"
    with (
        pytest.raises(AwsError, match=failed),
        ignore_not_found("bedrock", "DeleteCustomModel", "m"),
    ):
        raise client_error("ValidationException", "Input validation failed.")


def test_translate_takes_a_client_method_name_too():
    error = translate(client_error("ConflictException", "busy"), "bedrock", "delete_custom_model")
    assert str(error).startswith("bedrock DeleteCustomModel failed: ConflictException")


# ---- AccessDenied names the IAM action and the statement that grants it ----------------


@pytest.mark.parametrize(
    ("service", "operation", "code", "message"),
    [
        # S3 answers a refused ListObjectsV2 with a bare "Access Denied" (S3 error codes),
        # and the action is s3:ListBucket, not the operation's name
        ("s3", "ListObjectsV2", "AccessDenied", "Access Denied"),
        # EC2 encodes its reason (EC2 API reference: UnauthorizedOperation)
        (
            "ec2",
            "CreateVpcEndpoint",
            "UnauthorizedOperation",
            "You are not authorized to perform this operation. Encoded authorization failure "
            "message: AbCdEf",
        ),
    ],
)
def test_access_denied_names_the_action_and_its_statement(service, operation, code, message):
    from llmship.aws.permissions import actions_for, granting_statement

    error = str(translate(client_error(code, message, operation, 403), service, operation, "r"))
    assert error.startswith(f"{service} {operation} on r failed: {code}: {message}; ")
    for action in actions_for(service, operation):
        assert action in error
        statement = granting_statement(action)
        if statement:
            assert statement in error
    assert "--print-policy" in error


def test_access_denied_without_a_mapped_call_keeps_the_generic_hint():
    error = translate(client_error("AccessDenied", "Access Denied"), "s3", "NoSuchOperation")
    assert "grant the action named above in IAM" in str(error)


# ---- issue 15, item 1: destroy after a refused CreateTrainingJob ------------------------


def _stubbed_sagemaker():
    sm = boto3.client("sagemaker", region_name=REGION)
    return sm, Stubber(sm)


def _vpc_endpoint(ec2) -> str:
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    return ec2.create_vpc_endpoint(
        VpcId=vpc,
        ServiceName=f"com.amazonaws.{REGION}.s3",
        VpcEndpointType="Gateway",
        RouteTableIds=[table],
    )["VpcEndpoint"]["VpcEndpointId"]


def test_destroy_finishes_after_a_refused_create_training_job(aws_env, store):
    """CreateTrainingJob was refused (or never returned): the job's record stays CREATING
    and SageMaker answers DescribeTrainingJob with "ValidationException: Requested
    resource not found." (aws/aws-sdk#165). destroy forgets the job and still deletes the
    secret, the role's read grant and the VPC endpoint."""
    deployment, project = f"p-{uuid.uuid4().hex[:6]}", "p"
    job = f"{deployment}-job"
    iam = boto3.client("iam", region_name=REGION)
    trust = {"Version": "2012-10-17", "Statement": []}
    role_arn = iam.create_role(
        RoleName=f"{deployment}-role", AssumeRolePolicyDocument=json.dumps(trust)
    )["Role"]["Arn"]
    secrets = boto3.client("secretsmanager", region_name=REGION)
    common = {"store": store, "deployment": deployment, "project": project}
    secret_arn = store_secret(
        secrets, f"llmship/{project}/{deployment}/hf-token", "v", tags={}, region=REGION, **common
    )
    grant_read(iam, role_arn, secret_arn, **common)
    ec2 = boto3.client("ec2", region_name=REGION)
    endpoint = _vpc_endpoint(ec2)
    store.record_creating(VPC_ENDPOINT_KIND, endpoint, deployment, project, REGION)
    store.set_status(VPC_ENDPOINT_KIND, endpoint, "UP", REGION)
    store.record_creating(JOB_KIND, job, deployment, project, REGION, {"status": "Creating"})

    sm, stub = _stubbed_sagemaker()
    stub.add_client_error("describe_training_job", *MISSING_JOB, 400, {"TrainingJobName": job})
    target = SageMakerTarget(store, AwsConfig(region=REGION))
    target._clients[("sagemaker", REGION)] = sm
    with stub:
        deleted = target.destroy(deployment)
        stub.assert_no_pending_responses()

    assert {d.split()[0] for d in deleted} == {
        JOB_KIND,
        SECRET_KIND,
        ROLE_POLICY_KIND,
        VPC_ENDPOINT_KIND,
    }
    assert store.resources(deployment) == []
    assert secrets.list_secrets()["SecretList"] == []
    assert iam.list_role_policies(RoleName=f"{deployment}-role")["PolicyNames"] == []
    found = ec2.describe_vpc_endpoints(VpcEndpointIds=[endpoint])["VpcEndpoints"]
    assert all(e["State"].lower() == "deleted" for e in found)


def test_destroy_keeps_a_job_sagemaker_refuses_to_describe(aws_env, store):
    """Any other answer (here a throttle that outlasted botocore's retries) is not "gone":
    the record stays for the next destroy."""
    store.record_creating(JOB_KIND, "job", "dep", "p", REGION)
    sm, stub = _stubbed_sagemaker()
    stub.add_client_error("describe_training_job", "ThrottlingException", "Rate exceeded", 400)
    target = SageMakerTarget(store, AwsConfig(region=REGION))
    target._clients[("sagemaker", REGION)] = sm
    with stub, pytest.raises(AwsError, match="sagemaker DescribeTrainingJob on job failed"):
        target.destroy("dep")
    assert [r.kind for r in store.resources("dep")] == [JOB_KIND]


def test_status_refresh_checks_training_jobs(aws_env, store):
    """`status --refresh` asks DescribeTrainingJob: a job SageMaker does not know is
    forgotten (aws/aws-sdk#165's answer), one it knows stays."""
    for name in ("gone", "kept"):
        store.record_creating(JOB_KIND, name, "dep", "p", REGION)
    sm, stub = _stubbed_sagemaker()
    stub.add_client_error("describe_training_job", *MISSING_JOB, 400, {"TrainingJobName": "gone"})
    stub.add_response(
        "describe_training_job",
        {
            "TrainingJobName": "kept",
            "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/kept",
            "TrainingJobStatus": "Completed",
            "SecondaryStatus": "Completed",
            "AlgorithmSpecification": {"TrainingInputMode": "File"},
            "ModelArtifacts": {"S3ModelArtifacts": "s3://b/kept/model.tar.gz"},
            "ResourceConfig": {"InstanceCount": 1, "VolumeSizeInGB": 1},
            "StoppingCondition": {"MaxRuntimeInSeconds": 60},
            "CreationTime": 0,
        },
        {"TrainingJobName": "kept"},
    )
    target = SageMakerTarget(store, AwsConfig(region=REGION))
    target._clients[("sagemaker", REGION)] = sm
    with stub:
        gone = target.refresh(sorted(store.resources("dep"), key=lambda r: r.name))
        stub.assert_no_pending_responses()
    assert [r.name for r in gone] == ["gone"]
    assert [r.name for r in store.resources("dep")] == ["kept"]


# ---- issue 15, item 6: only ResourceNotFoundException means a Bedrock resource is gone ---

PT_ARN = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:provisioned-model/abcdefghijkl"
# DeleteProvisionedModelThroughput's API reference lists ValidationException ("Input
# validation failed. Check your request parameters and retry the request.") and says a
# Provisioned Throughput cannot be deleted before its commitment term is over;
# DeleteCustomModel's user guide: first delete the Provisioned Throughput using the model.
REFUSED = ("ValidationException", "Input validation failed. Check your request parameters.")
GONE_BEDROCK = (
    "ResourceNotFoundException",
    "The specified resource ARN was not found. Check the ARN and try your request again.",
)


def _bedrock_target(store):
    bedrock = boto3.client(
        "bedrock",
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    target = BedrockTarget(store, AwsConfig(region=REGION))
    target._clients["bedrock"] = bedrock
    return target, Stubber(bedrock)


def _hosted(store, name="dep"):
    store.record_creating(PT_KIND, name, name, "p", REGION, {"arn": PT_ARN})
    store.set_status(PT_KIND, name, "UP", REGION)
    store.record_creating(MODEL_KIND, name, name, "p", REGION, {"run_id": "r"})
    store.set_status(MODEL_KIND, name, "UP", REGION)


def test_bedrock_destroy_keeps_what_bedrock_refuses_to_delete(store):
    _hosted(store)
    target, stub = _bedrock_target(store)
    stub.add_client_error(
        "delete_provisioned_model_throughput", *REFUSED, 400, {"provisionedModelId": PT_ARN}
    )
    with stub, pytest.raises(AwsError) as info:
        target.destroy("dep")
    assert "bedrock DeleteProvisionedModelThroughput on dep failed: ValidationException" in str(
        info.value
    )
    assert sorted(r.kind for r in store.resources("dep")) == sorted([PT_KIND, MODEL_KIND])


def test_bedrock_destroy_keeps_a_model_still_in_use(store):
    store.record_creating(MODEL_KIND, "dep", "dep", "p", REGION, {"run_id": "r"})
    target, stub = _bedrock_target(store)
    stub.add_client_error("delete_custom_model", *REFUSED, 400, {"modelIdentifier": "dep"})
    with stub, pytest.raises(AwsError, match="DeleteCustomModel on dep failed"):
        target.destroy("dep")
    assert [r.kind for r in store.resources("dep")] == [MODEL_KIND]


def test_bedrock_destroy_drops_what_bedrock_says_is_gone(store):
    _hosted(store)
    target, stub = _bedrock_target(store)
    stub.add_client_error(
        "delete_provisioned_model_throughput", *GONE_BEDROCK, 404, {"provisionedModelId": PT_ARN}
    )
    stub.add_client_error("delete_custom_model", *GONE_BEDROCK, 404, {"modelIdentifier": "dep"})
    with stub:
        deleted = target.destroy("dep")
        stub.assert_no_pending_responses()
    assert deleted == [f"{PT_KIND} dep", f"{MODEL_KIND} dep"]
    assert store.resources("dep") == []


def test_bedrock_refresh_forgets_only_what_is_gone(store):
    _hosted(store)
    target, stub = _bedrock_target(store)
    pt = next(r for r in store.resources("dep") if r.kind == PT_KIND)
    model = next(r for r in store.resources("dep") if r.kind == MODEL_KIND)
    stub.add_client_error("get_provisioned_model_throughput", *REFUSED, 400)
    with stub, pytest.raises(AwsError, match="GetProvisionedModelThroughput on dep failed"):
        target.refresh([pt])
    stub.add_client_error("get_custom_model", *GONE_BEDROCK, 404)
    with stub:
        assert target.refresh([model]) == [model]
    assert [r.kind for r in store.resources("dep")] == [PT_KIND]


# ---- deletes under tag-scoped IAM: AccessDenied for a resource already gone -------------

# IAM User Guide, "Troubleshoot access denied error messages": the message of a refusal
# no identity-based policy allows. With `aws:ResourceTag/llmship:project` in the policy's
# condition, IAM cannot read the tags of a model that no longer exists, so DeleteModel is
# refused rather than answered with "not found".
DENIED = (
    "AccessDeniedException",
    "User: arn:aws:sts::123456789012:assumed-role/deployer/me is not authorized to perform: "
    "sagemaker:DeleteModel on resource: arn:aws:sagemaker:us-west-2:123456789012:model/m "
    "because no identity-based policy allows the sagemaker:DeleteModel action",
)
# SageMaker's wording for a missing model (the form of DeleteEndpoint's "Could not find
# endpoint" in aws/amazon-sagemaker-examples#2402; real accounts report it for models as
# 'Could not find model "arn:aws:sagemaker:us-east-1:...:model/<name>".').
MISSING_MODEL = (
    "ValidationException",
    f'Could not find model "arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/m".',
)


def _recorded_model(store):
    from llmship.targets.sagemaker.target import MODEL_KIND as SM_MODEL_KIND

    store.record_creating(SM_MODEL_KIND, "m", "dep", "p", REGION)
    store.set_status(SM_MODEL_KIND, "m", "UP", REGION)
    sm, stub = _stubbed_sagemaker()
    target = SageMakerTarget(store, AwsConfig(region=REGION))
    target._clients[("sagemaker", REGION)] = sm
    return target, stub


def test_a_refused_delete_of_a_model_already_gone_counts_as_deleted(store):
    target, stub = _recorded_model(store)
    stub.add_client_error("delete_model", *DENIED, 400, {"ModelName": "m"})
    stub.add_client_error("describe_model", *MISSING_MODEL, 400, {"ModelName": "m"})
    with stub:
        deleted = target.destroy("dep")
        stub.assert_no_pending_responses()
    assert deleted == ["sagemaker:model m"]
    assert store.resources("dep") == []


def test_a_refused_delete_of_a_model_that_exists_stays_refused(store):
    target, stub = _recorded_model(store)
    stub.add_client_error("delete_model", *DENIED, 400, {"ModelName": "m"})
    stub.add_response(
        "describe_model",
        {
            "ModelName": "m",
            "ModelArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/m",
            "CreationTime": 0,
        },
        {"ModelName": "m"},
    )
    with stub, pytest.raises(AwsError) as info:
        target.destroy("dep")
    assert "sagemaker DeleteModel on m failed: AccessDeniedException" in str(info.value)
    assert [r.name for r in store.resources("dep")] == ["m"]


def test_gone_or_raise_keeps_other_refusals_and_unconfirmed_denials():
    denied = client_error(*DENIED)
    asked = []

    def missing():
        asked.append("DescribeModel")
        raise client_error(*MISSING_MODEL)

    gone_or_raise(denied, "sagemaker", "DeleteModel", "m", missing)
    assert asked == ["DescribeModel"]  # confirmed gone by asking, not assumed
    for describe in (None, _raises(client_error(*DENIED)), _raises(client_error(*REFUSED))):
        with pytest.raises(AwsError, match="DeleteModel on m failed: AccessDeniedException"):
            gone_or_raise(denied, "sagemaker", "DeleteModel", "m", describe)
    with pytest.raises(AwsError, match="ValidationException"):  # not a denial: no describe
        gone_or_raise(client_error(*REFUSED), "bedrock", "DeleteCustomModel", "m", _never)


def _raises(exc):
    def describe():
        raise exc

    return describe


def _never():
    raise AssertionError("a refusal other than AccessDenied needs no Describe")


def test_bedrock_refused_delete_of_a_model_already_gone_counts_as_deleted(store):
    """Bedrock's GetCustomModel says ResourceNotFoundException (its API reference) for
    the model whose delete IAM refused."""
    store.record_creating(MODEL_KIND, "dep", "dep", "p", REGION, {"run_id": "r"})
    target, stub = _bedrock_target(store)
    denied = ("AccessDeniedException", DENIED[1].replace("sagemaker", "bedrock"))
    stub.add_client_error("delete_custom_model", *denied, 403, {"modelIdentifier": "dep"})
    stub.add_client_error("get_custom_model", *GONE_BEDROCK, 404, {"modelIdentifier": "dep"})
    with stub:
        assert target.destroy("dep") == [f"{MODEL_KIND} dep"]
        stub.assert_no_pending_responses()
    assert store.resources("dep") == []


# ---- coding errors are not AWS failures ------------------------------------------------


def test_loading_secrets_reports_only_aws_failures_as_aws_errors():
    from llmship.aws.secrets import load_secrets_into

    class Broken:
        def get_secret_value(self, SecretId):
            raise TypeError("a bug, not AWS")

    with pytest.raises(TypeError, match="a bug"):
        load_secrets_into({"LLMSHIP_SECRET_HF_TOKEN": "arn:x"}, client=Broken())
