"""How much memory a device has free, and the largest batch that fits in it (used to chunk
sampling and to refuse a training batch that cannot fit, before any work)."""

from __future__ import annotations

import resource
from pathlib import Path

import torch

GIB = 2**30


def available_bytes(device: torch.device | str) -> int | None:
    """Free memory of ``device``: CUDA's free bytes; on the host the smallest of what the
    process may really use: ``MemAvailable``, the cgroup's limit less its usage (a container
    or a cluster job), and the address-space limit (``ulimit -v``) less the address space in
    use. None where none can be read."""
    device = torch.device(device)
    if device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except (RuntimeError, AssertionError):
            return None
    known = [b for b in (meminfo_available(), cgroup_headroom(), address_space_headroom())
             if b is not None]  # fmt: skip
    return max(0, min(known)) if known else None


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().split()[0]
    except (OSError, IndexError):
        return None
    return int(text) if text.isdigit() else None  # "max": no limit


def meminfo_available() -> int | None:
    """The host's ``MemAvailable`` in bytes."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _stat(path: str, key: str) -> int:
    """One counter of a cgroup ``memory.stat`` file (0 when absent)."""
    try:
        for line in Path(path).read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key and value.strip().isdigit():
                return int(value)
    except OSError:
        return 0
    return 0


def cgroup_headroom() -> int | None:
    """The memory cgroup's limit less what it uses, its reclaimable page cache
    (``inactive_file``) not counted as used (cgroup v2, else v1); None without a limit."""
    for limit, usage, stat, key in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current",
         "/sys/fs/cgroup/memory.stat", "inactive_file"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
         "/sys/fs/cgroup/memory/memory.usage_in_bytes", "/sys/fs/cgroup/memory/memory.stat",
         "total_inactive_file"),
    ):  # fmt: skip
        cap, used = _read_int(limit), _read_int(usage)
        if cap is not None and used is not None and cap < 2**60:
            return cap - max(0, used - _stat(stat, key))
    return None


def address_space_headroom() -> int | None:
    """``RLIMIT_AS`` (``ulimit -v``) less this process's address space; None without one."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    pages = _read_int("/proc/self/statm")
    if pages is None:
        return soft
    return soft - pages * resource.getpagesize()


def largest_batch(per_item: int, budget: int | None, fixed: int = 0) -> int | None:
    """The most items of ``per_item`` bytes that fit in ``budget`` bytes beside ``fixed``
    bytes (at least 0); None when the budget is unknown."""
    if budget is None:
        return None
    return max(0, (budget - fixed) // max(1, per_item))
