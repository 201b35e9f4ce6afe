"""Set-up shared by the evaluation scripts."""

from __future__ import annotations

import torch
from transformers.utils import logging as hf_logging

from common.errors import UsageError


def quiet_transformers() -> None:
    """Errors only, and no weight-loading progress bars."""
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def pick_device(flag: str) -> torch.device:
    """``auto`` is CUDA when visible, else CPU; otherwise the device named."""
    if flag == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(flag)
    except RuntimeError:
        raise UsageError(
            f"--device {flag!r} is not a device: pass auto, cpu, cuda or cuda:N"
        ) from None


def probe_compile(device: torch.device) -> None:
    """``--compile``'s up-front check: torch.compile a one-line function and run it on
    ``device``, the way the encoder will be compiled, before a run folder, a model or data is
    touched. A compiler that is missing or does not work (no Python headers, a broken
    toolchain) is one UsageError with the compiler's first line, not a traceback at step 1."""
    import torch._dynamo

    def twice_plus_one(x: torch.Tensor) -> torch.Tensor:
        return x * 2 + 1

    try:
        torch.compile(twice_plus_one)(torch.ones(4, device=device))
    except Exception as error:  # noqa: BLE001 (inductor raises many kinds; one answer for all)
        first = next((line for line in str(error).splitlines() if line.strip()), "")
        raise UsageError(
            f"--compile: torch.compile could not build a one-line function on {device} "
            f"({type(error).__name__}: {first[:200]}); install a working C++ compiler and "
            "the Python headers, or drop --compile"
        ) from None
    finally:
        torch._dynamo.reset()
