"""llmship: from a base LLM and a dataset to a fine-tuned model behind an HTTP API."""

__version__ = "0.1.0"
