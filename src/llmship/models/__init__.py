"""Base models and tokenizers: loading, the tiny model factory, generation.

A regular package (not a namespace one) so that the import contracts see its modules.
"""
