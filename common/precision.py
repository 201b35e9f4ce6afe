"""The precision a run actually computes in, from the ``--bf16`` flag and the device.

bf16 autocast is used only where the device computes bf16 natively: CUDA devices that support
it, and CPUs with AVX512-BF16 or AMX (what oneDNN reports). Elsewhere bf16 is emulated and
slower than fp32 (measured on an AVX2 CPU: a training step 18× slower, docs/performance.md),
so the run computes in fp32 and says why. Scripts report ``resolve_precision``'s answer (never
the flag's value) in their output, in ``training_args.json`` / their JSON record and in the
fitlog record, and wrap the network's forward passes in ``autocast(precision, device)``. The
precision-sensitive parts stay where they are: the denoiser's log-softmax in float32, the KL
and the bound's sums in float64, the sampling draws in float64.
"""

from __future__ import annotations

import contextlib
import sys

import torch

PRECISIONS = ("fp32", "bf16")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 matrix products natively."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def resolve_precision(bf16: bool, device: torch.device) -> str:
    """``bf16`` where the flag asks for it and the device computes it natively, else ``fp32``."""
    return "bf16" if bf16 and native_bf16(device) else "fp32"


def precision_note(bf16: bool, device: torch.device) -> str | None:
    """Why a run asked for bf16 computes in fp32 (one line), or None."""
    if not bf16 or native_bf16(device):
        return None
    what = "this CPU has no AVX512-BF16/AMX" if device.type == "cpu" else f"{device} has none"
    return f"bf16 asked for, fp32 used: {what} (bf16 would be emulated, and slower than fp32)"


def announced_precision(bf16: bool, device: torch.device) -> str:
    """``resolve_precision``, with ``precision_note`` printed to stderr when it applies."""
    note = precision_note(bf16, device)
    if note:
        print(f"note: {note}", file=sys.stderr)
    return resolve_precision(bf16, device)


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` for ``bf16``; a no-op for ``fp32``."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
