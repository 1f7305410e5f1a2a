"""Amazon Bedrock: customization job, hosting and import settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from llmship.config.section import NetworkSection, Section

S3_PREFIX_PATTERN = r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]/.*/$"


class BedrockVpc(NetworkSection):
    subnets: list[str] = Field(
        default_factory=list,
        max_length=16,
        description="Subnet ids the customization or import job runs in (empty: no VPC).",
    )
    security_groups: list[str] = Field(
        default_factory=list,
        max_length=5,
        description="Security group ids for the job's network interfaces (with subnets).",
    )


class BedrockConfig(Section):
    """Amazon Bedrock: customization job, hosting and import settings."""

    base_model_id: str = Field(
        "meta.llama3-2-1b-instruct-v1:0:128k",
        description="Bedrock base model to fine-tune (train.target: bedrock); its limits and "
        "hyperparameter ranges come from llmship's Bedrock table.",
    )
    epochs: int | None = Field(
        None,
        ge=1,
        description="epochCount of the customization job (default: train.epochs); checked "
        "against the base model's range.",
    )
    learning_rate: float | None = Field(
        None,
        gt=0.0,
        description="learningRate of the customization job (default: train.learning_rate); "
        "checked against the base model's range.",
    )
    role_arn: str | None = Field(
        None,
        description="Service role Bedrock assumes to read the data and write the output "
        "(default: llmship creates or reuses llmship-<project>-bedrock).",
    )
    vpc: BedrockVpc = Field(
        default_factory=BedrockVpc, description="Run customization and import jobs in your VPC."
    )
    hosting: Literal["auto", "on-demand", "provisioned"] = Field(
        "auto",
        description="deploy.target bedrock: auto prefers on-demand custom model deployment where "
        "the base model supports it, else provisioned throughput (billed by the hour).",
    )
    model_units: int = Field(
        1, ge=1, le=100, description="Provisioned throughput: model units to buy."
    )
    commitment: Literal["none", "1-month", "6-months"] = Field(
        "none",
        description="Provisioned throughput term: none (no commitment, hourly), 1-month or "
        "6-months (billed for the whole term).",
    )
    import_model_data: str | None = Field(
        None,
        pattern=S3_PREFIX_PATTERN,
        description="deploy.target bedrock-import: import this S3 prefix (ending in /) holding "
        "a merged model instead of uploading the run's model/.",
    )
    poll_seconds: float = Field(
        60.0, gt=0, le=3600, description="Seconds between status checks of a Bedrock job."
    )
