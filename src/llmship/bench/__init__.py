"""Benchmark harnesses; results and the commands that produced them go in BENCHMARKS.md."""
