"""Likelihood bounds and perplexity of a checkpoint on a dataset split (the exact NLL for an
autoregressive checkpoint, main.py --objective ar).

python compute_elbo.py --checkpoint outputs/demo/best --dataset toy --split test
"""

from __future__ import annotations

import argparse
from pathlib import Path

import common.stored_help  # noqa: F401 (first: a bare --help prints without loading torch)

# isort: split
from common.checks import (
    check_number,
    check_output_file,
    check_outputs_apart,
    check_seed,
    require_finite,
)
from common.cli import Parser, choices
from common.errors import UsageError, exit_on_usage_error
from common.files import write_json
from common.precision import announced_precision, autocast
from common.progress import set_quiet
from common.runtime import pick_device, quiet_transformers
from corpora import load_texts, tokenize_texts
from diffusion import ESTIMATORS, PROTOCOLS, check_step_size, estimator_help
from evaluation.bounds import BOUNDS
from evaluation.exact import exact_record
from evaluation.likelihood import check_estimator_fits, likelihood_record
from evaluation.records import read_proposal
from evaluation.report import likelihood_table
from models import DiffusionConfig, checkpoint_inputs, load_checkpoint
from models.folder_checks import SETTINGS

# Flags that only a diffusion checkpoint's bound reads: refused for an autoregressive one.
BOUND_ONLY = ("bound", "eval_step_size", "mc_samples", "estimator", "proposal", "protocol", "seed")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def build_parser() -> Parser:
    p = Parser(description=__doc__)
    a = p.flag
    a("--checkpoint", required=True, help="a folder written by main.py (best/ or last/)")
    a("--dataset", default="toy", help="toy, wiki-summaries, lm1b, a .txt/.jsonl file or folder")
    a("--split", default="test", help="the dataset split to bound")
    a(
        "--bound",
        default="discrete",
        choices=choices(BOUNDS),
        help="discrete: the T-step bound; continuous: the T → ∞ bound, Monte Carlo in t",
    )
    a(
        "--eval_step_size",
        type=int,
        default=None,
        help="discrete bound: every N-th t (default: T / 128)",
    )
    a("--mc_samples", type=int, default=8, help="continuous bound: draws per sequence")
    a(
        "--estimator",
        default="conditioned",
        choices=choices(ESTIMATORS),
        help=f"continuous bound: {estimator_help()}; all unbiased",
    )
    a(
        "--proposal",
        default=None,
        help="importance: reuse the time proposal stored in this compute_elbo.py --json file "
        "(default: fit one on a pilot of 32 sentences)",
    )
    a(
        "--protocol",
        default="exact",
        choices=choices(PROTOCOLS),
        help="exact, or official: the reference code's figure (not a bound)",
    )
    a("--max_examples", type=int, default=None, help="first N sequences (default: all)")
    a("--batch_size", type=int, default=32, help="sequences per network call")
    a(
        "--seed",
        type=int,
        default=0,
        help="seeds the noise draws, keyed by sentence: two checkpoints bounded with one seed "
        "share their noise (compare them with python3 -m evaluation.compare)",
    )
    a("--device", default="auto", help="auto (CUDA when visible), cpu, cuda or cuda:N")
    p.boolean(
        "--bf16",
        help="bf16 autocast where the device computes bf16 natively (CUDA, CPUs with "
        "AVX512-BF16/AMX); the record's 'precision' says what ran",
    )
    a(
        "--json",
        default=None,
        help="also write the figures, with nats per t bucket and per sentence, to this file "
        "(default: none)",
    )
    p.quiet()
    return p


@exit_on_usage_error(flags={"step_size": "--eval_step_size"})
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    quiet_transformers()
    set_quiet(args.quiet)
    if args.bound not in BOUNDS:
        raise UsageError(f"--bound {args.bound!r} is unknown: choose one of {', '.join(BOUNDS)}")
    if args.protocol not in PROTOCOLS:
        raise UsageError(f"--protocol {args.protocol!r} is unknown: choose exact or official")
    for name in ("mc_samples", "batch_size", "max_examples"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise UsageError(f"--{name} must be ≥ 1, got {getattr(args, name)}")
    check_number("--mc_samples", args.mc_samples, 1, 10**5)
    check_number("--batch_size", args.batch_size, 1, 2**16)
    check_number("--max_examples", args.max_examples, 1, 10**9)
    check_number("--eval_step_size", args.eval_step_size, 1, 10**7)
    check_seed("--seed", args.seed)
    if args.json:
        check_output_file(args.json, "--json")
        local = Path(args.dataset) if Path(args.dataset).exists() else None
        check_outputs_apart(
            {"--json": args.json},
            {**checkpoint_inputs(args.checkpoint), "--proposal": args.proposal, "--dataset": local},
        )
    ignored = {"discrete": ("estimator", "mc_samples", "proposal"),
               "continuous": ("eval_step_size",)}  # fmt: skip
    build_parser().refuse_ignored(argv, ignored[args.bound], f"--bound {args.bound}")
    if args.proposal and not ESTIMATORS[args.estimator].uses_proposal:
        users = " or ".join(name for name, cls in ESTIMATORS.items() if cls.uses_proposal)
        raise UsageError(f"--proposal is used by --estimator {users} only: add it or drop it")
    settings = Path(args.checkpoint) / SETTINGS
    config = DiffusionConfig.load(settings) if settings.is_file() else None
    if config is not None and config.autoregressive:
        build_parser().refuse_ignored(argv, BOUND_ONLY, f"{args.checkpoint} (autoregressive: "
                                      "its NLL is exact, no bound is drawn)")  # fmt: skip
    elif config is not None:  # the estimator against the checkpoint's schedule, before it loads
        check_estimator_fits(
            config, args.estimator if args.bound == "continuous"
            else "plain", args.protocol, args.checkpoint,
        )  # fmt: skip
    proposal = read_proposal(args.proposal, "--proposal") if args.proposal else None
    device = pick_device(args.device)
    ckpt = load_checkpoint(args.checkpoint, device)
    precision = announced_precision(args.bf16, device)
    if ckpt.config.task is not None:
        raise UsageError(
            f"--checkpoint {ckpt.path} is a seq2seq model (task {ckpt.config.task}): "
            "compute_elbo.py bounds unconditional models only; score it with "
            "predict_downstream_condition.py"
        )
    data = tokenize_texts(
        load_texts(args.dataset, args.split),
        ckpt.tokenizer,
        ckpt.config.max_length,
        args.dataset,
        count_words=True,
    )
    if args.max_examples:
        data = data.select(range(min(args.max_examples, len(data))))
    if ckpt.config.autoregressive:
        with autocast(precision, device):
            record = exact_record(
                ckpt.model, data["input_ids"], data["num_words"], ckpt.tokenizer.pad_token_id,
                args.batch_size, device, str(ckpt.path),
            )  # fmt: skip
    else:
        record = bound_record(args, ckpt, data, precision, proposal, device)
    record = {"checkpoint": record["checkpoint"], "dataset": args.dataset, "split": args.split,
              "precision": precision, **record}  # fmt: skip
    record["checkpoint"] = str(Path(record["checkpoint"]).resolve())  # whatever the cwd
    require_finite(record, "the bound", "a non-finite input or an overflow; nothing is valid")
    print(likelihood_table(record))
    if args.json:
        write_json(args.json, record)
        print(f"wrote {args.json}")


def bound_record(args, ckpt, data, precision: str, proposal, device) -> dict:
    """The diffusion checkpoint's bounds (``evaluation.likelihood.likelihood_record``)."""
    T = ckpt.config.num_steps
    step = args.eval_step_size or max(1, T // 128)
    if args.bound == "discrete":
        check_step_size(T, step)
    else:
        ckpt.config.noise_schedule().require_continuous()
    with autocast(precision, device):
        return likelihood_record(
            ckpt, data["input_ids"], data["num_words"], args.bound, step, args.mc_samples,
            args.protocol, args.batch_size, args.seed, device, toy_truth=args.dataset == "toy",
            estimator=args.estimator, proposal=proposal,
        )  # fmt: skip


if __name__ == "__main__":
    main()
