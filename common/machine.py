"""One line naming the machine a measurement ran on, for bench and ablation records."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from common.precision import native_bf16


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (``platform.processor()`` is often empty on
    Linux), else what ``platform`` knows."""
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def describe_machine(device: str | torch.device = "cpu") -> str:
    """e.g. ``Intel(R) Xeon(R) Processor, 2 cores, native bf16`` (the CUDA device's name added
    when ``device`` is CUDA, or ``auto`` where CUDA is available)."""
    if str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    bf16 = "native bf16" if native_bf16(torch.device("cpu")) else "no native bf16"
    line = f"{cpu_name()}, {os.cpu_count()} cores, {bf16}"
    return f"{line}, {torch.cuda.get_device_name(device)}" if device.type == "cuda" else line
