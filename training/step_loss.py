"""The loss of one micro-batch of a training step: the diffusion objective's with this step's
noise, or the autoregressive twin's next-token loss."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from diffusion import LossOutput, Noise, antithetic, d3pm_loss, mdlm_loss
from models.causal import ar_loss
from training.batches import noise_generator

if TYPE_CHECKING:
    from training.trainer import Trainer


def micro_noise(trainer: Trainer, micro: int, length: int) -> Noise:
    """This rank's rows of the noise of the whole micro-batch across ranks: a function of
    (seed, step, micro) only, so every example gets the same noise on any number of
    processes. Times (B,), mask uniforms (B, length)."""
    plan, rank = trainer.plan, trainer.rank
    rows = plan.micro_batch * trainer.world_size
    generator = noise_generator(trainer.train.seed, trainer.step, micro, trainer.device)
    noise = Noise.draw(rows, trainer.config.max_length, generator, trainer.device)
    if trainer.config.objective == "mdlm":
        noise.time = antithetic(noise.time[:1], rows)
    elif not trainer.train.per_sequence_t:
        noise.time = noise.time[:1].expand(rows)
    mine = slice(rank * plan.micro_batch, (rank + 1) * plan.micro_batch)
    return Noise(noise.time[mine], noise.mask[mine, :length])


def step_loss(
    trainer: Trainer, x0: torch.Tensor, target_mask: torch.Tensor, micro: int
) -> LossOutput:
    """The loss of micro-batch ``micro`` of the trainer's current step. Args: x0 (B, L) ids,
    target_mask (B, L) bool."""
    if trainer.config.autoregressive:
        return ar_loss(trainer.network, x0, target_mask)
    noise = micro_noise(trainer, micro, x0.shape[1])
    if trainer.config.objective == "mdlm":
        return mdlm_loss(trainer.diffusion, trainer.network, x0, target_mask, noise=noise)
    return d3pm_loss(trainer.diffusion, trainer.network, x0, target_mask,
                     trainer.config.hybrid_lambda, trainer.train.per_sequence_t,
                     noise=noise)  # fmt: skip
