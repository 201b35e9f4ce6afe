"""Sampling speed of a checkpoint: samples/s, network calls and row forwards per sample,
ancestral vs cached vs rowcache, for several numbers of steps T'.

python3 -m bench.sample --checkpoint outputs/demo/best      # CPU, the demo checkpoint
Prints a table and appends JSON lines to bench/results/sample_sweep.jsonl.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time

import common.stored_help  # noqa: F401 (first: a bare --help prints without loading torch)

# isort: split
import torch

from bench.harness import RESULTS, append_results
from common.cli import Parser
from common.errors import exit_on_usage_error
from generation.config import SamplingConfig
from generation.unconditional import generate
from models import load_checkpoint


def build_parser() -> Parser:
    p = Parser(prog="python3 -m bench.sample", description=__doc__)
    a = p.flag
    a("--checkpoint", default="outputs/demo/best", help="a folder written by main.py")
    a("--device", default="cpu", help="cpu, cuda or cuda:N")
    a("--num_samples", type=int, default=8, help="samples per call")
    a("--length", type=int, default=0, help="tokens per sample; 0: lengths from the checkpoint")
    a("--steps", default="64,512,2048", help="comma-separated numbers of sampling steps T'")
    a("--repeats", type=int, default=3, help="timed repetitions (the median is reported)")
    a("--threads", type=int, default=2, help="torch CPU threads")
    a("--samplers", default="ancestral,cached,rowcache", help="comma-separated samplers")
    a("--step_size", type=int, default=1, help="steps of T' per network call")
    return p


@exit_on_usage_error
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    ckpt = load_checkpoint(args.checkpoint, args.device)
    warm_up = SamplingConfig(sampling_steps=8)
    generate(ckpt, args.num_samples, args.length, args.num_samples, warm_up)
    rows = []
    for num_steps in [int(s) for s in args.steps.split(",")]:
        reference = None
        for sampler in args.samplers.split(","):
            times, calls = [], 0
            for _ in range(args.repeats):
                if args.device == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                sampling = SamplingConfig(sampler=sampler, sampling_steps=num_steps,
                                          step_size=args.step_size, seed=0)  # fmt: skip
                out = generate(ckpt, args.num_samples, args.length, args.num_samples, sampling)
                if args.device == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - start)
                calls = out.calls
            seconds = statistics.median(times)
            reference = reference or (sampler, out.ids, seconds)
            rows.append({"num_steps": num_steps, "sampler": sampler, "seconds": seconds,
                         "samples_per_s": args.num_samples / seconds,
                         "calls_per_sample": calls,
                         "row_forwards_per_sample": out.row_forwards / args.num_samples,
                         f"speedup_vs_{reference[0]}": reference[2] / seconds,
                         f"identical_to_{reference[0]}": out.ids == reference[1]})  # fmt: skip
    results = RESULTS / "sample_sweep.jsonl"
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {args.threads} threads"
    append_results(results, rows, ["bench.sample", *sys.argv[1:]], settings=vars(args),
                   machine=machine)  # fmt: skip
    print(f"{'T_prime':>8} {'sampler':>10} {'seconds':>10} {'samples/s':>10} {'calls/sample':>13}"
          f" {'rows/sample':>12} {'speedup':>8} {'identical':>9}")  # fmt: skip
    for r in rows:
        speedup = next(v for k, v in r.items() if k.startswith("speedup_vs_"))
        same = next(v for k, v in r.items() if k.startswith("identical_to_"))
        print(f"{r['num_steps']:>8} {r['sampler']:>10} {r['seconds']:>10.2f} "
              f"{r['samples_per_s']:>10.3f} {r['calls_per_sample']:>13} "
              f"{r['row_forwards_per_sample']:>12.1f} {speedup:>8.2f} {same!s:>9}")  # fmt: skip
    print(f"appended to {results}")


if __name__ == "__main__":
    main()
