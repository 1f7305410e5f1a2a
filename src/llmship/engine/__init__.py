"""Continuous batching on a slot KV cache; no HTTP.

A regular package (not a namespace one) so that the import contracts see its modules.
"""
