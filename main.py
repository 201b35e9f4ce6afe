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

import common.interrupt  # noqa: F401 (first: Ctrl-C while the imports load is one line)

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
from conditional_data import TASKS, get_task
from diffusion import BASE_SCHEDULES, check_step_size
from models import (
    TIMESTEPS,
    DiffusionConfig,
)
from models.config import AUTOREGRESSIVE, MODEL_OBJECTIVES
from training.assemble import assemble
from training.distributed import teardown_distributed
from training.optim import LR_SCHEDULES
from training.resume import resume_state
from training.run_dir import claim, existing_run
from training.stopping import StopRequests, resume_command


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def build_parser() -> Parser:
    p = Parser(description=__doc__)
    a = p.flag
    a(
        "--model_name_or_path",
        default="minilm-l6",
        help="the BERT to start from: minilm-l6 (embedded), a local folder or a hub name",
    )
    a("--dataset", default="toy", help="toy, wiki-summaries, lm1b, a .txt/.jsonl file or a folder")
    a(
        "--task",
        default=None,
        choices=choices(TASKS),
        help="seq2seq task (default: none, unconditional training)",
    )
    a("--data_dir", default=None, help="seq2seq: the task's DiffuSeq folder")
    a("--max_target_length", type=int, default=64, help="seq2seq: target positions")
    a("--lr", type=float, default=5e-5, help="peak learning rate (AdamW)")
    a("--epochs", type=int, default=3, help="passes over the training split (see --max_steps)")
    a("--max_steps", type=int, default=-1, help="optimizer steps; overrides --epochs if > 0")
    a("--batch_size", type=int, default=64, help="sequences per process per micro-batch")
    a(
        "--accumulation_steps",
        type=int,
        default=1,
        help="micro-batches per optimizer step (gradient accumulation)",
    )
    a("--word_freq_lambda", type=float, default=0.3, help="spindle λ; 0 = no spindle")
    p.boolean("--allow_nonmonotone_lambda", help="accept a λ for which ᾱ_t would increase in t")
    a(
        "--word_freq_file",
        default=None,
        help="token counts from word_freq.py (default: word_freq/<model>_<dataset>.pt)",
    )
    a("--num_steps", type=int, default=2048, help="diffusion steps T")
    a("--schedule", default="mutual", choices=choices(BASE_SCHEDULES), help="base noise schedule")
    a(
        "--timestep",
        default="none",
        choices=choices(TIMESTEPS),
        help="how the denoiser sees t: ignored, a time token, or per layer",
    )
    a(
        "--objective",
        default="d3pm",
        choices=choices(MODEL_OBJECTIVES),
        help="training loss: a diffusion loss, or ar (the autoregressive twin: the same "
        "backbone as a causal LM, next-token loss; docs/baselines.md)",
    )
    a(
        "--hybrid_lambda",
        type=float,
        default=1e-2,
        help="d3pm: weight of the auxiliary cross-entropy",
    )
    p.boolean("--per_sequence_t", help="d3pm: one t per sequence instead of per batch")
    p.boolean(
        "--group_by_length",
        help="batch sequences of similar length together: no padding computed, a faster "
        "step, but less varied batches (see docs/training.md before using it)",
    )
    p.boolean("--from_scratch", help="random weights with the model's config")
    a("--max_length", type=int, default=128, help="tokens per sequence, without [CLS]/[SEP]")
    a("--dev_size", type=float, default=1000, help="held-out sequences (a fraction if < 1)")
    a("--eval_steps", type=int, default=2000, help="dev bound every N optimizer steps")
    a(
        "--eval_step_size",
        type=int,
        default=4,
        help="discrete dev bound (linear schedule): every N-th t",
    )
    a("--eval_batch_size", type=int, default=64, help="sequences per dev batch")
    a("--logging_steps", type=int, default=100, help="a log record every N steps")
    a(
        "--save_steps",
        type=int,
        default=None,
        help="save last/ every N steps (default: --eval_steps)",
    )
    a("--keep_last", type=int, default=0, help="also keep N step-numbered checkpoints")
    a(
        "--lr_schedule",
        default="invsqrt",
        choices=choices(LR_SCHEDULES),
        help="learning-rate schedule after warm-up",
    )
    a("--warmup_steps", type=int, default=10000, help="linear warm-up steps")
    a("--weight_decay", type=float, default=0.0, help="AdamW weight decay")
    a("--max_grad_norm", type=float, default=0.0, help="0 = no clipping (reference)")
    p.boolean(
        "--bf16",
        default=True,
        help="bf16 autocast where the device computes bf16 natively (CUDA, CPUs with "
        "AVX512-BF16/AMX); fp32 elsewhere",
    )
    p.boolean(
        "--compile",
        help="torch.compile the encoder: a faster step once compiled (the first steps and dev "
        "evaluations wait for the compiler; docs/performance.md); needs a C++ compiler",
    )
    a("--seed", type=int, default=42, help="seeds the weights, data order and noise")
    a(
        "--data_seed",
        type=int,
        default=42,
        help="draws the held-out dev set and the dev bound's noise, apart from --seed: runs "
        "with other training seeds are scored on the same sentences",
    )
    a("--output_dir", default="outputs/run", help="where best/, last/ and train_log.jsonl go")
    a(
        "--cache_dir",
        default=None,
        help="token-id cache (default: $DIFFUSIONBERT_CACHE or ~/.cache/diffusionbert)",
    )
    a(
        "--resume_from",
        default=None,
        help="<output_dir>/last of an earlier run, or auto: the latest intact checkpoint of "
        "--output_dir (a fresh start when it has none)",
    )
    p.boolean("--overwrite", help="replace the run already in --output_dir")
    a("--fitlog_dir", default="logs", help="fitlog folder; '' disables fitlog")
    a("--device", default="auto", help="auto (CUDA when visible), cpu, cuda or cuda:N")
    p.quiet()
    return p


# Upper bounds that catch a typo before it allocates or runs for ages.
MAX_COUNT = 10**9
MAX_BATCH = 2**20
MAX_DIFFUSION_STEPS = 10**6


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
    for name in ("batch_size", "eval_batch_size", "accumulation_steps"):
        check_number(f"--{name}", getattr(args, name), 1, MAX_BATCH)
    for name in ("epochs", "logging_steps", "eval_steps", "eval_step_size"):
        check_number(f"--{name}", getattr(args, name), 1, MAX_COUNT)
    check_number("--num_steps", args.num_steps, 1, MAX_DIFFUSION_STEPS, note="diffusion steps T")
    check_number("--save_steps", args.save_steps, 1, MAX_COUNT, note="omit it for --eval_steps")
    check_number("--warmup_steps", args.warmup_steps, 0, MAX_COUNT)
    check_number("--keep_last", args.keep_last, 0, MAX_COUNT, note="0 = no step copies")
    if args.max_steps != -1:
        check_number("--max_steps", args.max_steps, 1, MAX_COUNT, note="-1 = use --epochs")
    if args.task is not None and args.max_target_length >= 2:  # < 2: the seq2seq set-up says
        check_number("--max_target_length", args.max_target_length, 2, 2**20)
    if args.lr_schedule not in LR_SCHEDULES:
        raise UsageError(
            f"--lr_schedule {args.lr_schedule!r} is unknown: choose one of "
            f"{', '.join(LR_SCHEDULES)}"
        )
    check_number("--lr", args.lr, 0, 1, low_open=True)
    check_number("--word_freq_lambda", args.word_freq_lambda, 0, 1, note="0 = no spindle")
    check_number("--hybrid_lambda", args.hybrid_lambda, 0, 1e6)
    check_number("--weight_decay", args.weight_decay, 0, 1e6)
    check_number("--max_grad_norm", args.max_grad_norm, 0, 1e12, note="0 = no clipping")
    check_seed("--seed", args.seed, TRAINING_SEED_LIMIT)
    check_seed("--data_seed", args.data_seed, TRAINING_SEED_LIMIT)
    check_number("--dev_size", args.dev_size, 0, MAX_COUNT, low_open=True)
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
    resume_dir, state = resume_state(args.resume_from, vars(args), args.output_dir)
    rank0 = os.environ.get("RANK", "0") == "0"
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
            f"; logged loss {result.logged[0]:.4f} → {result.logged[-1]:.4f}"
            if result.logged
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
