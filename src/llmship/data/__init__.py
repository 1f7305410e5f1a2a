"""Training data: loading (jsonl/csv/parquet/Hugging Face datasets), templates, splits.

A regular package (not a namespace one) so that the import contracts see its modules.
"""
