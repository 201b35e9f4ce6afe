"""Model FLOP utilisation (MFU) for bench/bench.py: the model's matrix-multiply FLOPs of a
forward pass (``forward_flops``, tested against torch's FlopCounterMode), the peak of a square
matrix product measured in this process (``matmul_peak``), the datasheet peak of known CUDA
devices, and their ratio (``utilisation``)."""

from __future__ import annotations

import math
import time

import torch

# TFLOP/s of dense bf16 matrix products (fp32 accumulate) from the vendors' datasheets, by a
# fragment of torch.cuda.get_device_name(); the first fragment that matches wins.
BF16_DENSE_PEAK = (
    ("H100 PCIe", 756.0),
    ("H100", 989.4),
    ("H200", 989.4),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("L40S", 362.1),
    ("L4", 121.0),
)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def datasheet_peak(device: torch.device) -> float | None:
    """The bf16 dense datasheet peak in FLOP/s of this CUDA device, None if not listed."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((tflops * 1e12 for part, tflops in BF16_DENSE_PEAK if part in name), None)


def matmul_peak(device: torch.device, precision: str, repeats: int = 5) -> float:
    """FLOP/s of the fastest of ``repeats`` square products (8192 on CUDA, 1024 on the CPU) in
    the precision's dtype, in this process, through ``linear``: the op of the network's layers
    (on a CPU without bf16 instructions a bf16 ``mm`` is ten times slower than a bf16
    ``linear``, which would inflate the utilisation)."""
    n = 8192 if device.type == "cuda" else 1024
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = math.inf
    for _ in range(repeats + 1):  # the first is a warm-up
        sync(device)
        start = time.perf_counter()
        torch.nn.functional.linear(a, b)
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def forward_flops(config, rows: int, width: int, scored: int) -> float:
    """Matrix-multiply FLOPs of one forward pass: the encoder on ``rows`` sequences of ``width``
    positions (8h² + 4hf projections and 4wh attention per position and layer) and the
    masked-LM head (h² transform, hV decoder) at ``scored`` positions. Recomputation in
    backward is not counted (model FLOPs, not hardware FLOPs)."""
    h, f, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    encoder = layers * rows * width * (2 * (4 * h * h + 2 * h * f) + 4 * width * h)
    return encoder + 2 * scored * (h * h + h * config.vocab_size)


def utilisation(flops: float, seconds: float, peak: float, device: torch.device) -> dict:
    """Model TFLOP/s and their fraction of the measured peak (and of the datasheet's)."""
    out = {"model_tflops": flops / seconds / 1e12, "matmul_peak_tflops": peak / 1e12,
           "mfu": flops / seconds / peak}  # fmt: skip
    sheet = datasheet_peak(device)
    if sheet is not None:
        out["mfu_datasheet"] = flops / seconds / sheet
    return out
