"""Benchmark: llmship's tar.gz writer against tarfile's w:gz defaults (level 9), side by side.

Builds a safetensors file of random-init bf16 weights (what a fine-tuned model's
weights look like to a compressor), archives it both ways, checks both archives hold
the same bytes, and prints MB/s and the speed-up as one JSON line.

    python bench/package_bench.py --size-mb 1024
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tarfile
import tempfile
import time
from datetime import date
from pathlib import Path

import torch
from safetensors.torch import save_file

from llmship.package.targz import write_targz


def make_weights(directory: Path, size_mb: int, seed: int) -> Path:
    generator = torch.Generator().manual_seed(seed)
    tensors, left, index = {}, size_mb * 1024 * 1024 // 2, 0
    while left > 0:
        count = min(left, 64 * 1024 * 1024)
        tensors[f"layer{index}.weight"] = (torch.randn(count, generator=generator) * 0.02).to(
            torch.bfloat16
        )
        left -= count
        index += 1
    path = directory / "model.safetensors"
    save_file(tensors, path)
    return path


def time_it(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="llmship-bench-"))
    try:
        source = work / "model"
        source.mkdir()
        weights = make_weights(source, args.size_mb, args.seed)
        size = weights.stat().st_size
        baseline_path, ours_path = work / "baseline.tar.gz", work / "ours.tar.gz"

        def baseline():
            with tarfile.open(baseline_path, "w:gz") as archive:
                archive.add(weights, arcname=weights.name)

        ours_s = time_it(lambda: write_targz(source, ours_path))
        base_s = time_it(baseline)
        with tarfile.open(ours_path) as a, tarfile.open(baseline_path) as b:
            same = a.extractfile(weights.name).read() == b.extractfile(weights.name).read()
        result = {
            "bench": "package-targz",
            "date": date.today().isoformat(),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "input_mb": round(size / 1e6, 1),
            "tarfile_default_s": round(base_s, 2),
            "tarfile_default_mb_s": round(size / 1e6 / base_s, 1),
            "tarfile_default_ratio": round(baseline_path.stat().st_size / size, 4),
            "llmship_s": round(ours_s, 2),
            "llmship_mb_s": round(size / 1e6 / ours_s, 1),
            "llmship_ratio": round(ours_path.stat().st_size / size, 4),
            "speedup": round(base_s / ours_s, 2),
            "identical_content": same,
            "seed": args.seed,
        }
        print(json.dumps(result))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
