"""OpenMP settings for a serving process, applied before torch is imported.

A server shares the CPU between torch's OpenMP workers and the threads that parse
requests and stream tokens. OpenMP's default keeps idle workers spinning between
parallel regions, which starves those threads on a small machine: on 2 cores, passive
waiting raised batched throughput by about 12% (BENCHMARKS.md). An explicit
OMP_WAIT_POLICY in the environment always wins.
"""

from __future__ import annotations

import os
import sys


def prefer_passive_waiting() -> bool:
    """Ask OpenMP workers to sleep when idle; False when too late (torch already loaded)."""
    if "torch" in sys.modules:
        return False
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return True
