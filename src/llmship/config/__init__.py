"""Typed config (pydantic v2) from llmship.yaml, .env and --set overrides.

A regular package (not a namespace one) so that the import contracts see its modules.
"""
