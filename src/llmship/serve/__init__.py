"""Serving: the SageMaker inference container contract and the SageMaker Runtime API, locally."""
