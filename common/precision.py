"""The precision a run actually computes in, from the ``--bf16`` flag and the device.

Scripts report ``resolve_precision``'s answer (never the flag's value) in their output, in
``training_args.json`` and in the fitlog record, and wrap the network's forward passes in
``autocast(precision, device)``.
"""

from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("fp32", "bf16")


def resolve_precision(bf16: bool, device: torch.device) -> str:
    """``bf16`` where the flag asks for it and the device computes it natively, else ``fp32``.

    bf16 autocast runs on CUDA devices.
    """
    return "bf16" if bf16 and device.type == "cuda" else "fp32"


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` for ``bf16``; a no-op for ``fp32``."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
