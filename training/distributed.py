"""Process group set-up for torchrun (NCCL on GPUs, gloo on CPU); one process needs none."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from common.errors import UsageError


def setup_distributed(device_flag: str) -> tuple[int, int, torch.device]:
    """(rank, world size, this process's device) from torchrun's environment variables."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    cuda = torch.cuda.is_available() if device_flag == "auto" else device_flag == "cuda"
    if cuda and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is visible; pass --device cpu")
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if world > 1:
        dist.init_process_group("nccl" if cuda else "gloo")
    return rank, world, device


def teardown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
