"""Deployment targets, one folder each, all behind `llmship.target.Target`.

    local/           `llmship serve` as a background process on this machine
    sagemaker/       real-time, serverless and async endpoints (plus VPC, TTL, scaling)
    bedrock/         custom-model deployments and provisioned throughput
    bedrock_import/  Custom Model Import of llmship's own model
    gateway/         an API exposed on Lambda + API Gateway (status and destroy)

A target never imports another, nor the CLI; `llmship.cli._targets` names them.
"""
