"""Padding the network computes, and what batching by length saves (bench.py --mode padding).

python3 -m bench.bench --mode padding [--datasets wiki-summaries,toy] [--time_steps 12]

For each dataset, at the ablation grid's settings (minilm-l6's tokenizer, --max_length 32,
--batch_size 32, 256 dev sentences held out with seed 1), walks the first --steps optimizer
steps of main.py's batch plan with and without --group_by_length and reports the padding
fraction: 1 − real tokens / tokens computed (rows × the longest row of each micro-batch).
With --time_steps N > 0 it then times N d3pm training steps of minilm-l6 on each plan's
batches, taking turns step by step (a drift in the machine's speed hits both alike), and
reports real (non-padding) tokens per second and their ratio. One JSON line per dataset is
appended to bench/results/padding.jsonl (or --results).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

import common.stored_help  # noqa: F401 (first: a bare --help prints without loading torch)

# isort: split
import numpy as np
import torch

from bench.harness import RESULTS, append_results
from common.cli import Parser
from diffusion import d3pm_loss
from models import DiffusionConfig, build_model, resolve_model_name
from training.batches import BatchPlan
from training.data import fetch, row_lengths, training_data


def build_parser() -> Parser:
    p = Parser(prog="python3 -m bench.padding", description=__doc__)
    a = p.flag
    a("--datasets", default="wiki-summaries,toy", help="comma-separated --dataset values")
    a("--max_length", type=int, default=32, help="tokens per sequence")
    a("--batch_size", type=int, default=32, help="sequences per step")
    a("--steps", type=int, default=600, help="optimizer steps walked (the grid's budget)")
    a("--time_steps", type=int, default=12, help="timed training steps per plan (0: none)")
    a("--seed", type=int, default=1, help="the runs' --seed")
    a("--results", default=None, help="JSON lines file (default bench/results/padding.jsonl)")
    return p


def padding(plan: BatchPlan, lengths: np.ndarray, steps: int) -> dict:
    """Real and computed tokens of the plan's first ``steps`` steps (one process)."""
    real = computed = 0
    for step in range(steps):
        rows = np.asarray(plan.indices(step, 0, 0))
        real += int(lengths[rows].sum())
        computed += int(lengths[rows].max()) * len(rows)
    return {"real_tokens": real, "computed_tokens": computed, "padding": 1 - real / computed}


def timed(plans: dict[str, BatchPlan], train, tokenizer, args) -> dict[str, float]:
    """Real tokens per second of d3pm training steps on each plan's batches, in turns."""
    config = DiffusionConfig(num_steps=2048, max_length=args.max_length, word_freq_lambda=0.3)
    torch.manual_seed(0)
    model = build_model(resolve_model_name("minilm-l6"), tokenizer, config, False).train()
    counts = torch.ones(len(tokenizer), dtype=torch.long)
    diffusion = config.diffusion(counts, tokenizer.mask_token_id, tokenizer.pad_token_id)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    generator = torch.Generator().manual_seed(0)
    seconds = {name: [] for name in plans}
    tokens = {name: 0 for name in plans}
    for step in range(args.time_steps + 1):  # the first round warms up
        for name, plan in plans.items():
            x0, target = fetch(train, plan.indices(step, 0, 0), tokenizer.pad_token_id)
            tick = time.perf_counter()
            d3pm_loss(diffusion, model, x0, target, generator=generator).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if step:
                seconds[name].append(time.perf_counter() - tick)
                tokens[name] += int(target.sum())
    return {name: tokens[name] / sum(seconds[name]) for name in plans} | {
        f"{name}_median_step_s": statistics.median(seconds[name]) for name in plans
    }


def measure(dataset: str, args) -> dict:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_name("minilm-l6"))
    train, _ = training_data(tokenizer, dataset, None, None, args.max_length, 64, 256, args.seed)
    lengths = row_lengths(train)
    plans = {
        "ungrouped": BatchPlan(len(train), args.batch_size, 1, 1, args.seed),
        "grouped": BatchPlan(len(train), args.batch_size, 1, 1, args.seed, lengths=lengths),
    }
    steps = min(args.steps, plans["grouped"].steps_per_epoch)
    row = {
        "dataset": dataset,
        "examples": len(train),
        "mean_length": float(lengths.mean()),
        "steps": steps,
    }
    for name, plan in plans.items():
        row[name] = padding(plan, lengths, steps)
    if args.time_steps > 0:
        speed = timed(plans, train, tokenizer, args)
        row["real_tokens_per_s"] = {name: speed[name] for name in plans}
        row["median_step_s"] = {name: speed[f"{name}_median_step_s"] for name in plans}
        row["speedup"] = speed["grouped"] / speed["ungrouped"]
    return row


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)
    results = Path(args.results) if args.results else RESULTS / "padding.jsonl"
    for dataset in args.datasets.split(","):
        row = measure(dataset, args)
        settings = {k: v for k, v in vars(args).items() if k != "results"}
        command = ["bench.bench", "--mode", "padding", *(argv or [])]
        append_results(results, [row], command, settings=settings)
        print(json.dumps(row))


if __name__ == "__main__":
    main()
