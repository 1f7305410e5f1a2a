"""Data-parallel training across the GPUs of an instance and across instances.

SageMaker starts the entry point once per instance and says where it is (SM_HOSTS,
SM_CURRENT_HOST, SM_NUM_GPUS). When more than one process is needed, the entry point
re-launches itself under torchrun with one process per GPU; torchrun sets RANK,
LOCAL_RANK and WORLD_SIZE, and each process trains its shard of the data under DDP.
Only global rank 0 writes checkpoints, metrics and the final model: on SageMaker every
instance syncs its own /opt/ml/checkpoints to the same S3 prefix, so one writer is the
only safe number.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from llmship.sagemaker.training_contract import TrainingEnvironment

MASTER_PORT = 29500  # torchrun's default rendezvous port, open between SageMaker hosts


@dataclass(frozen=True)
class Launch:
    """How many processes the job needs on this host, and where this host stands."""

    nnodes: int
    nproc_per_node: int
    node_rank: int
    master_addr: str
    master_port: int = MASTER_PORT

    @property
    def world_size(self) -> int:
        return self.nnodes * self.nproc_per_node


def plan_launch(env: TrainingEnvironment) -> Launch:
    """One process per GPU (one on a CPU-only host) on every host; host 0 leads. A single
    host rendezvous on loopback (its name need not resolve outside SageMaker)."""
    hosts = list(env.hosts)
    return Launch(
        nnodes=len(hosts),
        nproc_per_node=max(env.num_gpus, 1),
        node_rank=hosts.index(env.current_host),
        master_addr=hosts[0] if len(hosts) > 1 else "127.0.0.1",
    )


def launch_command(launch: Launch, argv: Sequence[str], python: str = sys.executable) -> list[str]:
    """torchrun (as `python -m torch.distributed.run`, the same interpreter) running the
    entry point with the job's own arguments."""
    return [
        python,
        "-m",
        "torch.distributed.run",
        f"--nnodes={launch.nnodes}",
        f"--nproc_per_node={launch.nproc_per_node}",
        f"--node_rank={launch.node_rank}",
        f"--master_addr={launch.master_addr}",
        f"--master_port={launch.master_port}",
        "-m",
        "llmship.train.entrypoint",
        *argv,
    ]


def needs_launch(launch: Launch, environ: Mapping[str, str] | None = None) -> bool:
    """More than one process is needed and torchrun has not started this one."""
    environ = os.environ if environ is None else environ
    return launch.world_size > 1 and "LOCAL_RANK" not in environ


@dataclass(frozen=True)
class Rank:
    """This process's place in the job (a single process is rank 0 of 1)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def current_rank(environ: Mapping[str, str] | None = None) -> Rank:
    """What torchrun told this process (RANK, LOCAL_RANK, WORLD_SIZE), else rank 0 of 1."""
    environ = os.environ if environ is None else environ
    return Rank(
        rank=int(environ.get("RANK", 0)),
        local_rank=int(environ.get("LOCAL_RANK", 0)),
        world_size=int(environ.get("WORLD_SIZE", 1)),
    )


def init_process_group(rank: Rank, use_cuda: bool) -> torch.device:
    """Join the process group (NCCL on GPUs, Gloo on CPU); the device this rank trains on."""
    import torch
    import torch.distributed as dist

    if use_cuda:
        torch.cuda.set_device(rank.local_rank)
        device = torch.device("cuda", rank.local_rank)
    else:
        device = torch.device("cpu")
    if rank.distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return device


def shard(items: list, rank: Rank) -> list:
    """This rank's equal share (the remainder is dropped so every rank takes the same
    number of steps: a rank with one more batch would wait forever in all-reduce)."""
    if not rank.distributed:
        return items
    per_rank = len(items) // rank.world_size
    return items[rank.rank :: rank.world_size][:per_rank]


def wrap(model, rank: Rank, device: torch.device):
    """The model under DDP when there is more than one process (else unchanged)."""
    if not rank.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    class _DDP(DistributedDataParallel):
        """DDP that still answers the wrapped model's own methods (the loop calls e.g.
        prepare_decoder_input_ids_from_labels on seq2seq models)."""

        def __getattr__(self, name: str):
            try:
                return super().__getattr__(name)
            except AttributeError:
                return getattr(self.module, name)

    ids = [device.index] if device.type == "cuda" else None
    # No buffer broadcast: a forward pass then needs no collective, so validation on
    # any subset of ranks cannot deadlock; the buffers (rotary tables) are equal anyway.
    return _DDP(model, device_ids=ids, broadcast_buffers=False)


def unwrap(model):
    """The model inside a DDP wrapper (or the model itself)."""
    from torch.nn.parallel import DistributedDataParallel

    return model.module if isinstance(model, DistributedDataParallel) else model


def barrier(rank: Rank) -> None:
    if rank.distributed:
        import torch.distributed as dist

        dist.barrier()


def finish(rank: Rank) -> None:
    """Leave the process group."""
    if rank.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
