"""SageMaker model artifacts: build, make loadable by the target container, validate, extract."""
