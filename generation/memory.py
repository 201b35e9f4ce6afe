"""The memory a sampling batch needs, so a --batch_size larger than the device holds is run in
chunks that fit (the samples are then those of ``--batch_size <chunk>``)."""

from __future__ import annotations

import sys

import torch

from common.memory import GIB, available_bytes, largest_batch
from models.checkpoint import Checkpoint

# per (position, vocabulary entry) of one call: the network's float32 logits and the
# sampler's float64 copies (temperature, top-k/top-p filtering, log-softmax, probabilities)
BYTES_PER_LOGIT = 48
# the share of the free memory a sampling batch may plan for
SHARE = 0.5


def row_bytes(width: int, vocab: int, hidden: int, layers: int) -> int:
    """Bytes one sequence of ``width`` positions needs during one sampling call: the
    vocabulary-wide tensors and the network's activations (no gradients)."""
    return width * vocab * BYTES_PER_LOGIT + width * hidden * layers * 4 * 16


def fitting_batch(
    ckpt: Checkpoint, requested: int, width: int, device: torch.device, copies: int = 1
) -> int:
    """``requested`` rows per call, or the most that half the device's free memory holds (at
    least 1), with a note on stderr. ``copies``: network passes per row and call (2 with
    classifier-free guidance). Unknown free memory: ``requested``."""
    model = ckpt.model.mlm.config
    per_row = copies * row_bytes(width, model.vocab_size, model.hidden_size,
                                 model.num_hidden_layers)  # fmt: skip
    free = available_bytes(device)
    fits = largest_batch(per_row, None if free is None else int(free * SHARE))
    if fits is None or requested <= fits:
        return requested
    batch = max(1, fits)
    print(
        f"note: --batch_size {requested} needs about {requested * per_row / GIB:.1f} GiB, more "
        f"than {device} has free; sampling {batch} rows per call (the samples of --batch_size "
        f"{batch})",
        file=sys.stderr,
    )
    return batch
