"""Bedrock hosting of a customized model: custom-model deployment or provisioned throughput."""
