"""Where a bound's uniforms come from: one generator for the batch, or one key per sequence.

A likelihood bound consumes, per sequence: one ``offset`` uniform (the stratified times of the
continuous bound), and per network call a ``pick`` uniform (the first masked position of a
mask conditioned on masking one), ``mask`` uniforms, one per position, and a ``time`` uniform
(independent times, for ``rao_blackwell_loo``). ``BatchNoise``
draws them from one generator in batch order (so a sequence's noise depends on its batch).
``KeyedNoise`` draws each sequence's from a generator seeded by that sequence's key, in a
layout that depends only on the key and the number of target tokens: the same sequence gets
the same times and masks whatever its batch, its position in it, the padding or the
checkpoint. Two models bounded with the same keys share their noise (common random numbers),
so most of the Monte Carlo error cancels in their difference.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class BatchNoise:
    """Uniforms drawn from ``generator`` in call order, for a batch of (B, L) sequences. Each
    stream's uniforms for a call are drawn once, at the first request, and returned again for
    the same call (the ``antithetic`` estimator mirrors call k − 1's mask uniforms)."""

    def __init__(self, batch: int, length: int, generator: torch.Generator | None, device):
        self.batch, self.length, self.generator, self.device = batch, length, generator, device
        self._drawn: dict[tuple[str, int], torch.Tensor] = {}

    def _rand(self, stream: str, call: int, *shape: int) -> torch.Tensor:
        key = (stream, call)
        if key not in self._drawn:
            self._drawn[key] = torch.rand(
                *shape, generator=self.generator, device=self.device, dtype=torch.float64
            )
        return self._drawn[key]

    def offset(self) -> torch.Tensor:
        """(B,) uniforms."""
        return self._rand("offset", 0, self.batch)

    def pick(self, call: int) -> torch.Tensor:
        """(B,) uniforms for network call ``call``."""
        return self._rand("pick", call, self.batch)

    def mask(self, call: int) -> torch.Tensor:
        """(B, L) uniforms for network call ``call``."""
        return self._rand("mask", call, self.batch, self.length)

    def time(self, call: int) -> torch.Tensor:
        """(B,) uniforms for network call ``call``'s own time."""
        return self._rand("time", call, self.batch)


class KeyedNoise:
    """Every sequence's uniforms from its own key: a generator seeded by ``keys[b]`` draws, in
    this order, 1 offset, ``calls`` picks, ``calls`` × n_b mask uniforms (n_b = its target
    tokens, laid at its target positions in order; other positions get 1, never masked), then
    ``calls`` times (last, so the streams before them are those of the layout without them).

    Args: keys: B integers in [0, 2**63); target_mask (B, L) bool; calls: network calls the
    bound makes; device: where the uniforms are returned. Memory: B × calls × L float64.
    """

    def __init__(self, keys: Sequence[int], target_mask: torch.Tensor, calls: int, device=None):
        batch, length = target_mask.shape
        if len(keys) != batch:
            raise ValueError(f"keys: {len(keys)} keys for a batch of {batch} sequences")
        counts = target_mask.sum(-1).tolist()
        offsets = torch.empty(batch, dtype=torch.float64)
        picks = torch.empty(batch, calls, dtype=torch.float64)
        times = torch.empty(batch, calls, dtype=torch.float64)
        masks = torch.ones(batch, calls, length, dtype=torch.float64)
        cpu_mask = target_mask.cpu()
        for b, (key, n) in enumerate(zip(keys, counts, strict=True)):
            generator = torch.Generator().manual_seed(int(key))
            stream = torch.rand(1 + 2 * calls + calls * n, generator=generator, dtype=torch.float64)
            offsets[b], picks[b] = stream[0], stream[1 : 1 + calls]
            masks[b][:, cpu_mask[b]] = stream[1 + calls : 1 + calls + calls * n].view(calls, n)
            times[b] = stream[1 + calls + calls * n :]
        device = device if device is not None else target_mask.device
        self._offsets, self._picks = offsets.to(device), picks.to(device)
        self._times = times.to(device)
        self._masks = masks.to(device)

    def offset(self) -> torch.Tensor:
        """(B,) uniforms."""
        return self._offsets

    def pick(self, call: int) -> torch.Tensor:
        """(B,) uniforms for network call ``call``."""
        return self._picks[:, call]

    def mask(self, call: int) -> torch.Tensor:
        """(B, L) uniforms for network call ``call``."""
        return self._masks[:, call]

    def time(self, call: int) -> torch.Tensor:
        """(B,) uniforms for network call ``call``'s own time."""
        return self._times[:, call].contiguous()
