"""Process start-up: accelerator, process group, DP x SP layout.

Works under ``torchrun`` / the ``deepspeed`` launcher / SLURM (env ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``) and as a plain single process (those variables are filled in for a world of
one).  Without CUDA, DeepSpeed's accelerator is set to ``cpu`` (``DS_ACCELERATOR``, before DeepSpeed is
imported) and the backend is gloo; with CUDA it is NCCL and each rank takes GPU ``LOCAL_RANK``.
"""
from __future__ import annotations

import os
import socket

import torch

from ..parallel.context import ParallelContext

__all__ = ["setup_distributed", "device", "is_main", "barrier"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup_distributed(sp_size: int = 1, sp_layout: str = "zigzag") -> ParallelContext:
    """Initialise torch.distributed through DeepSpeed (idempotent) and build the :class:`ParallelContext`.

    ``sp_layout`` (``zigzag`` | ``contiguous``) is how each row is cut over the ``sp_size`` ranks of an SP group
    (``longrm.parallel.context``)."""
    cuda = torch.cuda.is_available()
    if not cuda:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    if "RANK" not in os.environ and "OMPI_COMM_WORLD_RANK" not in os.environ:
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(_free_port()))
    import deepspeed
    import torch.distributed as dist

    if cuda:  # CUDA only: one GPU per rank
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        deepspeed.init_distributed(dist_backend="nccl" if cuda else "gloo")
    return ParallelContext.from_world(sp_size, sp_layout)


def device() -> torch.device:
    if torch.cuda.is_available():  # CUDA only
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def is_main() -> bool:
    import torch.distributed as dist

    return not dist.is_initialized() or dist.get_rank() == 0


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()
