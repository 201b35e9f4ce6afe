"""Whether a training micro-batch fits the device, estimated before any work: a --batch_size
that cannot fit is refused in one line naming the largest that does."""

from __future__ import annotations

import math
from typing import Any

import torch

from common.errors import UsageError
from common.memory import GIB, available_bytes, largest_batch

# the share of the free memory a training micro-batch may plan for
SHARE = 0.9
# float32 weights, gradients and the two AdamW moments
BYTES_PER_PARAMETER = 16


def parameters(config: Any) -> int:
    """The parameters of a BERT-style masked LM of ``config`` (embeddings, layers, head)."""
    hidden, layers = config.hidden_size, config.num_hidden_layers
    inner = getattr(config, "intermediate_size", 4 * hidden)
    embeddings = (config.vocab_size + config.max_position_embeddings + 2) * hidden
    return embeddings + layers * (4 * hidden * hidden + 2 * hidden * inner + 13 * hidden)


def sequence_bytes(config: Any, width: int) -> int:
    """Bytes one sequence of ``width`` positions keeps for the backward pass: per layer
    ``width · hidden · 68 + heads · width² · 10`` (float32 activations of a transformer layer,
    Korthikanti et al. 2022), plus the logits over the vocabulary, their log-softmax and
    gradients (16 bytes per entry)."""
    heads = config.num_attention_heads
    layer = width * config.hidden_size * 68 + heads * width * width * 10
    return config.num_hidden_layers * layer + width * config.vocab_size * 16


def check_batch_fits(
    batch_size: int, accumulation: int, width: int, config: Any, device: torch.device
) -> None:
    """Refuse a ``--batch_size`` whose micro-batch cannot fit in ``device``'s free memory
    (unknown free memory: no check)."""
    free = available_bytes(device)
    if free is None:
        return
    per_sequence = sequence_bytes(config, width)
    fixed = parameters(config) * BYTES_PER_PARAMETER
    fits = largest_batch(per_sequence, int(free * SHARE), fixed)
    if fits is None or batch_size <= fits:
        return
    needed = (fixed + batch_size * per_sequence) / GIB
    where = f"{device} has {free / GIB:.1f} GiB free"
    if fits == 0:
        raise UsageError(
            f"--batch_size {batch_size}: the model alone needs about {fixed / GIB:.1f} GiB and "
            f"{where}; use a smaller model or a device with more memory"
        )
    total = batch_size * accumulation
    raise UsageError(
        f"--batch_size {batch_size} needs about {needed:.1f} GiB and {where}: pass "
        f"--batch_size ≤ {fits} (--batch_size {fits} --accumulation_steps "
        f"{math.ceil(total / fits)} keeps a global batch of about {total})"
    )
