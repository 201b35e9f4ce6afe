"""Everything a training run needs, built from main.py's settings: the tokenizer, the token
counts, the model (fresh or resumed), the devices, the data, the ``Trainer`` and its loggers,
with a resumed run's state loaded. main.py parses and checks the flags, then calls
``assemble`` and ``Trainer.fit``."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import datasets
import torch
import torch.distributed as dist
from transformers import AutoConfig, AutoTokenizer

from corpora.counting import default_counts_path, length_histogram, load_counts
from models import DiffusionConfig, build_model, load_checkpoint, resolve_model_name
from models.checkpoint import check_lengths
from models.config import AUTOREGRESSIVE
from training.config import TrainingConfig
from training.dashboard import FitlogLogger, dashboard_settings
from training.data import training_data
from training.distributed import setup_distributed
from training.loggers import JsonlLog
from training.memory import check_batch_fits
from training.resume import check_resumed_counts, load_resumed_state
from training.rng import seed_everything
from training.run_dir import repair_log
from training.trainer import Trainer


@dataclass
class Run:
    """A run ready to ``fit``: its trainer, dev set, loggers (rank 0 only) and where it runs."""

    trainer: Trainer
    dev_set: datasets.Dataset
    loggers: list
    rank: int
    world: int
    device: torch.device
    output_dir: Path
    kind: str

    def describe(self) -> str:
        """The line main.py prints before the first step."""
        model, trainer = self.trainer.model, self.trainer
        parameters = sum(p.numel() for p in model.parameters())
        return (
            f"training {type(model.mlm).__name__} ({parameters:,} parameters) on "
            f"{len(trainer.train_set):,} {self.kind} ({len(self.dev_set):,} held out), "
            f"{trainer.max_steps} steps of {trainer.plan.global_batch} sequences, device "
            f"{self.device} ({trainer.precision}), {self.world} process(es) → {self.output_dir}"
        )


def token_counts(
    args: argparse.Namespace, vocab_size: int
) -> tuple[torch.Tensor | None, str | Path | None]:
    """The training split's token counts (``--word_freq_file``, or word_freq.py's default
    path when the spindle is on) and the file read; (None, None) without either."""
    if args.objective == AUTOREGRESSIVE or not (args.word_freq_lambda > 0 or args.word_freq_file):
        return None, None
    path = args.word_freq_file or default_counts_path(
        args.model_name_or_path, args.dataset, args.task
    )
    return load_counts(path, vocab_size), path


def assemble(
    args: argparse.Namespace,
    config: DiffusionConfig,
    resume_dir: Path | None,
    state: dict | None,
) -> Run:
    """The run described by ``args`` (main.py's flags) and ``config``; ``resume_dir`` and
    ``state`` are the checkpoint and training state of a resumed run (None for a new one)."""
    backbone = resolve_model_name(args.model_name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    model_config = AutoConfig.from_pretrained(backbone)
    check_lengths(model_config, args.max_length, config.timestep)
    counts, freq_file = token_counts(args, model_config.vocab_size)
    resumed = None
    if state is not None:
        resumed = load_checkpoint(resume_dir)
        check_resumed_counts(resume_dir, resumed.counts, counts)

    rank, world, device = setup_distributed(args.device)
    width = args.max_length + 3  # [CLS], [SEP] and a time token at most
    check_batch_fits(args.batch_size, args.accumulation_steps, width, model_config, device)
    seed_everything(args.seed + rank)
    train_set, dev_set = training_data(
        tokenizer, args.dataset, args.task, args.data_dir, args.max_length,
        args.max_target_length, args.dev_size, args.data_seed, rank, world,
        dist.barrier if world > 1 else None, args.cache_dir,
    )  # fmt: skip
    if resumed is not None:
        model = resumed.model
    else:
        torch.manual_seed(args.seed)
        model = build_model(backbone, tokenizer, config, args.from_scratch)
    model.to(device)
    trainer = Trainer(
        model=model,
        diffusion=None
        if config.autoregressive
        else config.diffusion(counts, tokenizer.mask_token_id, tokenizer.pad_token_id),
        config=config,
        train=TrainingConfig.from_namespace(args),
        tokenizer=tokenizer,
        train_set=train_set,
        device=device,
        counts=counts,
        lengths=length_histogram(train_set, args.max_length),
        rank=rank,
        world_size=world,
        run_args=vars(args),
    )
    out = Path(args.output_dir)
    step = state["step"] if state else None
    loggers = []
    if rank == 0 and state is not None:
        repair_log(out / "train_log.jsonl")
    if rank == 0:
        loggers.append(JsonlLog(out / "train_log.jsonl", step))
    if state is not None:
        load_resumed_state(trainer, state, resume_dir)
    if rank == 0 and args.fitlog_dir:
        previous = resume_dir.parent if resume_dir else None
        loggers.append(FitlogLogger(args.fitlog_dir, out, step, previous))
    resolved = {
        "word_freq_file": str(freq_file) if freq_file else "none (no spindle)",
        "device": str(device), "precision": trainer.precision, "max_steps": trainer.max_steps,
        "global_batch": trainer.plan.global_batch,
    }  # fmt: skip
    for logger in loggers:
        logger.hyper(dashboard_settings(vars(args), resolved))
    kind = f"{args.task} pairs" if args.task else "sequences"
    return Run(trainer, dev_set, loggers, rank, world, device, out, kind)
