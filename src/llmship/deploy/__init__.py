"""Deployment targets (local, SageMaker) behind one interface: plan, apply, status,
invoke, destroy."""
