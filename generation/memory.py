"""The memory a sampling batch needs, so a --batch_size larger than the device holds is run in
chunks that fit (the samples are then those of ``--batch_size <chunk>``)."""

from __future__ import annotations

import torch

from common.memory import available_bytes, largest_batch

# per (position, vocabulary entry) of one call: the network's float32 logits and the
# sampler's float64 copies (temperature, top-k/top-p filtering, log-softmax, probabilities)
BYTES_PER_LOGIT = 48
# the share of the free memory a sampling batch may plan for
SHARE = 0.5


def row_bytes(width: int, vocab: int, hidden: int, layers: int) -> int:
    """Bytes one sequence of ``width`` positions needs during one sampling call: the
    vocabulary-wide tensors and the network's activations (no gradients)."""
    return width * vocab * BYTES_PER_LOGIT + width * hidden * layers * 4 * 16


def sampling_batch(
    requested: int, width: int, vocab: int, hidden: int, layers: int, device: torch.device
) -> tuple[int, int]:
    """(rows per call that fit the device's free memory, at most ``requested`` and at least 1;
    the bytes ``requested`` rows would need)."""
    per_row = row_bytes(width, vocab, hidden, layers)
    free = available_bytes(device)
    fits = largest_batch(per_row, None if free is None else int(free * SHARE))
    if fits is None:
        return requested, per_row * requested
    return max(1, min(requested, fits)), per_row * requested
