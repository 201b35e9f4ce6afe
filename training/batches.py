"""Which examples a step reads (``BatchPlan``) and the noise generator of a micro-batch: both
functions of (seed, step), so a resumed run repeats them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from common.errors import UsageError

# Global batches sorted together by length (BatchPlan.group): enough that the examples of one
# batch are of nearly one length, few enough that consecutive steps still mix lengths.
GROUP_BATCHES = 64


@dataclass(frozen=True)
class BatchPlan:
    """Which examples each optimizer step reads: a pure function of (seed, step), so a resumed
    run sees the same data order without saving any sampler state.

    Epoch e visits a permutation drawn from seed + e, in ``steps_per_epoch`` global batches of
    ``micro_batch · world_size · accumulation`` examples (a last partial batch is dropped).
    Rank r reads micro-batch m of a step from slot ``m · world_size + r`` of the global batch,
    so ranks are disjoint. The permutation of the current epoch is drawn once and kept
    (8 bytes per example), so a step costs O(micro_batch) whatever the dataset size.

    With ``lengths`` (num_examples,), the example lengths, batches are grouped by length:
    every ``group`` consecutive global batches of the permutation are sorted together by
    length (longest first, ties in permutation order), cut into global batches again, and
    those are visited in an order drawn from (seed, epoch, group). Each example is still seen
    once per epoch and every batch holds examples of nearly one length, so padding is rarely
    computed; the sort is done once per group (O(batch · log) per step amortised).
    """

    num_examples: int
    micro_batch: int
    world_size: int
    accumulation: int
    seed: int
    lengths: np.ndarray | None = field(default=None, repr=False, compare=False)
    group: int = GROUP_BATCHES
    _order: list = field(
        default_factory=lambda: [None, None], init=False, repr=False, compare=False
    )
    _grouped: list = field(
        default_factory=lambda: [None, None], init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.steps_per_epoch < 1:
            raise UsageError(
                f"the training set has {self.num_examples} examples, fewer than one global batch "
                f"(--batch_size {self.micro_batch} × {self.world_size} processes × "
                f"--accumulation_steps {self.accumulation}); lower them or add data"
            )
        if self.lengths is not None and len(self.lengths) != self.num_examples:
            raise ValueError(
                f"BatchPlan: {len(self.lengths)} lengths for {self.num_examples} examples"
            )
        if self.group < 1:
            raise ValueError(f"BatchPlan: group must be ≥ 1, got {self.group}")

    @property
    def global_batch(self) -> int:
        return self.micro_batch * self.world_size * self.accumulation

    @property
    def steps_per_epoch(self) -> int:
        return self.num_examples // self.global_batch

    def indices(self, step: int, micro: int, rank: int) -> list[int]:
        """Example indices of micro-batch ``micro`` of ``rank`` at optimizer step ``step``."""
        epoch, offset = divmod(step, self.steps_per_epoch)
        start = (micro * self.world_size + rank) * self.micro_batch
        return self.batch(epoch, offset)[start : start + self.micro_batch].tolist()

    def batch(self, epoch: int, offset: int) -> torch.Tensor:
        """The example indices (global_batch,) of global batch ``offset`` of epoch ``epoch``."""
        size = self.global_batch
        if self.lengths is None:
            return self.order(epoch)[offset * size : (offset + 1) * size]
        first = offset - offset % self.group
        if self._grouped[0] != (epoch, first):
            count = min(self.group, self.steps_per_epoch - first)
            rows = self.order(epoch)[first * size : (first + count) * size]
            lengths = torch.from_numpy(np.asarray(self.lengths[rows.numpy()], dtype=np.int64))
            by_length = rows[torch.sort(lengths, descending=True, stable=True).indices]
            generator = torch.Generator().manual_seed(
                ((self.seed * 1_000_003 + epoch) * 1_000_003 + first) % 2**63
            )
            visit = torch.randperm(count, generator=generator)
            self._grouped[:] = [(epoch, first), by_length.view(count, size)[visit]]
        return self._grouped[1][offset - first]

    def order(self, epoch: int) -> torch.Tensor:
        """The permutation of epoch ``epoch`` (int64, num_examples), drawn once per epoch."""
        if self._order[0] != epoch:
            self._order[1] = None  # free the previous epoch's before drawing the next
            generator = torch.Generator().manual_seed(self.seed + epoch)
            self._order[1] = torch.randperm(self.num_examples, generator=generator)
            self._order[0] = epoch
        return self._order[1]


def noise_generator(seed: int, step: int, micro: int, device: torch.device) -> torch.Generator:
    """The diffusion noise of one micro-batch: a function of (seed, step, micro) only."""
    generator = torch.Generator(device=device)
    generator.manual_seed((seed * 1_000_003 + step) * 4099 + micro)
    return generator
