"""Likelihood bounds and perplexity of a checkpoint on a dataset split.

python compute_elbo.py --checkpoint outputs/demo/best --dataset toy --split test
"""

from __future__ import annotations

import argparse
import math

import torch

from corpora import load_texts, tokenize_texts, toy
from diffusion import PROTOCOLS
from diffusion.elbo import check_step_size
from models import UsageError, exit_on_usage_error, load_checkpoint, write_json
from models.evaluation import BOUNDS, length_nll, sequence_bounds, summarise
from models.report import likelihood_table
from models.runtime import pick_device, quiet_transformers
from models.training import collate


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, help="a folder written by main.py")
    p.add_argument("--dataset", default="toy", help="toy, lm1b, a .txt/.jsonl file or folder")
    p.add_argument("--split", default="test")
    p.add_argument("--bound", default="discrete", help=", ".join(BOUNDS))
    p.add_argument("--eval_step_size", type=int, default=None, help="default: T / 128")
    p.add_argument("--mc_samples", type=int, default=8, help="continuous bound: draws per sequence")
    p.add_argument("--protocol", default="exact", help=", ".join(PROTOCOLS))
    p.add_argument("--max_examples", type=int, default=None)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.add_argument("--json", default=None, help="also write the figures to this file")
    return p.parse_args(argv)


@exit_on_usage_error
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    quiet_transformers()
    if args.bound not in BOUNDS:
        raise UsageError(f"--bound {args.bound!r} is unknown: choose one of {', '.join(BOUNDS)}")
    if args.protocol not in PROTOCOLS:
        raise UsageError(f"--protocol {args.protocol!r} is unknown: choose exact or official")
    for name in ("mc_samples", "batch_size", "max_examples"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise UsageError(f"--{name} must be ≥ 1, got {getattr(args, name)}")
    device = pick_device(args.device)
    ckpt = load_checkpoint(args.checkpoint, device)
    if ckpt.config.task is not None:
        raise UsageError(
            f"--checkpoint {ckpt.path} is a seq2seq model (task {ckpt.config.task}): "
            "compute_elbo.py bounds unconditional models only; score it with "
            "predict_downstream_condition.py"
        )
    T = ckpt.config.num_steps
    step = args.eval_step_size or max(1, T // 128)
    if args.bound == "discrete":
        check_step_size(T, step)
    else:
        ckpt.config.noise_schedule().base_alpha_bar_derivative(torch.zeros(1))
    diffusion = ckpt.diffusion(args.protocol)
    data = tokenize_texts(
        load_texts(args.dataset, args.split),
        ckpt.tokenizer,
        ckpt.config.max_length,
        args.dataset,
    )
    if args.max_examples:
        data = data.select(range(min(args.max_examples, len(data))))
    ids = data["input_ids"]
    pad, size = ckpt.tokenizer.pad_token_id, args.batch_size
    batches = (collate(ids[i : i + size], pad) for i in range(0, len(ids), size))
    values, tokens = sequence_bounds(
        diffusion, ckpt.model, batches, args.bound, step, args.mc_samples, args.seed, device,
        progress=True, total=math.ceil(len(ids) / size),
    )  # fmt: skip
    texts = [ckpt.tokenizer.decode(row) for row in ids]
    words = torch.tensor([len(t.split()) for t in texts])
    record = {
        "checkpoint": str(ckpt.path),
        "dataset": args.dataset,
        "split": args.split,
        "bound": args.bound,
        "num_steps": T,
        "eval_step_size": step if args.bound == "discrete" else None,
        "mc_samples": args.mc_samples if args.bound == "continuous" else 1,
        "protocol": args.protocol,
        "valid_bound": not (args.protocol == "official" and diffusion.schedule.spindle),
        "seed": args.seed,
        "given_length": summarise(values, tokens, words),
    }
    if ckpt.lengths is not None:
        record["full_sequence"] = summarise(values, tokens, words, length_nll(ckpt.lengths, tokens))
    if args.dataset == "toy":
        truth = torch.tensor(toy.sentence_nll(texts), dtype=torch.float64)
        record["toy_oracle"] = {
            "true_nats_per_sequence": truth.mean().item(),
            "true_nats_per_token": truth.sum().item() / tokens.sum().item(),
            "grammar_entropy_per_sentence": toy.entropy(),
        }
    print(likelihood_table(record))
    if args.json:
        write_json(args.json, record)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
