"""The study's flags (``python3 -m experiments.ar_twin --help``). The budget (data, steps,
batch, learning rate, dev set) is the ablation's, read from its flags' defaults, so that the
diffusion side is the ablation's headline recipe exactly."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from common.cli import Parser
from common.errors import UsageError
from experiments.ablation.settings import parse_args as ablation_args
from experiments.ablation.settings import seed_list

RESULTS = Path("experiments/ar_twin/results")
PHASES = ("budget", "long", "frontier")


def build_parser() -> Parser:
    p = Parser(
        prog="python3 -m experiments.ar_twin",
        description="DiffusionBERT against its autoregressive twin (same backbone, data and "
        "budget): paired likelihoods, a long pair, samples and a quality-diversity frontier",
    )
    a = p.flag
    a("--output", default=str(RESULTS), help="records, comparisons, samples and the summary")
    a("--runs_dir", default="outputs/ar-twin", help="checkpoints of the study's own runs")
    a(
        "--diffusion_runs",
        default="outputs/ablation-recipes",
        help="the ablation grid's runs: its pretrained-spindle-none-seed<k> (the diffusion "
        "side at the grid's budget) are used where they are finished",
    )
    p.boolean(
        "--train_diffusion",
        help="train a missing diffusion run of the budget phase here (default: wait for the "
        "grid, which trains the same run)",
    )
    a("--seeds", default="1,2,3", help="training seeds of the budget phase (both models)")
    a("--phases", default=",".join(PHASES), help="which phases, in order: budget,long,frontier")
    a("--long_seed", type=int, default=1, help="training seed of the long pair")
    a("--long_steps", type=int, default=4800, help="optimizer steps of the long pair")
    a("--long_points", default="600,1200,2400,4800", help="steps at which the long pair is bounded")
    a("--save_steps", type=int, default=300, help="long pair: a step copy every N steps")
    a("--num_samples", type=int, default=64, help="samples per model and setting")
    a("--sample_steps", type=int, default=128, help="diffusion: T' of sampling")
    a("--topk", type=int, default=30, help="top-k of both models' samples (the ablation's)")
    a("--device", default="auto", help="auto, cpu, cuda")
    a(
        "--budget",
        default="",
        help='the ablation\'s budget flags, e.g. "--max_steps 1200 --dataset lm1b" (default: '
        "its defaults, so that the diffusion side is the grid's run)",
    )
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = build_parser()
    args = p.parse_args(argv)
    try:
        args.seed_list = seed_list(args.seeds)
        args.points = seed_list(args.long_points, "--long_points")
    except UsageError as error:
        p.error(str(error))
    phases = [phase for phase in args.phases.split(",") if phase]
    if not phases or set(phases) - set(PHASES):
        p.error(f"--phases {args.phases!r}: choose from {', '.join(PHASES)}")
    args.phase_list = phases
    if (
        args.long_steps < 1
        or args.save_steps < 1
        or any(
            point < 1 or point > args.long_steps or point % args.save_steps for point in args.points
        )
    ):
        p.error(
            f"--long_points {args.long_points}: each must be a multiple of --save_steps "
            f"{args.save_steps} and at most --long_steps {args.long_steps}"
        )
    args.budget = ablation_args(
        ["--runs_dir", args.diffusion_runs, "--device", args.device, *shlex.split(args.budget)]
    )
    return args
