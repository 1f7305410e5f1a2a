"""Can a model in these subnets reach S3? The check users otherwise learn from a timeout.

A SageMaker model in a VPC downloads its artifact from S3 through the subnets' route
tables: they need an S3 gateway endpoint (free) or a route to a NAT gateway, or the
container never starts. The plan reports what it found; `--create-s3-endpoint` adds a
tagged gateway endpoint on those route tables, recorded in state so `destroy` removes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmship.aws.errors import (
    aws_call,
    error_code,
    error_message,
    ignore_not_found,
    is_not_found,
    translate,
)
from llmship.errors import DeployError
from llmship.state import Kind, StateStore, Status, tag_list

VPC_ENDPOINT_KIND = Kind.VPC_ENDPOINT  # the name tests import


@dataclass(frozen=True)
class NetworkFinding:
    """What the subnets' routes allow."""

    vpc_id: str
    route_tables: tuple[str, ...]
    s3_endpoint: str | None  # a gateway endpoint on every one of the route tables
    nat_route: bool  # every route table sends 0.0.0.0/0 to a NAT gateway

    @property
    def ok(self) -> bool:
        return self.s3_endpoint is not None or self.nat_route

    def describe(self) -> str:
        if self.s3_endpoint:
            return f"{self.vpc_id}: S3 reachable through gateway endpoint {self.s3_endpoint}"
        if self.nat_route:
            return f"{self.vpc_id}: S3 reachable through a NAT gateway route"
        return (
            f"{self.vpc_id}: route tables {', '.join(self.route_tables)} have no S3 gateway "
            "endpoint and no NAT route, so the model cannot be downloaded; deploy with "
            "--create-s3-endpoint (deploy.vpc.create_s3_endpoint: true) to add one"
        )


def s3_service(region: str) -> str:
    return f"com.amazonaws.{region}.s3"


def inspect_subnets(ec2, subnets: list[str], region: str) -> NetworkFinding:
    """The subnets' VPC, their route tables and whether those reach S3."""
    with aws_call("ec2", "DescribeSubnets", ", ".join(subnets)):
        found = ec2.describe_subnets(SubnetIds=subnets)["Subnets"]
    vpcs = sorted({subnet["VpcId"] for subnet in found})
    if len(vpcs) != 1:
        raise DeployError(
            f"deploy.vpc.subnets: the subnets are in {len(vpcs)} VPCs ({', '.join(vpcs)}); "
            "give subnets of one VPC"
        )
    vpc_id = vpcs[0]
    with aws_call("ec2", "DescribeRouteTables", vpc_id):
        tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])[
            "RouteTables"
        ]
        endpoints = ec2.describe_vpc_endpoints(
            Filters=[
                {"Name": "vpc-id", "Values": [vpc_id]},
                {"Name": "service-name", "Values": [s3_service(region)]},
            ]
        )["VpcEndpoints"]
    used = _tables_of(tables, subnets)
    nat = all(
        any(
            route.get("DestinationCidrBlock") == "0.0.0.0/0" and route.get("NatGatewayId")
            for route in table.get("Routes", [])
        )
        for table in tables
        if table["RouteTableId"] in used
    )
    gateway = next(
        (
            endpoint["VpcEndpointId"]
            for endpoint in endpoints
            if endpoint.get("VpcEndpointType") == "Gateway"
            and endpoint.get("State", "available") in ("available", "pending")
            and set(used) <= set(endpoint.get("RouteTableIds", []))
        ),
        None,
    )
    return NetworkFinding(vpc_id, tuple(used), gateway, nat)


def _tables_of(tables: list[dict], subnets: list[str]) -> list[str]:
    """The route table each subnet uses: its explicit association, else the VPC's main."""
    explicit = {
        assoc["SubnetId"]: table["RouteTableId"]
        for table in tables
        for assoc in table.get("Associations", [])
        if assoc.get("SubnetId")
    }
    main = next(
        (
            table["RouteTableId"]
            for table in tables
            if any(assoc.get("Main") for assoc in table.get("Associations", []))
        ),
        None,
    )
    used = []
    for subnet in subnets:
        table = explicit.get(subnet, main)
        if table is None:
            raise DeployError(f"deploy.vpc.subnets: {subnet} has no route table")
        if table not in used:
            used.append(table)
    return used


def create_s3_endpoint(
    ec2,
    finding: NetworkFinding,
    region: str,
    *,
    tags: dict[str, str],
    store: StateStore,
    deployment: str,
    project: str,
) -> str:
    """A gateway endpoint for S3 on the finding's route tables; its id, recorded in state."""
    from botocore.exceptions import ClientError

    pending = f"pending:{finding.vpc_id}"
    store.record_creating(Kind.VPC_ENDPOINT, pending, deployment, project, region)
    try:
        endpoint = ec2.create_vpc_endpoint(
            VpcId=finding.vpc_id,
            ServiceName=s3_service(region),
            VpcEndpointType="Gateway",
            RouteTableIds=list(finding.route_tables),
            TagSpecifications=[
                {
                    "ResourceType": "vpc-endpoint",
                    "Tags": tag_list(dict(sorted(tags.items()))),
                }
            ],
        )["VpcEndpoint"]["VpcEndpointId"]
    except ClientError as exc:
        store.remove(Kind.VPC_ENDPOINT, pending, region)
        raise translate(exc, "ec2", "CreateVpcEndpoint", finding.vpc_id) from None
    store.record_creating(
        Kind.VPC_ENDPOINT,
        endpoint,
        deployment,
        project,
        region,
        {"vpc_id": finding.vpc_id, "route_tables": list(finding.route_tables)},
    )
    store.set_status(Kind.VPC_ENDPOINT, endpoint, Status.UP, region)
    store.remove(Kind.VPC_ENDPOINT, pending, region)
    return endpoint


def delete_s3_endpoint(ec2, endpoint_id: str, deployment: str) -> None:
    """Delete the gateway endpoint; one already gone is fine. A `pending:<vpc>` record (the
    process stopped before the create returned an id) is resolved through the tags."""
    ids = [endpoint_id]
    if endpoint_id.startswith("pending:"):
        with aws_call("ec2", "DescribeVpcEndpoints", endpoint_id):
            found = ec2.describe_vpc_endpoints(
                Filters=[
                    {"Name": "vpc-id", "Values": [endpoint_id.removeprefix("pending:")]},
                    {"Name": "tag:llmship:deployment", "Values": [deployment]},
                ]
            )["VpcEndpoints"]
        ids = [endpoint["VpcEndpointId"] for endpoint in found]
        if not ids:
            return
    from botocore.exceptions import ClientError

    result: dict = {}
    with ignore_not_found("ec2", "DeleteVpcEndpoints", endpoint_id):
        result = ec2.delete_vpc_endpoints(VpcEndpointIds=ids)
    for failure in result.get("Unsuccessful", []):
        # Each failure carries an error as a ClientError would (e.g. InvalidVpcEndpoint.NotFound).
        error = ClientError({"Error": failure.get("Error", {})}, "DeleteVpcEndpoints")
        if not is_not_found(error, "ec2"):
            raise DeployError(
                f"ec2 DeleteVpcEndpoints on {endpoint_id} failed: {error_code(error)}: "
                f"{error_message(error)}"
            )
