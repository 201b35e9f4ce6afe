"""One optimizer step of diffusion training, dev evaluation and the checkpoint writes."""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from transformers import PreTrainedTokenizerBase

from diffusion import AbsorbingDiffusion, Noise, antithetic, d3pm_loss, mdlm_loss
from models.checkpoint import save_checkpoint
from models.config import DiffusionConfig
from models.denoiser import DiffusionBert
from models.evaluation import estimate_bound
from models.training import BatchPlan, collate_rows, noise_generator, rng_state

MAX_BAD_STEPS = 20


@dataclass
class Trainer:
    """Owns the model, optimizer and schedule; ``step`` counts optimizer steps taken."""

    model: DiffusionBert
    diffusion: AbsorbingDiffusion
    config: DiffusionConfig
    tokenizer: PreTrainedTokenizerBase
    counts: torch.Tensor | None
    lengths: torch.Tensor
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    train_set: datasets.Dataset
    plan: BatchPlan
    device: torch.device
    seed: int
    bf16: bool = False
    per_sequence_t: bool = False
    max_grad_norm: float = 0.0
    rank: int = 0
    world_size: int = 1
    step: int = 0
    bad_steps: int = 0
    skipped_steps: int = 0
    best: float | None = None
    network: torch.nn.Module = field(init=False)

    def __post_init__(self) -> None:
        self.network = self.model
        if self.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.network = DistributedDataParallel(self.model, device_ids=ids)

    def _autocast(self):
        if self.bf16 and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _noise(self, micro: int, length: int) -> Noise:
        """This rank's rows of the noise of the whole micro-batch across ranks: a function of
        (seed, step, micro) only, so every example gets the same noise on any number of
        processes."""
        rows = self.plan.micro_batch * self.world_size
        generator = noise_generator(self.seed, self.step, micro, self.device)
        noise = Noise.draw(rows, self.config.max_length, generator, self.device)
        if self.config.objective == "mdlm":
            noise.time = antithetic(noise.time[:1], rows)
        elif not self.per_sequence_t:
            noise.time = noise.time[:1].expand(rows)
        mine = slice(self.rank * self.plan.micro_batch, (self.rank + 1) * self.plan.micro_batch)
        return Noise(noise.time[mine], noise.mask[mine, :length])

    def _loss(self, x0: torch.Tensor, target_mask: torch.Tensor, noise: Noise):
        if self.config.objective == "mdlm":
            return mdlm_loss(self.diffusion, self.network, x0, target_mask, noise=noise)
        return d3pm_loss(
            self.diffusion,
            self.network,
            x0,
            target_mask,
            self.config.hybrid_lambda,
            self.per_sequence_t,
            noise=noise,
        )

    def train_step(self) -> dict[str, float] | None:
        """One optimizer step over ``accumulation`` micro-batches.

        Returns the step's loss (per sequence, as the reference reports it) and the loss per
        scored token, or None when the loss was NaN/inf on any rank (the step is skipped).
        """
        self.model.train()
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        scored = torch.zeros((), dtype=torch.float64, device=self.device)
        for micro in range(self.plan.accumulation):
            rows = self.train_set[self.plan.indices(self.step, micro, self.rank)]
            x0, target_mask = collate_rows(rows, self.tokenizer.pad_token_id)
            x0, target_mask = x0.to(self.device), target_mask.to(self.device)
            last = micro == self.plan.accumulation - 1
            sync = (
                contextlib.nullcontext() if last or self.world_size == 1 else self.network.no_sync()
            )
            with sync:
                with self._autocast():
                    out = self._loss(x0, target_mask, self._noise(micro, x0.shape[1]))
                (out.loss / self.plan.accumulation).backward()
            total += out.total.to(torch.float64)
            scored += out.num_masked
        stats = torch.stack([total, scored, (~torch.isfinite(total)).to(torch.float64)])
        if self.world_size > 1:
            dist.all_reduce(stats)
        if stats[2] > 0:
            self.optimizer.zero_grad(set_to_none=True)
            self.bad_steps += 1
            self.skipped_steps += 1
            self.step += 1
            if self.bad_steps >= MAX_BAD_STEPS:
                raise FloatingPointError(
                    f"the loss was NaN/inf in {MAX_BAD_STEPS} steps in a row (last at step "
                    f"{self.step}); lower --lr, check the data, or resume from an earlier "
                    "checkpoint"
                )
            return None
        if self.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.bad_steps = 0
        self.step += 1
        sequences = self.plan.micro_batch * self.plan.accumulation * self.world_size
        return {
            "loss": stats[0].item() / sequences,
            "loss_per_token": stats[0].item() / max(stats[1].item(), 1.0),
            "lr": self.scheduler.get_last_lr()[0],
        }

    def evaluate(self, dev_set: datasets.Dataset, batch_size: int, step_size: int) -> dict:
        """Dev bound: continuous-time, one draw per sequence (discrete for ``linear``)."""
        self.model.eval()
        bound = "discrete" if self.config.schedule == "linear" else "continuous"
        batches = (
            collate_rows(dev_set[i : i + batch_size], self.tokenizer.pad_token_id)
            for i in range(0, len(dev_set), batch_size)
        )
        with self._autocast():
            result = estimate_bound(
                self.diffusion,
                self.model,
                batches,
                bound,
                step_size,
                1,
                self.seed,
                self.device,
            )
        result["bound"] = bound
        return result

    def training_state(self, args: dict) -> dict:
        """Everything besides the weights that an exact resume needs (per-rank RNG states)."""
        states = [rng_state()]
        if self.world_size > 1:
            states = [None] * self.world_size
            dist.all_gather_object(states, rng_state())
        return {
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": states,
            "best": self.best,
            "bad_steps": self.bad_steps,
            "skipped_steps": self.skipped_steps,
            "args": args,
        }

    def save(self, path: Path, state: dict | None) -> None:
        save_checkpoint(
            path,
            self.model,
            self.tokenizer,
            self.config,
            self.counts,
            state,
            self.lengths,
        )


def prune_checkpoints(output_dir: Path, keep_last: int) -> None:
    """Keep the ``keep_last`` newest ``checkpoint-<step>`` folders."""
    numbered = sorted(
        (p for p in output_dir.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
        key=lambda p: int(p.name.split("-")[-1]),
    )
    for old in numbered[: max(0, len(numbered) - keep_last)]:
        shutil.rmtree(old, ignore_errors=True)
