"""The trainer: one optimizer step of diffusion training, the dev evaluation, and the state a
checkpoint saves and an exact resume reloads. Its loop, ``fit``, is ``training.loop``'s."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from transformers import PreTrainedTokenizerBase

from common.precision import autocast, resolve_precision
from diffusion import AbsorbingDiffusion
from models.causal import CausalTwin
from models.checkpoint import link_checkpoint, save_checkpoint
from models.config import DiffusionConfig
from models.denoiser import DiffusionBert
from training.batches import BatchPlan
from training.config import TrainingConfig
from training.data import fetch, row_lengths
from training.dev import dev_evaluation, dev_samples
from training.loop import TrainingLoop
from training.optim import adamw, lr_scheduler
from training.rng import rng_state, set_rng_state
from training.settings import command_line
from training.step_loss import step_loss

MAX_BAD_STEPS = 20


@dataclass
class Trainer(TrainingLoop):
    """Owns the model, optimizer and LR schedule; ``step`` counts optimizer steps taken.

    ``counts`` (V,) and ``lengths`` (max_length + 1,) are the training split's token counts
    and length histogram, saved with every checkpoint. ``run_args`` (the run's flags) go into
    ``training_state.pt`` so that a resume can compare them.
    """

    model: DiffusionBert | CausalTwin
    diffusion: AbsorbingDiffusion | None  # None for the autoregressive twin
    config: DiffusionConfig
    train: TrainingConfig
    tokenizer: PreTrainedTokenizerBase
    train_set: datasets.Dataset
    device: torch.device
    counts: torch.Tensor | None = None
    lengths: torch.Tensor | None = None
    rank: int = 0
    world_size: int = 1
    run_args: dict = field(default_factory=dict)
    step: int = 0
    bad_steps: int = 0
    skipped_steps: int = 0
    best: float | None = None
    elapsed: float = 0.0  # seconds of training in the processes before this one
    first_train: float | None = None  # the run's first logged train_nats_per_token
    samples: dict | None = None  # the last evaluation's samples (``training.dev.dev_samples``)
    plan: BatchPlan = field(init=False)
    optimizer: torch.optim.Optimizer = field(init=False)
    scheduler: torch.optim.lr_scheduler.LambdaLR = field(init=False)
    network: torch.nn.Module = field(init=False)
    ema: AveragedModel | None = field(init=False)

    def __post_init__(self) -> None:
        t = self.train
        self.plan = BatchPlan(
            len(self.train_set),
            t.batch_size,
            self.world_size,
            t.accumulation_steps,
            t.seed,
            lengths=row_lengths(self.train_set) if t.group_by_length else None,
        )
        self.optimizer = adamw(self.model, t.lr, t.weight_decay, self.device)
        self.scheduler = lr_scheduler(self.optimizer, t.lr_schedule, t.warmup_steps)
        self.ema = None  # torch's AveragedModel: the first update copies, then decays
        if t.ema > 0:
            self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(t.ema))
        if t.compile:
            self.model.compile_encoder()
        self.network = self.model
        if self.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.network = DistributedDataParallel(self.model, device_ids=ids)

    @property
    def max_steps(self) -> int:
        if self.train.max_steps > 0:
            return self.train.max_steps
        return self.train.epochs * self.plan.steps_per_epoch

    @property
    def averaged(self) -> DiffusionBert | CausalTwin:
        """The weights the dev bound reads and a checkpoint saves: the moving average's with
        ``--ema``, else the model's own."""
        return self.ema.module if self.ema is not None else self.model

    @property
    def precision(self) -> str:
        """What the forward passes compute in: ``fp32`` or ``bf16`` (common.precision)."""
        return resolve_precision(self.train.bf16, self.device)

    def _autocast(self):
        return autocast(self.precision, self.device)

    def train_step(self) -> dict[str, float] | None:
        """One optimizer step over ``accumulation`` micro-batches.

        Returns the step's ``train_nats_per_token`` (the objective on the dev bound's scale,
        ``LossOutput.nats`` over the target tokens: the figure shown everywhere), its ``loss``
        (the objective per sequence, as the reference reports it: what is back-propagated)
        and the gradients' global L2 norm (before any clipping), or None when the loss was
        NaN/inf on any rank (the step is skipped).
        """
        self.model.train()
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        nats = torch.zeros((), dtype=torch.float64, device=self.device)
        tokens = torch.zeros((), dtype=torch.float64, device=self.device)
        for micro in range(self.plan.accumulation):
            rows = self.plan.indices(self.step, micro, self.rank)
            x0, target_mask = fetch(self.train_set, rows, self.tokenizer.pad_token_id)
            x0, target_mask = x0.to(self.device), target_mask.to(self.device)
            last = micro == self.plan.accumulation - 1
            sync = (
                contextlib.nullcontext() if last or self.world_size == 1 else self.network.no_sync()
            )
            with sync:
                with self._autocast():
                    out = step_loss(self, x0, target_mask, micro)
                (out.loss / self.plan.accumulation).backward()
            total += out.total.to(torch.float64)
            nats += out.nats
            tokens += target_mask.sum()
        bad = (~torch.isfinite(total)).to(torch.float64)
        stats = torch.stack([total, nats, bad, tokens])
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
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        if self.train.max_grad_norm > 0:  # returns the norm before clipping
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                                       self.train.max_grad_norm)  # fmt: skip
        else:
            grad_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g)
                                                              for g in grads]))  # fmt: skip
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.bad_steps = 0
        self.step += 1
        sequences = self.plan.micro_batch * self.plan.accumulation * self.world_size
        return {
            "train_nats_per_token": stats[1].item() / max(stats[3].item(), 1.0),
            "loss": stats[0].item() / sequences,
            "lr": self.scheduler.get_last_lr()[0],
            "tokens": stats[3].item(),
            "grad_norm": grad_norm.item(),
        }

    def evaluate(
        self, dev_set: datasets.Dataset, stop: Callable[[], int | None] = lambda: None
    ) -> dict:
        """The dev figure (``training.dev.dev_evaluation``) and, on rank 0 of an unconditional
        run with ``--eval_samples``, the samples of ``training.dev.dev_samples``."""
        result = dev_evaluation(self, dev_set, stop)
        if self.train.eval_samples and self.rank == 0 and self.config.task is None:
            drawn = dev_samples(self)
            result.update(drawn)
            self.samples = {"step": self.step, **drawn}
        return result

    def state_dict(self) -> dict:
        """Everything besides the weights that an exact resume needs (the RNG states of every
        rank, gathered on all of them). The layout of ``training_state.pt``."""
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
            "elapsed_s": self.elapsed_s(),
            "first_train_nats_per_token": self.first_train,
            "samples": self.samples,
            "args": self.run_args,
            **self._raw_weights(),
        }

    def _raw_weights(self) -> dict:
        """With ``--ema`` the checkpoint's weights are the average's: the raw weights and the
        average's count go into the training state, for an exact resume."""
        if self.ema is None:
            return {}
        raw = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return {"raw_weights": raw, "ema_updates": int(self.ema.n_averaged.item())}

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state_dict()`` of an earlier run (this rank's RNG states). With
        ``--ema`` the model holds the checkpoint's (averaged) weights: they become the
        average's and the raw weights of the state the model's."""
        if self.ema is not None and "raw_weights" in state:
            self.ema.module.load_state_dict(self.model.state_dict())
            self.model.load_state_dict(state["raw_weights"])
            self.ema.n_averaged.fill_(state["ema_updates"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"][self.rank])
        self.step, self.best = state["step"], state["best"]
        self.bad_steps, self.skipped_steps = state["bad_steps"], state["skipped_steps"]
        self.elapsed = state.get("elapsed_s", 0.0)  # absent from older states
        self.first_train = state.get("first_train_nats_per_token")
        self.samples = state.get("samples")

    def save(self, path: Path, with_state: bool) -> None:
        """A checkpoint folder at ``path`` (written by rank 0; every rank must call this when
        ``with_state``, since the RNG states are gathered)."""
        state = self.state_dict() if with_state else None
        if self.rank == 0:
            save_checkpoint(
                path, self.averaged, self.tokenizer, self.config, self.counts, state,
                self.lengths, self.run_record(),
            )  # fmt: skip

    def link(self, source: Path, path: Path) -> None:
        """The checkpoint folder ``source`` (just saved) again at ``path`` without a second
        copy on disk (``models.checkpoint.link_checkpoint``; rank 0 writes)."""
        if self.rank == 0:
            link_checkpoint(source, path, self.config, self.run_record())

    def run_record(self) -> dict:
        """What a checkpoint records of its run: the flags, the resolved sizes, the step, the
        best dev bound and the command (``save_checkpoint``'s ``run``)."""
        return {
            "args": self.run_args,
            "resolved": {
                "max_steps": self.max_steps,
                "global_batch": self.plan.global_batch,
                "save_steps": self.train.save_every,
                "world_size": self.world_size,
                "precision": self.precision,
            },
            "step": self.step,
            "best_dev_nats_per_token": self.best,
            "command": command_line(self.run_args) if self.run_args else None,
            "samples": self.samples,
        }

    def setting_warnings(self) -> list[str]:
        """Settings that make the run meaningless or nearly so, one sentence each."""
        t, steps = self.train, self.max_steps
        found = []
        if t.warmup_steps > steps:
            peak = t.lr * self.scheduler.lr_lambdas[0](steps)
            found.append(
                f"--warmup_steps {t.warmup_steps} is longer than the run ({steps} steps): the "
                f"learning rate only reaches {peak:.2e} of --lr {t.lr:g}; lower --warmup_steps "
                f"(e.g. {max(steps // 10, 1)}) or raise --max_steps"
            )
        if t.logging_steps > steps:
            found.append(
                f"--logging_steps {t.logging_steps} is longer than the run ({steps} steps): no "
                "training loss will be logged; lower --logging_steps"
            )
        return found
