"""Likelihood bounds and perplexity of a checkpoint on a dataset split.

python compute_elbo.py --checkpoint outputs/demo/best --dataset toy --split test
"""

from __future__ import annotations

import argparse

from common.checks import check_number, check_output_file, check_seed
from common.errors import UsageError, exit_on_usage_error
from common.files import write_json
from common.runtime import pick_device, quiet_transformers
from corpora import load_texts, tokenize_texts
from diffusion import PROTOCOLS, check_step_size
from evaluation.bounds import BOUNDS
from evaluation.likelihood import likelihood_record
from evaluation.report import likelihood_table
from models import load_checkpoint


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


@exit_on_usage_error(flags={"step_size": "--eval_step_size"})
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
    check_number("--mc_samples", args.mc_samples, 1, 10**5)
    check_number("--batch_size", args.batch_size, 1, 2**16)
    check_number("--max_examples", args.max_examples, 1, 10**9)
    check_number("--eval_step_size", args.eval_step_size, 1, 10**7)
    check_seed("--seed", args.seed)
    if args.json:
        check_output_file(args.json, "--json")
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
        ckpt.config.noise_schedule().require_continuous()
    data = tokenize_texts(
        load_texts(args.dataset, args.split),
        ckpt.tokenizer,
        ckpt.config.max_length,
        args.dataset,
        count_words=True,
    )
    if args.max_examples:
        data = data.select(range(min(args.max_examples, len(data))))
    record = likelihood_record(
        ckpt, data["input_ids"], data["num_words"], args.bound, step, args.mc_samples,
        args.protocol, args.batch_size, args.seed, device, toy_truth=args.dataset == "toy",
    )  # fmt: skip
    record = {"checkpoint": record["checkpoint"], "dataset": args.dataset, "split": args.split,
              **record}  # fmt: skip
    print(likelihood_table(record))
    if args.json:
        write_json(args.json, record)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
