"""The typed shape of llmship.yaml: one section per stage.

Every field carries its own help text; `llmship init` writes it as the comment above
the key, so the docs and the code cannot drift apart. Unknown keys are refused.
"""

from __future__ import annotations

import string
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from llmship.config.bedrock import BedrockConfig
from llmship.config.gateway import GatewayConfig
from llmship.config.section import NetworkSection, Section
from llmship.config.serving import ServeConfig
from llmship.config.training_job import SageMakerTrainingSettings

NAME_PATTERN = r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$"
SERVERLESS_MEMORY_MB = (1024, 2048, 3072, 4096, 5120, 6144)
S3_URI_PATTERN = r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$"
DURATION_PATTERN = r"^\s*(\d+\s*[mhdMHD]\s*)+$"


class ProjectConfig(Section):
    name: str = Field(
        "llmship",
        max_length=32,
        pattern=NAME_PATTERN,
        description="Project name; run ids, deployment names and AWS tags derive from it "
        "(letters, digits and hyphens).",
    )
    runs_dir: str = Field(
        "runs",
        description="Where run directories go, relative to this file (override: --output).",
    )


class ModelConfig(Section):
    name_or_path: str = Field(
        description="Base model: a Hugging Face hub id (e.g. meta-llama/Llama-3.2-1B-Instruct) "
        "or a local model directory, relative to this file.",
    )
    kind: Literal["auto", "causal", "seq2seq"] = Field(
        "auto",
        description="auto reads the model's config: decoder-only models are causal, "
        "encoder-decoder models (T5, Flan-T5) are seq2seq.",
    )
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit).")
    hf_token: SecretStr | None = Field(
        None,
        description="Token for gated hub models. Write ${HF_TOKEN} and keep the value in the "
        "environment or in .env beside this file; it is never written to disk.",
    )
    max_length: int = Field(
        1024,
        ge=16,
        le=131072,
        description="Longest tokenized example (prompt + completion); longer rows are dropped "
        "and counted.",
    )
    chat_template: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Format causal examples with the tokenizer's chat template: auto uses it "
        "when the tokenizer has one (instruct models).",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="Weights dtype when loading: auto is bfloat16 on GPUs that support it, "
        "float32 on CPU.",
    )
    trust_remote_code: bool = Field(
        False, description="Allow model code from the hub to run (only for models you trust)."
    )


class SplitNames(Section):
    train: str = Field("train", description="Name of the training split in the source.")
    validation: str = Field("validation", description="Name of the validation split.")
    test: str = Field("test", description="Name of the test split.")


class DataConfig(Section):
    source: str = Field(
        description="A .jsonl, .csv or .parquet file, a directory written by "
        "datasets.save_to_disk, or a Hugging Face hub dataset id.",
    )
    format: Literal["auto", "jsonl", "csv", "parquet", "hf"] = Field(
        "auto", description="auto goes by the file extension; hf is a hub id or save_to_disk dir."
    )
    input_field: str = Field("dialogue", description="Field holding the model's input.")
    output_field: str = Field("summary", description="Field holding the expected output.")
    prompt_template: str = Field(
        "Summarize this dialogue:\n{dialogue}",
        description="Prompt built from each row; {field} is replaced by that field's value.",
    )
    system_prompt: str | None = Field(
        None, description="System message for chat-template models (none when empty)."
    )
    splits: SplitNames = Field(
        default_factory=SplitNames,
        description="Split names in the source; splits it lacks are cut from train (seeded).",
    )
    validation_fraction: float = Field(
        0.1,
        ge=0.0,
        le=0.5,
        description="Share of rows cut for validation when the source has none.",
    )
    test_fraction: float = Field(
        0.1, ge=0.0, le=0.5, description="Share of rows cut for test when the source has none."
    )
    seed: int = Field(42, description="Seed for shuffling and splitting.")
    max_rows: int | None = Field(
        None, ge=1, description="Keep at most this many rows per split (quick experiments)."
    )

    @model_validator(mode="after")
    def _template_uses_input(self) -> DataConfig:
        try:
            used = [
                name for _, name, _, _ in string.Formatter().parse(self.prompt_template) if name
            ]
        except ValueError as exc:
            raise ValueError(f"prompt_template is not a valid template ({exc})") from None
        if self.input_field not in used:
            raise ValueError(
                f"prompt_template never uses {{{self.input_field}}} (data.input_field); "
                f"it uses: {', '.join(used) or 'no fields'}"
            )
        return self


class LoraConfig(Section):
    r: int = Field(16, ge=1, le=1024, description="LoRA rank.")
    alpha: int = Field(32, ge=1, description="LoRA scaling numerator (scale = alpha / r).")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear",
        description="Modules that get adapters: all-linear, or names such as [q_proj, v_proj].",
    )


class TrainConfig(Section):
    target: Literal["local", "local-container", "sagemaker", "bedrock"] = Field(
        "local",
        description="Where training runs: local (this machine, CPU or GPU), local-container "
        "(the SageMaker entry point under a temporary /opt/ml tree here), sagemaker (a "
        "training job) or bedrock (a model customization job).",
    )
    method: Literal["lora", "qlora", "full"] = Field(
        "lora",
        description="lora (peft adapters), qlora (4-bit base; needs CUDA and bitsandbytes) "
        "or full fine-tuning.",
    )
    epochs: int = Field(3, ge=1, le=1000, description="Passes over the training split.")
    max_steps: int | None = Field(
        None, ge=1, description="Stop after this many optimizer steps (overrides epochs)."
    )
    batch_size: int = Field(4, ge=1, le=4096, description="Examples per micro-batch.")
    gradient_accumulation: int = Field(
        1, ge=1, le=1024, description="Micro-batches per optimizer step."
    )
    learning_rate: float = Field(2e-4, gt=0.0, le=1.0, description="Peak learning rate (AdamW).")
    lr_scheduler: Literal["linear", "cosine", "constant"] = Field(
        "cosine", description="Decay after warm-up."
    )
    warmup_ratio: float = Field(0.03, ge=0.0, le=0.5, description="Share of steps to warm up.")
    weight_decay: float = Field(0.0, ge=0.0, le=1.0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, ge=0.0, description="Gradient clipping (0 turns it off).")
    packing: bool = Field(
        False,
        description="Causal LMs: pack several examples into each sequence of max_length "
        "(attention never crosses examples).",
    )
    chunked_loss: bool = Field(
        True,
        description="Causal LMs: compute the output layer and cross-entropy in chunks of "
        "tokens, on labelled positions only, never holding the full [tokens, vocab] logits "
        "(far less memory on large vocabularies).",
    )
    loss_chunk_tokens: int = Field(
        1024,
        ge=1,
        description="Tokens per chunk of the chunked loss (its peak is about chunk x vocab x "
        "4 bytes).",
    )
    compile: bool = Field(
        False,
        description="CUDA: torch.compile the transformer body (faster steps after a compile "
        "of about a minute; batches are padded to model.max_length).",
    )
    gradient_checkpointing: bool = Field(
        False,
        description="Recompute each layer's activations in backward: much less memory, "
        "about a third slower.",
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto trains in bf16 on GPUs that support it, fp32 elsewhere."
    )
    save_steps: int = Field(
        100, ge=1, description="Write a checkpoint every N optimizer steps (and at the end)."
    )
    save_total_limit: int = Field(2, ge=1, description="Checkpoints kept; older ones are removed.")
    logging_steps: int = Field(10, ge=1, description="Log metrics every N optimizer steps.")
    eval_steps: int | None = Field(
        None, ge=1, description="Validation loss every N steps (default: at the end of each epoch)."
    )
    merge: bool = Field(
        True, description="Merge the adapter into the base weights for the final model."
    )
    seed: int = Field(42, description="Seed for initialisation, shuffling and dropout.")
    lora: LoraConfig = Field(default_factory=LoraConfig, description="LoRA / QLoRA adapters.")
    sagemaker: SageMakerTrainingSettings = Field(
        default_factory=SageMakerTrainingSettings,
        description="target sagemaker / local-container: the training job.",
    )


class GenerationConfig(Section):
    max_new_tokens: int = Field(128, ge=1, le=32768, description="Tokens to generate at most.")
    do_sample: bool = Field(False, description="Sample (true) or decode greedily (false).")
    temperature: float = Field(1.0, gt=0.0, le=5.0, description="Sampling temperature.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    top_k: int = Field(50, ge=0, description="Sample among the k most likely tokens (0: all).")
    num_beams: int = Field(1, ge=1, le=16, description="Beam search width (1: none).")
    repetition_penalty: float = Field(1.0, gt=0.0, le=5.0, description="Penalty on repeats.")


class EvalConfig(Section):
    split: Literal["validation", "test"] = Field("test", description="Split to score.")
    max_samples: int | None = Field(
        200, ge=1, description="Score at most this many rows (none: the whole split)."
    )
    batch_size: int = Field(8, ge=1, le=1024, description="Rows generated at once.")
    generation: GenerationConfig = Field(
        default_factory=GenerationConfig,
        description="Generation defaults; they travel with the model to every endpoint.",
    )


class PackageConfig(Section):
    format: Literal["tar.gz", "uncompressed"] = Field(
        "tar.gz",
        description="SageMaker artifact: model.tar.gz, or an uncompressed S3 prefix (fast for "
        "large models).",
    )
    transformers_version: Literal["4.48.0", "4.49.0", "4.51.3", "5.5.3"] = Field(
        "4.51.3",
        description="transformers version of the Hugging Face inference container the artifact "
        "targets (4.51.3 is the one deploy chooses); its files are written for that version.",
    )


class ServerlessSettings(Section):
    memory_mb: int = Field(
        2048,
        ge=1024,
        le=6144,
        multiple_of=1024,
        description="Memory of each serverless worker: 1024-6144 MB in 1024 MB steps (vCPUs "
        "scale with it); the model's weights must fit with room to run.",
    )
    max_concurrency: int = Field(
        5, ge=1, le=200, description="Requests served at once before throttling (1-200)."
    )
    provisioned_concurrency: int | None = Field(
        None,
        ge=1,
        le=200,
        description="Workers kept warm (no cold starts, billed while provisioned); at most "
        "max_concurrency. None: none kept warm.",
    )

    @model_validator(mode="after")
    def _provisioned_within_max(self) -> ServerlessSettings:
        if self.provisioned_concurrency and self.provisioned_concurrency > self.max_concurrency:
            raise ValueError(
                f"provisioned_concurrency ({self.provisioned_concurrency}) exceeds "
                f"max_concurrency ({self.max_concurrency})"
            )
        return self


class AsyncSettings(Section):
    output_path: str | None = Field(
        None,
        pattern=S3_URI_PATTERN,
        description="S3 prefix for responses (default: s3://<aws.bucket>/llmship/<project>/"
        "<deployment>/async-output/).",
    )
    failure_path: str | None = Field(
        None,
        pattern=S3_URI_PATTERN,
        description="S3 prefix for error responses (default: beside output_path, async-failures/).",
    )
    max_concurrent_invocations: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="Requests each instance works on at once (default: SageMaker's choice).",
    )
    sns_success_topic: str | None = Field(
        None, description="SNS topic ARN notified when a response is written (optional)."
    )
    sns_error_topic: str | None = Field(
        None, description="SNS topic ARN notified when a request fails (optional)."
    )


class VpcSettings(NetworkSection):
    subnets: list[str] = Field(
        default_factory=list,
        max_length=16,
        description="Subnet ids the model runs in (1-16; empty: no VPC). The subnets need an S3 "
        "gateway endpoint or a NAT route to download the model; the plan checks.",
    )
    security_groups: list[str] = Field(
        default_factory=list,
        max_length=5,
        description="Security group ids for the model's network interfaces (1-5 with subnets).",
    )
    create_s3_endpoint: bool = Field(
        False,
        description="Add an S3 gateway endpoint to the subnets' route tables when they have "
        "neither one nor a NAT route (tagged; destroyed with the deployment).",
    )


class AutoscalingSettingsConfig(Section):
    enabled: bool = Field(False, description="Scale the instance count with the load.")
    min: int = Field(1, ge=0, le=1000, description="Fewest instances (0 only for async endpoints).")
    max: int = Field(2, ge=1, le=1000, description="Most instances.")
    target_invocations_per_instance: float = Field(
        100.0,
        gt=0,
        description="Target tracking goal: invocations per instance per minute (async: "
        "backlog per instance).",
    )
    scale_in_cooldown: int = Field(
        300, ge=0, le=86400, description="Seconds after a scale-in before the next one."
    )
    scale_out_cooldown: int = Field(
        60, ge=0, le=86400, description="Seconds after a scale-out before the next one."
    )

    @model_validator(mode="after")
    def _min_not_above_max(self) -> AutoscalingSettingsConfig:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self


class UpdateSettings(Section):
    strategy: Literal["all-at-once", "canary", "linear"] = Field(
        "all-at-once",
        description="How a re-deploy shifts traffic to the new model (blue/green): all at once, "
        "a canary share first, or linear steps (canary and linear need at least 2 instances: "
        "each step, in whole instances, is at most half the fleet; not for serverless).",
    )
    canary_percent: int = Field(
        10,
        ge=1,
        le=50,
        description="canary: share of capacity (1-50%) that gets the new model first.",
    )
    linear_step_percent: int = Field(
        20,
        ge=10,
        le=50,
        description="linear: share of capacity (10-50%) moved at each step.",
    )
    wait_seconds: int = Field(
        300,
        ge=0,
        le=3600,
        description="Baking time after each shift, while the alarms are watched.",
    )
    alarms: list[str] = Field(
        default_factory=list,
        max_length=10,
        description="CloudWatch alarm names; one going off rolls the update back.",
    )


class DeployConfig(Section):
    target: Literal["local", "sagemaker", "bedrock", "bedrock-import"] = Field(
        "local",
        description="Where the model is served: local (a background `llmship serve` on this "
        "machine), sagemaker (an endpoint in aws.region), bedrock (the Bedrock custom model "
        "through on-demand deployment or provisioned throughput) or bedrock-import (Custom "
        "Model Import of llmship's merged model).",
    )
    name: str | None = Field(
        None,
        max_length=48,
        pattern=NAME_PATTERN,
        description="Deployment name, the endpoint's name (default: <project>-<run>); letters, "
        "digits and hyphens, at most 48 so versioned model names stay within 63.",
    )
    kind: Literal["realtime", "serverless", "async"] = Field(
        "realtime",
        description="realtime (instances, 6 MB / 60 s per request), serverless (per-request "
        "billing, CPU only, 4 MB / 60 s) or async (S3 payloads up to 1 GB, up to an hour). "
        "A live endpoint cannot become serverless or change to or from async.",
    )
    container: Literal["huggingface", "tgi", "lmi"] = Field(
        "huggingface",
        description="Serving container: huggingface (llmship's own artifact), tgi (Text "
        "Generation Inference) or lmi (vLLM through DJL).",
    )
    model_data: str | None = Field(
        None,
        pattern=S3_URI_PATTERN,
        description="Serve this S3 artifact instead of the run's: a model.tar.gz URI, or a "
        "prefix ending in / holding the uncompressed files.",
    )
    model_package_arn: str | None = Field(
        None,
        pattern=r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:model-package/.+$",
        description="Serve a Model Registry or AWS Marketplace model package by ARN instead.",
    )
    hub_model_id: str | None = Field(
        None,
        description="tgi / lmi: serve this Hugging Face hub model id instead (downloaded by "
        "the container).",
    )
    instance_type: str | None = Field(
        None,
        description="e.g. ml.g5.xlarge (default: the cheapest that fits the model, context and "
        "concurrency; the plan says why).",
    )
    instance_count: int = Field(1, ge=1, le=100, description="Instances behind the endpoint.")
    concurrency: int = Field(
        4,
        ge=1,
        le=1024,
        description="Requests the instance must hold KV cache for at once (sizing only).",
    )
    volume_size_gb: int | None = Field(
        None,
        ge=1,
        le=512,
        description="EBS volume per instance in GB (not for instance types with NVMe storage; "
        "default: SageMaker's).",
    )
    startup_health_check_timeout_s: int | None = Field(
        None,
        ge=60,
        le=3600,
        description="Seconds the container may take to pass /ping after it starts (60-3600).",
    )
    model_download_timeout_s: int | None = Field(
        None,
        ge=60,
        le=3600,
        description="Seconds allowed to download the model onto an instance (60-3600).",
    )
    serverless: ServerlessSettings = Field(
        default_factory=ServerlessSettings, description="kind: serverless settings."
    )
    async_inference: AsyncSettings = Field(
        default_factory=AsyncSettings, description="kind: async settings."
    )
    vpc: VpcSettings = Field(
        default_factory=VpcSettings, description="Run the model inside your VPC (optional)."
    )
    environment: dict[str, str] = Field(
        default_factory=dict,
        max_length=100,
        description="Extra container environment variables (at most 100 in all); never put "
        "secrets here: DescribeModel shows them.",
    )
    ttl: str | None = Field(
        None,
        pattern=DURATION_PATTERN,
        description="Delete the endpoint after this long (e.g. 8h, 2d), scheduled in AWS so it "
        "happens even when this machine is off (--ttl).",
    )
    autoscaling: AutoscalingSettingsConfig = Field(
        default_factory=AutoscalingSettingsConfig,
        description="Target-tracking autoscaling (Application Auto Scaling).",
    )
    update: UpdateSettings = Field(
        default_factory=UpdateSettings,
        description="How re-deploying a live endpoint rolls out (blue/green).",
    )
    budget_per_hour: float | None = Field(
        None,
        gt=0,
        description="Most USD per hour the recommended instances may cost (sizing only).",
    )

    @model_validator(mode="after")
    def _one_model_source(self) -> DeployConfig:
        given = [
            key
            for key in ("model_data", "model_package_arn", "hub_model_id")
            if getattr(self, key) is not None
        ]
        if len(given) > 1:
            raise ValueError(f"give one model source, not {' and '.join(given)}")
        if self.hub_model_id is not None and self.container == "huggingface":
            raise ValueError("hub_model_id needs container tgi or lmi")
        return self


class AwsConfig(Section):
    region: str | None = Field(None, description="AWS region (default: the usual AWS chain).")
    profile: str | None = Field(None, description="Named AWS profile (default: the usual chain).")
    bucket: str | None = Field(None, description="S3 bucket for data and artifacts.")
    role_arn: str | None = Field(
        None, description="SageMaker execution role ARN (llmship aws bootstrap creates one)."
    )
    assume_role_arn: str | None = Field(
        None,
        description="A role to assume for every AWS call (e.g. a deploy role in another "
        "account); the usual credentials chain must be allowed to assume it.",
    )
    session_name: str = Field(
        "llmship", max_length=64, description="Session name when assuming assume_role_arn."
    )


class LlmshipConfig(Section):
    """The whole of llmship.yaml."""

    project: ProjectConfig = Field(default_factory=ProjectConfig, description="Project.")
    # Only the commands that use them need these two (train, data prepare, ...): a config
    # for the gateway, invoke or status may leave them out (LoadedConfig.require).
    model: ModelConfig | None = Field(None, description="The base model.")
    data: DataConfig | None = Field(None, description="The dataset and how rows become prompts.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Fine-tuning.")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="Evaluation (ROUGE).")
    package: PackageConfig = Field(
        default_factory=PackageConfig, description="SageMaker model artifact."
    )
    deploy: DeployConfig = Field(default_factory=DeployConfig, description="Deployment.")
    serve: ServeConfig = Field(default_factory=ServeConfig, description="The local server.")
    bedrock: BedrockConfig = Field(default_factory=BedrockConfig, description="Amazon Bedrock.")
    gateway: GatewayConfig = Field(
        default_factory=GatewayConfig, description="The authenticated API gateway."
    )
    aws: AwsConfig = Field(default_factory=AwsConfig, description="AWS account settings.")
