"""The training loop (LoRA/QLoRA/full) and the SageMaker training-contract entry point.

A regular package (not a namespace one) so that the import contracts see its modules.
"""
