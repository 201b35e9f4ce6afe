"""Set-up shared by the evaluation scripts."""

from __future__ import annotations

import torch
from transformers.utils import logging as hf_logging


def quiet_transformers() -> None:
    """Errors only, and no weight-loading progress bars."""
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def pick_device(flag: str) -> torch.device:
    """``auto`` is CUDA when visible, else CPU; otherwise the device named."""
    if flag == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(flag)
