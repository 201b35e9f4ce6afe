"""The grid's flags (``python3 -m experiments.ablation --help``): one Parser, and the seed
lists read from them."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from common.cli import Parser
from common.errors import UsageError

RESULTS = Path("experiments/ablation/results")


def build_parser() -> Parser:
    p = Parser(prog="python3 -m experiments.ablation", description=__doc__.splitlines()[0])
    a = p.flag
    a("--model_name_or_path", default="minilm-l6", help="the backbone of every row")
    a("--dataset", default="wiki-summaries", help="any --dataset of main.py")
    a("--output", default=str(RESULTS), help="results, runs and pictures")
    a("--runs_dir", default="outputs/ablation-recipes", help="checkpoints of every run")
    a("--rows", default="", help="comma-separated row names (default: the whole grid)")
    a("--seeds", default="1,2,3", help="training seeds of every row of the paper's Table 2")
    a(
        "--headline_seeds",
        default="1,2,3,4,5",
        help="training seeds of the headline pair (the rows beyond the paper: the first of "
        "--seeds); 5 gave its recipe-level interval the half-width of 0.04 nats/word it "
        "needed (planned 8, revised at 5: docs/results.md)",
    )
    a(
        "--data_seed",
        type=int,
        default=42,
        help="main.py --data_seed: one dev set for every training seed",
    )
    a("--max_steps", type=int, default=600, help="optimizer steps of every run")
    a("--eval_steps", type=int, default=50, help="dev bound every N steps")
    a("--dev_size", type=int, default=256, help="training sentences held out for the dev bound")
    a("--batch_size", type=int, default=32, help="sequences per step")
    a("--max_length", type=int, default=32, help="tokens per sequence")
    a("--lr", type=float, default=3e-4, help="one learning rate for every row")
    a("--warmup_steps", type=int, default=50, help="linear warm-up, then constant")
    a("--word_freq_lambda", type=float, default=0.3, help="λ of the spindle rows")
    a("--num_steps", type=int, default=2048, help="training T")
    a("--eval_step_size", type=int, default=16, help="S of the discrete bound (T/S terms)")
    a("--mc_samples", type=int, default=4, help="draws per sequence, continuous bound")
    a("--estimator", default="conditioned", help="continuous bound's estimator (compute_elbo.py)")
    a(
        "--eval_examples",
        type=int,
        default=0,
        help="test sentences, continuous bound (0: the whole split)",
    )
    a("--discrete_examples", type=int, default=128, help="test sentences, discrete bound")
    p.boolean(
        "--group_by_length",
        help="main.py --group_by_length (batches of one length: faster, less varied)",
    )
    a(
        "--checkpoint_figures",
        default="first",
        choices=["first", "all"],
        help="which seeds of a row get the discrete bound (128 terms) and the samples: they "
        "feed only the checkpoint-level table and BLEU, and cost half a run each",
    )
    a("--num_samples", type=int, default=64, help="samples per run (top-k 30)")
    a("--sample_steps", type=int, default=128, help="T' of sampling")
    a("--table3_steps", default="16,32,64,128", help="ELBO steps T/S for the Table 3 analogue")
    a("--device", default="auto", help="auto, cpu, cuda")
    p.boolean(
        "--bf16",
        help="main.py --bf16: off by default, so that a grid continued on another machine "
        "computes in the precision of its finished runs (fp32 runs everywhere; a results "
        "file that already holds runs of another precision is refused)",
    )
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = build_parser()
    args = p.parse_args(argv)
    try:
        args.seeds = ",".join(str(seed) for seed in seed_list(args.seeds))
        args.headline_seeds = ",".join(
            str(seed) for seed in seed_list(args.headline_seeds, "--headline_seeds")
        )
    except UsageError as error:
        p.error(str(error))
    return args


def seed_list(text: str, flag: str = "--seeds") -> list[int]:
    """``flag``'s value as distinct integers ≥ 0 in the order given; anything else is one
    UsageError."""
    items = [item.strip() for item in text.split(",")]
    if not all(re.fullmatch("[0-9]+", item) for item in items) or len(set(map(int, items))) != len(
        items
    ):
        raise UsageError(
            f"{flag} {text!r}: pass distinct integers ≥ 0 (digits 0-9) separated by commas, "
            f"e.g. {flag} 1,2,3"
        )
    return [int(item) for item in items]
