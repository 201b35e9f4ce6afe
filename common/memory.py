"""How much memory a device has free, and the largest batch that fits in it (used to chunk
sampling and to refuse a training batch that cannot fit, before any work)."""

from __future__ import annotations

from pathlib import Path

import torch

GIB = 2**30


def available_bytes(device: torch.device | str) -> int | None:
    """Free memory of ``device``: CUDA's free bytes, or the host's ``MemAvailable``; None
    where it cannot be read."""
    device = torch.device(device)
    if device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except (RuntimeError, AssertionError):
            return None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def largest_batch(per_item: int, budget: int | None, fixed: int = 0) -> int | None:
    """The most items of ``per_item`` bytes that fit in ``budget`` bytes beside ``fixed``
    bytes (at least 0); None when the budget is unknown."""
    if budget is None:
        return None
    return max(0, (budget - fixed) // max(1, per_item))
