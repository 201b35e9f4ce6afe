"""Train a DiffusionBERT denoiser (absorbing-state diffusion on a BERT masked LM).

python main.py --dataset toy --model_name_or_path minilm-l6 --word_freq_lambda 0.3 ...
python main.py --task toy ...   (seq2seq: [CLS] source target [SEP], only the target diffused)
torchrun --nproc_per_node N main.py ...   (DDP; one process works without torchrun)

What to run first: word_freq.py (the token counts the spindle schedule reads), then main.py;
or bash run.sh, which runs both and then bounds, samples, scores and draws the demo.
Reference: docs/training.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

import common.interrupt
import common.stored_help  # noqa: F401 (first: a bare --help prints without loading torch)

# isort: split
import torch

from common.checks import (
    TRAINING_SEED_LIMIT,
    check_number,
    check_output_dir,
    check_outputs_apart,
    check_seed,
)
from common.cli import Parser, choices
from common.errors import UsageError, exit_on_usage_error
from common.files import ADVICE, write_error
from common.precision import precision_note
from common.progress import set_quiet
from common.runtime import pick_device, probe_compile, quiet_transformers
from conditional_data import get_task
from diffusion import check_step_size
from evaluation.gen_ppl import causal_path
from models import (
    DiffusionConfig,
)
from models.config import AUTOREGRESSIVE
from training.assemble import assemble
from training.distributed import teardown_distributed
from training.optim import LR_SCHEDULES
from training.resume import resume_state
from training.run_dir import claim, existing_run
from training.settings import MAX_COUNT, add_settings, ranged
from training.stopping import StopRequests, resume_command


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def build_parser() -> Parser:
    """The flags of ``training.settings.SETTINGS`` (declared there once), then ``--quiet``."""
    p = Parser(description=__doc__)
    add_settings(p, choices)
    p.quiet()
    return p


def check_args(args: argparse.Namespace) -> None:
    """Reject bad settings before anything expensive happens: every number finite and in
    range, the output folder writable."""
    for name in (
        "batch_size",
        "accumulation_steps",
        "logging_steps",
        "eval_steps",
        "epochs",
        "eval_batch_size",
    ):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be ≥ 1, got {getattr(args, name)}")
    for setting in ranged():  # the declared ranges (training.settings)
        check_number(setting.flag, getattr(args, setting.name), setting.low, setting.high,
                     low_open=setting.low_open, high_open=setting.high_open,
                     note=setting.note)  # fmt: skip
    if args.max_steps != -1:
        check_number("--max_steps", args.max_steps, 1, MAX_COUNT, note="-1 = use --epochs")
    if args.task is not None and args.max_target_length >= 2:  # < 2: the seq2seq set-up says
        check_number("--max_target_length", args.max_target_length, 2, 2**20)
    if args.lr_schedule not in LR_SCHEDULES:
        raise UsageError(
            f"--lr_schedule {args.lr_schedule!r} is unknown: choose one of "
            f"{', '.join(LR_SCHEDULES)}"
        )
    check_seed("--seed", args.seed, TRAINING_SEED_LIMIT)
    check_seed("--data_seed", args.data_seed, TRAINING_SEED_LIMIT)
    if args.dev_size <= 0 or (args.dev_size >= 1 and args.dev_size != int(args.dev_size)):
        raise UsageError(
            f"--dev_size must be a count ≥ 1 or a fraction in (0, 1), got {args.dev_size}"
        )
    if args.task is not None:
        get_task(args.task)
    if args.schedule == "linear":
        check_step_size(args.num_steps, args.eval_step_size)
    if args.compile:  # the real thing at the smallest size, before the run folder is made
        device = pick_device(args.device)
        if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
            device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))  # this rank's GPU
        probe_compile(device)
    check_output_dir(args.output_dir, "--output_dir")
    out = Path(args.output_dir)
    local = Path(args.dataset) if Path(args.dataset).exists() else None
    check_outputs_apart(
        {f"--output_dir's {name}": out / name for name in ("best", "last", "train_log.jsonl")},
        {"--word_freq_file": args.word_freq_file, "--dataset": local, "--data_dir": args.data_dir},
    )
    if args.fitlog_dir:
        check_output_dir(args.fitlog_dir, "--fitlog_dir")
    if args.eval_gen_ppl_model and args.eval_samples and args.task is None:
        causal_path(args.eval_gen_ppl_model, "--eval_gen_ppl_model")  # offline, causal


# Flags that only a diffusion objective reads: refused with --objective ar.
DIFFUSION_ONLY = ("word_freq_lambda", "allow_nonmonotone_lambda", "word_freq_file", "num_steps",
                  "schedule", "timestep", "eval_step_size")  # fmt: skip


def refuse_ignored_flags(args: argparse.Namespace, argv: list[str] | None) -> None:
    """A flag that the other settings make main.py ignore is one line, not silence."""
    parser = build_parser()
    if args.objective == AUTOREGRESSIVE:
        parser.refuse_ignored(argv, DIFFUSION_ONLY, "--objective ar (diffusion settings)")
    if args.objective != "d3pm":
        parser.refuse_ignored(argv, ("hybrid_lambda", "per_sequence_t"),
                              f"--objective {args.objective} (d3pm only)")  # fmt: skip
    if args.task is None:
        parser.refuse_ignored(argv, ("max_target_length", "data_dir"), "no --task (seq2seq only)")
    if args.max_steps != -1:
        parser.refuse_ignored(argv, ("epochs",), "--max_steps (it sets the length of the run)")
    samples = ("eval_samples", "eval_sample_steps", "eval_gen_ppl_model")
    if args.task is not None:
        parser.refuse_ignored(argv, samples, "--task (a seq2seq run draws no samples at "
                              "evaluation)")  # fmt: skip
    elif args.eval_samples == 0:
        parser.refuse_ignored(argv, samples[1:], "--eval_samples 0 (no samples)")
    if args.objective == AUTOREGRESSIVE:
        parser.refuse_ignored(argv, ("eval_sample_steps",), "--objective ar (it samples left to "
                              "right)")  # fmt: skip
    if args.schedule != "linear" and args.objective != AUTOREGRESSIVE:
        because = f"--schedule {args.schedule} (the dev bound is continuous)"
        parser.refuse_ignored(argv, ("eval_step_size",), because)


def diffusion_config(args: argparse.Namespace) -> DiffusionConfig:
    if args.objective == AUTOREGRESSIVE:  # no diffusion: the defaults, no spindle, no time
        return DiffusionConfig(
            word_freq_lambda=0.0, objective=AUTOREGRESSIVE, max_length=args.max_length,
            task=args.task, max_target_length=args.max_target_length if args.task else 0,
        )  # fmt: skip
    config = DiffusionConfig(
        schedule=args.schedule,
        num_steps=args.num_steps,
        word_freq_lambda=args.word_freq_lambda,
        allow_nonmonotone_lambda=args.allow_nonmonotone_lambda,
        timestep=args.timestep,
        objective=args.objective,
        hybrid_lambda=args.hybrid_lambda,
        max_length=args.max_length,
        task=args.task,
        max_target_length=args.max_target_length if args.task else 0,
    )
    if args.objective == "mdlm":
        config.noise_schedule().require_continuous()
    return config


@exit_on_usage_error(flags={"step_size": "--eval_step_size"})
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    quiet_transformers()
    set_quiet(args.quiet)
    refuse_ignored_flags(args, argv)
    check_args(args)
    config = diffusion_config(args)
    rank0 = os.environ.get("RANK", "0") == "0"
    resume_dir, state = resume_state(args.resume_from, vars(args), args.output_dir, rank0)
    out = Path(args.output_dir)
    if rank0:
        run_lock = claim(out, resume_dir, overwrite=args.overwrite)
    elif existing_run(out) and state is None and not args.overwrite:
        raise UsageError(f"--output_dir {out} already holds a run")
    try:
        train(args, config, resume_dir, state, sys.argv[1:] if argv is None else argv)
    except OSError as error:
        # the checkpoints are written atomically (common.files); what is left is the log
        # appended by JsonlLog: a full disk or a size limit there is one line, not a traceback
        if error.errno not in ADVICE:
            raise
        raise write_error(Path(error.filename or out), error, kept=False) from None
    finally:
        if rank0:
            run_lock.release()


def train(
    args: argparse.Namespace, config: DiffusionConfig, resume_dir, state, argv: list[str]
) -> None:
    run = assemble(args, config, resume_dir, state)
    trainer, rank, out = run.trainer, run.rank, Path(args.output_dir)
    if rank == 0:
        print(run.describe())
        note = precision_note(args.bf16, run.device)
        if note and any(flag.startswith("--bf16") for flag in argv):  # asked, not the default
            print(f"note: {note}", file=sys.stderr)
        for warning in trainer.setting_warnings():
            print(f"warning: {warning}", file=sys.stderr)

    result = trainer.fit(run.dev_set, out, run.loggers, stop=StopRequests(announce=rank == 0))
    if result.signal is not None:
        if rank == 0:
            print(
                f"stopped by signal {result.signal} ({signal.Signals(result.signal).name}) at "
                f"step {result.steps} of {trainer.max_steps}; saved {out / 'last'}. "
                f"Resume with:\n  {resume_command(argv, out / 'last')}"
            )
        sys.exit(128 + result.signal)
    if rank == 0:
        trend = (
            f"; train {trainer.first_train:.4f} → {result.logged[-1]:.4f} nats/token"
            if result.logged and trainer.first_train is not None
            else ""
        )
        print(
            f"done: {result.steps} steps{trend}; best dev "
            f"{result.best:.4f} nats/token; checkpoints {out / 'last'} and {out / 'best'}, log "
            f"{out / 'train_log.jsonl'}"
        )
    teardown_distributed()


if __name__ == "__main__":
    try:
        main()
    except FloatingPointError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(3)
