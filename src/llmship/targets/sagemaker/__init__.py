"""SageMaker endpoints: plan, requests, apply, status, teardown, and what they lean on."""
