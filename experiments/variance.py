"""Monte Carlo error of the likelihood bounds against the network calls they cost.

python3 -m experiments.variance --checkpoint A [--pair B] [flags]

For one checkpoint, on the first --sentences sentences of the split: each estimator of the
continuous bound (--estimators) at each --draws K (K + 1 network calls per sentence, K for
rao_blackwell, plus the importance pilot's share; or --calls C: each estimator with the draws
that cost C calls) is run with --replicates seeds; a sentence's Monte
Carlo standard error is the standard deviation of its estimate over the seeds, reported as the
root mean square over sentences. With --pair B: A and B bounded with one seed (common random
numbers; importance reuses A's proposal for B), the half-width of the paired 95% interval of
A − B per word for each estimator and K, and for the --discrete_steps-term discrete bound;
with --pair_seeds S ≥ 2 each of them is repeated with S seeds, and its paired s.e.² is split
into the part that no number of draws removes (the spread over sentences of the exact bound's
difference, floor_se) and the Monte Carlo part of one seed's estimate (mc_se).
One JSON line per configuration in experiments/results/variance.jsonl (or --results).
"""

from __future__ import annotations

import argparse
import json
import math
from datetime import UTC, datetime
from pathlib import Path

import common.stored_help  # noqa: F401 (first: a bare --help prints without loading torch)

# isort: split
import torch

from common.cli import Parser
from common.errors import UsageError, exit_on_usage_error
from common.machine import describe_machine
from common.progress import set_quiet
from common.runtime import pick_device, quiet_transformers
from corpora import load_texts, tokenize_texts
from diffusion import ESTIMATORS, TimeProposal
from diffusion.estimators import network_calls
from evaluation.compare import paired
from evaluation.likelihood import likelihood_record
from evaluation.stats import ratio_se
from models import load_checkpoint

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def build_parser() -> Parser:
    p = Parser(prog="python3 -m experiments.variance", description=__doc__)
    a = p.flag
    a("--checkpoint", required=True, help="a main.py checkpoint folder (A)")
    a("--pair", default=None, help="a second checkpoint (B): paired intervals of A − B")
    a("--dataset", default="wiki-summaries", help="any --dataset of compute_elbo.py")
    a("--split", default="test", help="the split whose first sentences are bounded")
    a("--sentences", type=int, default=64, help="sentences of the Monte Carlo error part")
    a("--pair_sentences", type=int, default=128, help="sentences of the paired part")
    a("--draws", default="3,11", help="comma-separated K: draws per sentence")
    a("--calls", default=None, help="comma-separated network calls per sentence: each "
      "estimator at the draws that cost that many (instead of --draws)")  # fmt: skip
    a("--replicates", type=int, default=8, help="seeds per configuration (error part)")
    a("--pair_seeds", type=int, default=1, help="pair part: seeds per setting; 2 or more "
      "split the paired s.e. into its sentence floor and its Monte Carlo part")  # fmt: skip
    a("--discrete_steps", type=int, default=128, help="terms of the discrete bound (T/S)")
    a("--estimators", default=",".join(ESTIMATORS), help="which estimators")
    p.boolean("--discrete", default=True, help="pair part: also the discrete bound")
    p.boolean("--error_part", default=True, help="the Monte Carlo error part")
    a("--batch_size", type=int, default=32, help="sequences per network call")
    a("--device", default="cpu", help="cpu, cuda or auto")
    a(
        "--results",
        default="experiments/results/variance.jsonl",
        help="JSON lines file, in the repository unless absolute",
    )
    return p


def bound(ckpt, data, args, kind, seed, estimator="plain", draws=1, proposal=None) -> dict:
    """compute_elbo.py's record for ``data`` (ids and word counts) under one setting."""
    T = ckpt.config.num_steps
    step = max(1, T // args.discrete_steps)
    return likelihood_record(
        ckpt, data["input_ids"], data["num_words"], kind, step, draws, "exact",
        args.batch_size, seed, args.device, estimator=estimator, proposal=proposal,
    )  # fmt: skip


def per_sentence(network_calls: int, n: int, args) -> float:
    """Times a sentence passes through the network: the calls of a record over its batches."""
    return network_calls / math.ceil(n / args.batch_size)


def draw_counts(args, estimator: str) -> list[int]:
    """The K of ``estimator``: --draws, or with --calls the K that cost each many calls."""
    flag, text = ("--draws", args.draws) if args.calls is None else ("--calls", args.calls)
    items = text.split(",")
    if not all(item.isdigit() for item in items):
        raise UsageError(f"{flag} {text!r}: pass positive integers separated by commas, e.g. 5,11")
    extra = 0 if args.calls is None else network_calls(estimator, 0)
    draws = [int(item) - extra for item in items]
    if min(draws) < 1:
        raise UsageError(f"{flag} {text!r}: {estimator} needs at least {extra + 1} calls "
                         "(one draw)")  # fmt: skip
    return draws


def error_part(ckpt, data, args) -> list[dict]:
    """Per-sentence Monte Carlo s.e. of each estimator and K, over ``replicates`` seeds."""
    rows = []
    for estimator in args.estimators.split(","):
        for draws in draw_counts(args, estimator):
            runs = [
                bound(ckpt, data, args, "continuous", seed, estimator, draws)
                for seed in range(args.replicates)
            ]
            nats = torch.tensor([r["sentences"]["nats"] for r in runs], dtype=torch.float64)
            tokens = sum(runs[0]["sentences"]["tokens"])
            variance = nats.var(0)
            n = nats.shape[1]
            rows.append({
                "part": "mc_error", "estimator": estimator, "draws": draws,
                "calls_per_sentence": per_sentence(runs[0]["network_calls"], n, args),
                "mc_se_per_sentence_rms": variance.mean().sqrt().item(),
                "mc_se_of_mean_nats_per_token": variance.sum().sqrt().item() / tokens,
                "nats_per_token": nats.sum(1).mean().item() / tokens,
                "sentences": n, "replicates": args.replicates,
            })  # fmt: skip
            print(json.dumps(rows[-1]))
    return rows


def pair_part(a, b, data, args) -> list[dict]:
    """Half-width of the paired 95% interval of A − B per word, per estimator, K and the
    discrete bound, one seed, with the network calls each cost (per sentence)."""
    n = len(data["input_ids"])
    rows = []
    settings = [("discrete", "plain", 1)] if args.discrete else []
    settings += [
        ("continuous", e, k) for e in args.estimators.split(",") for k in draw_counts(args, e)
    ]
    for kind, estimator, draws in settings:
        differences = []
        for seed in range(args.pair_seeds):
            first = bound(a, data, args, kind, seed, estimator, draws)
            proposal = first["noise"]["proposal"]
            proposal = TimeProposal.from_dict(proposal) if proposal else None
            second = bound(b, data, args, kind, seed, estimator, draws, proposal)
            differences.append(sentence_differences(first, second))
            if seed == 0:
                figures, calls = paired(first, second)["per_word"], first["network_calls"]
        units = torch.tensor(first["sentences"]["words"], dtype=torch.float64)
        rows.append({
            "part": "pair", "bound": kind, "estimator": estimator if kind == "continuous"
            else None, "draws": draws,
            "calls_per_sentence": per_sentence(calls, n, args),
            "difference_per_word": figures["difference"],
            "paired_half_width_95": (figures["interval"][1] - figures["interval"][0]) / 2,
            "paired_se": figures["paired_se"], "unpaired_se": figures["unpaired_se"],
            "unpaired_over_paired": figures["unpaired_over_paired"], "sentences": n,
            **({} if args.pair_seeds < 2 else floor_and_noise(differences, units)),
        })  # fmt: skip
        print(json.dumps(rows[-1]))
    return rows


def sentence_differences(first: dict, second: dict) -> torch.Tensor:
    """(n,) float64 nats of A − B per sentence, in A's sentence order (matched by id)."""
    order = {sid: i for i, sid in enumerate(second["sentences"]["id"])}
    index = torch.tensor([order[sid] for sid in first["sentences"]["id"]])
    a = torch.tensor(first["sentences"]["nats"], dtype=torch.float64)
    return a - torch.tensor(second["sentences"]["nats"], dtype=torch.float64)[index]


def floor_and_noise(differences: list[torch.Tensor], units: torch.Tensor) -> dict:
    """The paired s.e. (nats/word) of one seed's per-word difference split in two, from S ≥ 2
    seeds' (n,) per-sentence differences d_s on sentences of ``units`` (n,) words. One seed's
    variance is the ratio estimator's, ``ratio_se(d_s, units)²``, averaged over the seeds; its
    Monte Carlo part is n · σ² / W², σ² the mean over sentences of a sentence's variance over
    seeds and W the words in all; what is left is the floor, the spread of the exact bound's
    difference that no number of draws lowers."""
    d = torch.stack(differences)
    n, total = d.shape[1], float(units.sum())
    units_list = units.tolist()
    one_seed = sum(ratio_se(row.tolist(), units_list) ** 2 for row in d) / d.shape[0]
    noise = n * d.var(0).mean().item() / total**2
    floor = max(0.0, one_seed - noise)
    return {"pair_seeds": d.shape[0], "floor_se": math.sqrt(floor), "mc_se": math.sqrt(noise)}


def load_data(ckpt, args, count: int):
    data = tokenize_texts(
        load_texts(args.dataset, args.split), ckpt.tokenizer, ckpt.config.max_length,
        args.dataset, count_words=True,
    )  # fmt: skip
    return data.select(range(min(count, len(data))))[:]


@exit_on_usage_error
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    quiet_transformers()
    set_quiet(True)
    if args.pair_seeds < 1:
        raise UsageError(f"--pair_seeds {args.pair_seeds}: pass 1 or more (2 to split the "
                         "paired s.e. into its floor and its Monte Carlo part)")  # fmt: skip
    args.device = pick_device(args.device)
    a = load_checkpoint(args.checkpoint, args.device)
    rows = [] if not args.error_part else error_part(a, load_data(a, args, args.sentences), args)
    if args.pair:
        b = load_checkpoint(args.pair, args.device)
        rows += pair_part(a, b, load_data(a, args, args.pair_sentences), args)
    stamp = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{describe_machine()}, {torch.get_num_threads()} threads",
        "device": str(args.device), "checkpoint": args.checkpoint,
        "pair": args.pair, "dataset": args.dataset, "split": args.split,
    }  # fmt: skip
    path = REPO / args.results
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps({**stamp, **row}) + "\n")
    print(f"appended {len(rows)} lines to {path}")


if __name__ == "__main__":
    main()
