"""SageMaker facts, one module per kind: container images, instances and their prices,
what each endpoint kind allows, and the names SageMaker accepts.

They hold no client and make no AWS call, so training, serving, deploy, Bedrock and the
gateway read them without importing each other.
"""
