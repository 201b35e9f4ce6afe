"""Train a DiffusionBERT denoiser (absorbing-state diffusion on a BERT masked LM).

python main.py --dataset toy --model_name_or_path minilm-l6 --word_freq_lambda 0.3 ...
python main.py --task toy ...   (seq2seq: [CLS] source target [SEP], only the target diffused)
torchrun --nproc_per_node N main.py ...   (DDP; one process works without torchrun)
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoTokenizer
from transformers.utils import logging as hf_logging

from conditional_data import get_task
from corpora.counting import length_histogram, load_counts
from diffusion import BASE_SCHEDULES, OBJECTIVES
from diffusion.elbo import check_step_size
from models import (
    TIMESTEPS,
    DiffusionConfig,
    UsageError,
    build_model,
    exit_on_usage_error,
    load_checkpoint,
    load_training_state,
    resolve_checkpoint_dir,
    resolve_model_name,
)
from models.checkpoint import check_lengths
from models.data import training_data
from models.fitlog_compat import import_fitlog
from models.trainer import Trainer, prune_checkpoints
from models.training import (
    LR_SCHEDULES,
    BatchPlan,
    JsonlLog,
    lr_scheduler,
    seed_everything,
    set_rng_state,
)
from word_freq import default_output

# Settings a resumed run must share with the run it continues.
RESUME_LOCKED = [
    "model_name_or_path",
    "dataset",
    "task",
    "data_dir",
    "max_target_length",
    "schedule",
    "num_steps",
    "word_freq_lambda",
    "timestep",
    "objective",
    "hybrid_lambda",
    "max_length",
    "seed",
    "batch_size",
    "accumulation_steps",
    "dev_size",
    "per_sequence_t",
    "from_scratch",
    "lr_schedule",
    "warmup_steps",
]


def boolean(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a = p.add_argument
    a(
        "--model_name_or_path",
        default="minilm-l6",
        help="minilm-l6, a folder or a hub name",
    )
    a(
        "--dataset",
        default="toy",
        help="toy, lm1b, a .txt/.jsonl file or a dataset folder",
    )
    a("--task", default=None, help="seq2seq task (toy, qqp, QT, wiki_alignment, CC)")
    a("--data_dir", default=None, help="seq2seq: the task's DiffuSeq folder")
    a("--max_target_length", type=int, default=64, help="seq2seq: target positions")
    a("--lr", type=float, default=5e-5)
    a("--epochs", type=int, default=3)
    a(
        "--max_steps",
        type=int,
        default=-1,
        help="optimizer steps; overrides --epochs if > 0",
    )
    a(
        "--batch_size",
        type=int,
        default=64,
        help="sequences per process per micro-batch",
    )
    a("--accumulation_steps", type=int, default=1)
    a("--word_freq_lambda", type=float, default=0.3, help="spindle λ; 0 = no spindle")
    a("--allow_nonmonotone_lambda", type=boolean, default=False)
    a(
        "--word_freq_file",
        default=None,
        help="from word_freq.py (default: its default path)",
    )
    a("--num_steps", type=int, default=2048, help="diffusion steps T")
    a("--schedule", default="mutual", choices=None, help=", ".join(BASE_SCHEDULES))
    a("--timestep", default="none", help=", ".join(TIMESTEPS))
    a("--objective", default="d3pm", help=", ".join(OBJECTIVES))
    a("--hybrid_lambda", type=float, default=1e-2)
    a("--per_sequence_t", type=boolean, default=False, help="d3pm: one t per sequence")
    a("--from_scratch", type=boolean, default=False)
    a("--max_length", type=int, default=128)
    a(
        "--dev_size",
        type=float,
        default=1000,
        help="held-out sequences (a fraction if < 1)",
    )
    a("--eval_steps", type=int, default=2000)
    a(
        "--eval_step_size",
        type=int,
        default=4,
        help="discrete dev bound (linear schedule)",
    )
    a("--eval_batch_size", type=int, default=64)
    a("--logging_steps", type=int, default=100)
    a("--save_steps", type=int, default=None, help="default: --eval_steps")
    a("--keep_last", type=int, default=0, help="also keep N step-numbered checkpoints")
    a("--lr_schedule", default="invsqrt", help=", ".join(LR_SCHEDULES))
    a("--warmup_steps", type=int, default=10000)
    a("--weight_decay", type=float, default=0.0)
    a("--max_grad_norm", type=float, default=0.0, help="0 = no clipping (reference)")
    a("--bf16", type=boolean, default=True, help="bf16 autocast on CUDA")
    a("--seed", type=int, default=42)
    a("--output_dir", default="outputs/run")
    a("--resume_from", default=None, help="<output_dir>/last of an earlier run")
    a("--fitlog_dir", default="logs", help="fitlog folder; '' disables fitlog")
    a("--device", default="auto", help="auto, cpu, cuda")
    return p.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    """Reject bad settings before anything expensive happens."""
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
    if args.lr <= 0:
        raise UsageError(f"--lr must be > 0, got {args.lr}")
    if args.dev_size <= 0 or (args.dev_size >= 1 and args.dev_size != int(args.dev_size)):
        raise UsageError(
            f"--dev_size must be a count ≥ 1 or a fraction in (0, 1), got {args.dev_size}"
        )
    if args.task is not None:
        get_task(args.task)
    if args.schedule == "linear":
        check_step_size(args.num_steps, args.eval_step_size)
    out = Path(args.output_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        message = f"--output_dir {out} is not writable ({error.strerror}); pass another"
        raise UsageError(message) from None


def setup_distributed(device_flag: str) -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    cuda = torch.cuda.is_available() if device_flag == "auto" else device_flag == "cuda"
    if cuda and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is visible; pass --device cpu")
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if world > 1:
        dist.init_process_group("nccl" if cuda else "gloo")
    return rank, world, device


@exit_on_usage_error
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    check_args(args)
    save_steps = args.save_steps or args.eval_steps
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
        config.noise_schedule().base_alpha_bar_derivative(torch.zeros(1))
    state = None
    if args.resume_from:
        resume_dir = resolve_checkpoint_dir(args.resume_from, "--resume_from")
        state = load_training_state(resume_dir)
        changed = {
            k: (state["args"].get(k), vars(args)[k])
            for k in RESUME_LOCKED
            if state["args"].get(k) != vars(args)[k]
        }
        if changed:
            listed = "; ".join(
                f"--{k} was {old!r}, now {new!r}" for k, (old, new) in changed.items()
            )
            raise UsageError(
                f"--resume_from {resume_dir}: settings differ from that run: {listed}. "
                "Resume with the original settings or start a new --output_dir"
            )
    backbone = resolve_model_name(args.model_name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    model_config = AutoConfig.from_pretrained(backbone)
    check_lengths(model_config, args.max_length, args.timestep)
    counts = None
    freq_file = args.word_freq_file or default_output(
        args.model_name_or_path, args.dataset, args.task
    )
    if args.word_freq_lambda > 0 or args.word_freq_file:
        counts = load_counts(freq_file, model_config.vocab_size)

    rank, world, device = setup_distributed(args.device)
    seed_everything(args.seed + rank)
    train_set, dev_set = training_data(
        tokenizer, args.dataset, args.task, args.data_dir, args.max_length,
        args.max_target_length, args.dev_size, args.seed,
    )  # fmt: skip
    plan = BatchPlan(len(train_set), args.batch_size, world, args.accumulation_steps, args.seed)
    max_steps = args.max_steps if args.max_steps > 0 else args.epochs * plan.steps_per_epoch

    if state is not None:
        model = load_checkpoint(resume_dir).model
    else:
        torch.manual_seed(args.seed)
        model = build_model(backbone, tokenizer, config, args.from_scratch)
    model.to(device)
    diffusion = config.diffusion(counts, tokenizer.mask_token_id, tokenizer.pad_token_id)
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=args.lr,
        weight_decay=args.weight_decay,
        fused=device.type == "cuda",
    )
    scheduler = lr_scheduler(optimizer, args.lr_schedule, args.warmup_steps)
    trainer = Trainer(
        model,
        diffusion,
        config,
        tokenizer,
        counts,
        length_histogram(train_set, args.max_length),
        optimizer,
        scheduler,
        train_set,
        plan,
        device,
        args.seed,
        args.bf16,
        args.per_sequence_t,
        args.max_grad_norm,
        rank,
        world,
    )
    out = Path(args.output_dir)
    log = JsonlLog(out / "train_log.jsonl", state["step"] if state else None) if rank == 0 else None
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"][rank])
        trainer.step, trainer.best = state["step"], state["best"]
        trainer.bad_steps, trainer.skipped_steps = (
            state["bad_steps"],
            state["skipped_steps"],
        )

    fitlog = None
    if rank == 0 and args.fitlog_dir:
        fitlog = import_fitlog()
        Path(args.fitlog_dir).mkdir(parents=True, exist_ok=True)
        fitlog.set_log_dir(args.fitlog_dir, new_log=True)
        fitlog.add_hyper({k: v for k, v in vars(args).items() if v is not None})
    if rank == 0:
        kind = f"{args.task} pairs" if args.task else "sequences"
        print(
            f"training {type(model.mlm).__name__} ({sum(p.numel() for p in model.parameters()):,}"
            f" parameters) on {len(train_set):,} {kind} ({len(dev_set):,} held out), "
            f"{max_steps} steps of {plan.global_batch} sequences, device {device}, "
            f"{world} process(es) → {out}"
        )

    stop = {"signal": None}

    def request_stop(signum, frame):
        stop["signal"] = signum

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    def save(name: str, with_state: bool) -> None:
        training_state = trainer.training_state(vars(args)) if with_state else None
        if rank == 0:
            trainer.save(out / name, training_state)

    window, logged, started = [], [], time.time()
    progress = tqdm(total=max_steps, initial=trainer.step, disable=rank != 0, desc="training")
    while trainer.step < max_steps:
        result = trainer.train_step()
        progress.update(1)
        if result is not None:
            window.append(result)
        step = trainer.step
        if step % args.logging_steps == 0 and window and rank == 0:
            record = {
                "step": step,
                "loss": sum(r["loss"] for r in window) / len(window),
                "loss_per_token": sum(r["loss_per_token"] for r in window) / len(window),
                "lr": window[-1]["lr"],
                "skipped_steps": trainer.skipped_steps,
                "elapsed_s": round(time.time() - started, 2),
            }
            log.write(record)
            logged.append(record["loss"])
            progress.set_postfix(loss=f"{record['loss']:.4f}")
            if fitlog:
                fitlog.add_loss(record["loss"], name="loss", step=step)
            window = []
        if step % args.eval_steps == 0 or step == max_steps:
            dev = trainer.evaluate(dev_set, args.eval_batch_size, args.eval_step_size)
            if rank == 0:
                log.write({"step": step, **{f"dev_{k}": v for k, v in dev.items()}})
                tqdm.write(
                    f"step {step}: dev {dev['nats_per_token']:.4f} nats/token "
                    f"(ppl {dev['ppl_per_token']:.2f}, {dev['bound']} bound)"
                )
                if fitlog:
                    fitlog.add_metric(
                        {
                            "dev": {
                                "nats_per_token": dev["nats_per_token"],
                                "ppl_per_token": dev["ppl_per_token"],
                            }
                        },
                        step=step,
                    )
            if trainer.best is None or dev["nats_per_token"] < trainer.best:
                trainer.best = dev["nats_per_token"]
                save("best", with_state=False)
                if fitlog:
                    fitlog.add_best_metric({"dev": {"nats_per_token": trainer.best, "step": step}})
        if step % save_steps == 0 or step == max_steps or stop["signal"] is not None:
            save("last", with_state=True)
            if args.keep_last > 0:
                save(f"checkpoint-{step}", with_state=True)
                if rank == 0:
                    prune_checkpoints(out, args.keep_last)
        if stop["signal"] is not None:
            if rank == 0:
                print(f"stopped by signal {stop['signal']} at step {step}; saved {out / 'last'}")
            sys.exit(128 + stop["signal"])
    progress.close()
    if fitlog:
        fitlog.finish()
    if rank == 0:
        trend = f"; logged loss {logged[0]:.4f} → {logged[-1]:.4f}" if logged else ""
        print(
            f"done: {trainer.step} steps{trend}; best dev {trainer.best:.4f} nats/token; "
            f"checkpoints {out / 'last'} and {out / 'best'}, log {out / 'train_log.jsonl'}"
        )
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    try:
        main()
    except FloatingPointError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(3)
