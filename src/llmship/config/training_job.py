"""A SageMaker training job: container, instances, spot, distribution."""

from __future__ import annotations

from pydantic import Field, model_validator

from llmship.config.section import NetworkSection, Section

S3_PREFIX_PATTERN = r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$"


class TrainingVpc(NetworkSection):
    subnets: list[str] = Field(
        default_factory=list,
        max_length=16,
        description="Subnet ids the training instances run in (1-16; empty: no VPC). They "
        "need an S3 gateway endpoint or a NAT route to read data and write the model.",
    )
    security_groups: list[str] = Field(
        default_factory=list,
        max_length=5,
        description="Security group ids (1-5 with subnets); for more than one instance they "
        "must allow all traffic between the group's own members.",
    )


class SageMakerTrainingSettings(Section):
    """A SageMaker training job: container, instances, spot, distribution."""

    instance_type: str = Field(
        "ml.g5.2xlarge",
        description="Training instance type, e.g. ml.g5.2xlarge (1 x A10G 24 GB) or "
        "ml.p4d.24xlarge (8 x A100); every GPU of every instance trains (torchrun).",
    )
    instance_count: int = Field(
        1, ge=1, le=100, description="Instances; more than one trains data-parallel across them."
    )
    volume_size_gb: int = Field(
        100,
        ge=1,
        le=16384,
        description="EBS volume per instance in GB (base weights, checkpoints and the final "
        "model must fit).",
    )
    max_runtime_hours: float = Field(
        24.0,
        gt=0,
        le=672,
        description="Stop the job after this many hours of training (MaxRuntimeInSeconds; at "
        "most 28 days).",
    )
    transformers_version: str | None = Field(
        None,
        description="transformers version of the Hugging Face PyTorch training container, "
        "which fixes its PyTorch too: 4.49.0, 4.55.0, 4.56.2 or 5.3.0 (default: the newest "
        "in llmship's image table).",
    )
    spot: bool = Field(
        False,
        description="Managed spot training: cheaper, may be interrupted; the job resumes "
        "from its last checkpoint (synced to checkpoint_s3_uri).",
    )
    max_wait_hours: float | None = Field(
        None,
        gt=0,
        le=672,
        description="spot: give up when training has not finished this long after the job "
        "started, waiting for spot capacity included (default: twice max_runtime_hours, "
        "capped at 28 days); at least max_runtime_hours.",
    )
    checkpoint_s3_uri: str | None = Field(
        None,
        pattern=S3_PREFIX_PATTERN,
        description="Where /opt/ml/checkpoints is kept (default: s3://<aws.bucket>/llmship/"
        "<project>/<deployment>/checkpoints/); a rerun of the same run resumes from it.",
    )
    keep_alive_minutes: int | None = Field(
        None,
        ge=1,
        le=360,
        description="Warm pool: keep the instances this many minutes after the job so the "
        "next job with the same settings starts in seconds (billed while kept; 1-360).",
    )
    environment: dict[str, str] = Field(
        default_factory=dict,
        max_length=48,
        description="Extra environment variables for the job; never secrets here: "
        "DescribeTrainingJob shows them (model.hf_token goes through Secrets Manager).",
    )
    vpc: TrainingVpc = Field(
        default_factory=TrainingVpc, description="Run the job inside your VPC (optional)."
    )
    poll_seconds: float = Field(
        30.0, gt=0, le=600, description="Seconds between status checks while the job runs."
    )

    @model_validator(mode="after")
    def _wait_covers_runtime(self) -> SageMakerTrainingSettings:
        if self.max_wait_hours is not None:
            if not self.spot:
                raise ValueError("max_wait_hours applies to spot training only (spot: true)")
            if self.max_wait_hours < self.max_runtime_hours:
                raise ValueError(
                    f"max_wait_hours ({self.max_wait_hours}) is below max_runtime_hours "
                    f"({self.max_runtime_hours}); SageMaker needs it at least as long"
                )
        return self
