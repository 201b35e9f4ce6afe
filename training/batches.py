"""Which examples a step reads (``BatchPlan``) and the noise generator of a micro-batch: both
functions of (seed, step), so a resumed run repeats them."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from common.errors import UsageError


@dataclass(frozen=True)
class BatchPlan:
    """Which examples each optimizer step reads: a pure function of (seed, step), so a resumed
    run sees the same data order without saving any sampler state.

    Epoch e visits a permutation drawn from seed + e, in ``steps_per_epoch`` global batches of
    ``micro_batch · world_size · accumulation`` examples (a last partial batch is dropped).
    Rank r reads micro-batch m of a step from slot ``m · world_size + r`` of the global batch,
    so ranks are disjoint. The permutation of the current epoch is drawn once and kept
    (8 bytes per example), so a step costs O(micro_batch) whatever the dataset size.
    """

    num_examples: int
    micro_batch: int
    world_size: int
    accumulation: int
    seed: int
    _order: list = field(
        default_factory=lambda: [None, None], init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.steps_per_epoch < 1:
            raise UsageError(
                f"the training set has {self.num_examples} examples, fewer than one global batch "
                f"(--batch_size {self.micro_batch} × {self.world_size} processes × "
                f"--accumulation_steps {self.accumulation}); lower them or add data"
            )

    @property
    def global_batch(self) -> int:
        return self.micro_batch * self.world_size * self.accumulation

    @property
    def steps_per_epoch(self) -> int:
        return self.num_examples // self.global_batch

    def indices(self, step: int, micro: int, rank: int) -> list[int]:
        """Example indices of micro-batch ``micro`` of ``rank`` at optimizer step ``step``."""
        epoch, offset = divmod(step, self.steps_per_epoch)
        start = offset * self.global_batch + (micro * self.world_size + rank) * self.micro_batch
        return self.order(epoch)[start : start + self.micro_batch].tolist()

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
