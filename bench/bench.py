"""Speed and memory of training, likelihood and sampling against the bare network.

python3 -m bench.bench --mode train      # d3pm and mdlm step vs a plain masked-LM step
python3 -m bench.bench --mode elbo       # discrete NELBO vs the network calls it needs
python3 -m bench.bench --mode sample     # ancestral / cached / rowcache / official samplers
python3 -m bench.bench --mode construct  # building the diffusion object (vocab 30522)
python3 -m bench.bench --mode data       # host cost of the data pipeline (bench.data)
python3 -m bench.bench --mode padding    # padding computed, with and without --group_by_length
The paper's size: --preset bert-base --batch_size 128 --length 128 --precision bf16 (the
bert-base architecture built from its config: random weights, no download); on a GPU add
--device cuda, and --compile to torch.compile the encoder (in place, for every side alike;
the warm-up rounds absorb the compilation). --precision bf16 is bf16 autocast, on the CPU too.
Each configuration runs in its own process; turns and FLOP utilisation: docs/performance.md.
Results are printed and appended to bench/results/<mode>.jsonl (or --results).
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import time
from pathlib import Path

import common.stored_help  # noqa: F401 (first: a bare --help prints without loading torch)

# isort: split
import torch

from bench.flops import matmul_peak, utilisation
from bench.harness import (
    RESULTS,
    append_results,
    in_subprocess,
    interleaved,
    paired_ratio,
    peak_memory,
    precision_of,
    precisions_of,
    step_key,
)
from bench.workload import PRESETS, Replay, setup, train_steps
from common.cli import Parser
from common.errors import UsageError, exit_on_usage_error
from common.precision import autocast
from diffusion import (
    AbsorbingDiffusion,
    NoiseSchedule,
    discrete_nelbo,
    make_sampler,
    sample,
    token_information,
)

CONFIGS = {
    "train": ["plain", "d3pm", "mdlm"],
    "elbo": ["elbo"],
    "sample": ["ancestral", "cached", "rowcache", "official"],
    "construct": ["construct"],
}
# modes run by another file's main(argv)
SCRIPTS = {"data": "bench.data", "padding": "bench.padding"}


def run_config(args, name: str) -> dict:
    """One configuration in this process: its peak memory, and its time against its baseline
    (the bare network calls for elbo and sample). ``timing`` times all training objectives
    interleaved in one process instead."""
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    if name == "construct":
        start = time.perf_counter()
        counts = torch.randint(1, 10**6, (30522,))
        diffusion = AbsorbingDiffusion(NoiseSchedule("mutual", 2048, 0.3), 103,
                                       token_information(counts, 0))  # fmt: skip
        seconds = time.perf_counter() - start
        assert diffusion.h.shape == (30522,)
        return {"seconds": seconds, "peak_gib": peak_memory(device)}
    if args.mode == "train":
        return train_timing(args, name, device)
    precision = precision_of(args)
    tokenizer, model, diffusion, x0, target = setup(args)
    model.eval()
    replay = Replay(model)
    result = {}
    g = torch.Generator(device=device)

    def work():
        replay.calls.clear()
        g.manual_seed(0)
        if args.mode == "elbo":
            discrete_nelbo(diffusion, replay, x0, target, args.step_size, g)
        else:
            xT = torch.full_like(x0, tokenizer.mask_token_id)
            result["out"] = sample(diffusion, replay, xT, target,
                                   make_sampler(name, topk=args.topk), args.num_steps,
                                   args.step_size, generator=g)  # fmt: skip

    with torch.no_grad(), autocast(precision, device):
        if not args.replay:  # timed alone: for runs too long to repeat
            times = interleaved({"total": work}, device, args.repeats, args.warmup)
        else:
            work()  # records the calls that the replay repeats
            times = interleaved({"total": work, "bare": replay.replay}, device, args.repeats,
                                args.warmup)  # fmt: skip
    out = {"seconds": statistics.median(times["total"]), "network_calls": len(replay.calls),
           "peak_gib": peak_memory(device), "precision": precision,
           **utilisation(replay.flops(), statistics.median(times["total"]),
                         matmul_peak(device, precision), device)}  # fmt: skip
    if args.replay:
        out["network_seconds"] = statistics.median(times["bare"])
        out["ratio"] = paired_ratio(times["total"], times["bare"])
    if args.mode == "sample":
        out["calls_per_sample"] = result["out"].calls
        out["row_forwards_per_sample"] = result["out"].row_forwards / x0.shape[0]
        out["tokens_per_s"] = x0.numel() / out["seconds"]
        out["samples"] = result["out"].x0.cpu().tolist()
    return out


def train_timing(args, name: str, device: torch.device) -> dict:
    """Training steps of every objective (``name`` ``timing``) or of one, each precision of
    --precision taking turns in this process: per ``step_key``, seconds, tokens/s, MFU against
    this process's matmul peak in that dtype, the time ratio to ``plain`` (of the same
    precision) and, for bf16 beside fp32, its speed-up over fp32 (median of paired rounds)."""
    names = selected(args) if name == "timing" else [name]
    precisions = precisions_of(args)
    steps, counted = train_steps(args, names)
    times = interleaved(steps, device, args.repeats)
    if name != "timing":
        return {"peak_gib": peak_memory(device)}
    peaks = {precision: matmul_peak(device, precision) for precision in precisions}
    tokens, out = args.batch_size * args.length, {}
    for config in names:
        for precision in precisions:
            key = step_key(config, precision, precisions)
            seconds = times[key]
            median = statistics.median(seconds)
            out[key] = {"seconds": median, "tokens_per_s": tokens / median,
                        "precision": precision,
                        **utilisation(counted["flops"](config), median, peaks[precision],
                                      device)}  # fmt: skip
            if "plain" in names:
                plain = times[step_key("plain", precision, precisions)]
                out[key]["time_ratio"] = paired_ratio(seconds, plain)
            if precision == "bf16" and "fp32" in precisions:
                fp32 = times[step_key(config, "fp32", precisions)]
                out[key]["speedup_vs_fp32"] = 1.0 / paired_ratio(seconds, fp32)
                if f"{config}@fp32-eager" in times:
                    eager = times[f"{config}@fp32-eager"]
                    out[key]["speedup_vs_eager_fp32"] = 1.0 / paired_ratio(seconds, eager)
                    eager_median = statistics.median(eager)
                    out[f"{config}@fp32-eager"] = {
                        "seconds": eager_median,
                        "tokens_per_s": tokens / eager_median,
                        "precision": "fp32",
                        "compiled": False,
                    }
    if len(names) == 1:  # the only configuration: its peak is this process's
        for precision in precisions:
            out[step_key(names[0], precision, precisions)]["peak_gib"] = peak_memory(device)
    return out


def build_parser() -> Parser:
    p = Parser(prog="python3 -m bench.bench", description=__doc__)
    a = p.flag
    modes = ", ".join(f"{mode}: python3 -m {module}" for mode, module in SCRIPTS.items())
    a("--mode", choices=[*CONFIGS, *SCRIPTS], required=True, help=f"what to time ({modes})")
    a("--config", default=None, help=argparse.SUPPRESS)
    a("--device", default="cpu", help="cpu, cuda or cuda:N")
    a("--preset", choices=list(PRESETS), default="minilm", help="the denoiser to time")
    a("--batch_size", type=int, default=8, help="sequences per call")
    a("--length", type=int, default=64, help="tokens per sequence")
    a("--num_steps", type=int, default=2048, help="diffusion steps T")
    a("--step_size", type=int, default=16, help="discrete bound / sampling: every N-th t")
    a("--word_freq_lambda", type=float, default=0.3, help="spindle λ")
    a("--repeats", type=int, default=5, help="timed repetitions (the median is reported)")
    a("--warmup", type=int, default=1, help="elbo/sample: warm-up rounds")
    p.boolean("--replay", default=True, help="elbo/sample: also replay the run's network calls "
              "for the ratio (--no-replay: time the run alone)")  # fmt: skip
    listed = "; ".join(f"{mode}: {','.join(names)}" for mode, names in CONFIGS.items())
    a("--configs", "--samplers", default=None,
      help=f"a comma-separated subset of the mode's configurations ({listed})")  # fmt: skip
    a("--topk", type=int, default=0, help="sample mode: top-k filter of the samplers (0: off)")
    a("--precision", choices=["auto", "fp32", "bf16", "both"], default="auto",
      help="bf16: bf16 autocast (CPU too); auto: the scripts' default --bf16 (bf16 where the "
      "device computes it natively: CUDA, CPUs with AVX512-BF16/AMX; else fp32); both "
      "(train mode): fp32 and bf16 steps taking turns in one process")  # fmt: skip
    a("--threads", type=int, default=2, help="torch CPU threads")
    p.boolean("--compile", help="torch.compile the encoder")
    a("--tag", default=None, help="a label written into each result row")
    a("--results", default=None, help="the JSON-lines file the rows are appended to "
      "(default: bench/results/<mode>.jsonl)")  # fmt: skip
    return p


def selected(args) -> list[str]:
    """The mode's configurations that --configs names (all by default)."""
    if not args.configs:
        return CONFIGS[args.mode]
    names = args.configs.split(",")
    unknown = [n for n in names if n not in CONFIGS[args.mode]]
    if unknown:
        raise UsageError(f"--configs {','.join(unknown)} is not a configuration of --mode "
                         f"{args.mode}: choose from {','.join(CONFIGS[args.mode])}")  # fmt: skip
    return names


@exit_on_usage_error
def main() -> None:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--mode")
    known, rest = pre.parse_known_args()
    if known.mode in SCRIPTS:
        importlib.import_module(SCRIPTS[known.mode]).main(rest)
        return
    args = build_parser().parse_args()
    if args.config:
        print(json.dumps(run_config(args, args.config)))
        return
    names = selected(args)
    if args.mode == "train" and len(names) == 1:  # one process times it and takes its peak
        rows = [{"config": names[0]}]
    elif args.mode == "train":
        rows = [{"config": name, **in_subprocess(name)} for name in names]
    else:
        rows = [{"config": name, **in_subprocess(name)} for name in names]
    if args.mode == "sample":  # the same seed: the same samples as ancestral (when it ran)
        first, reference = rows[0], rows[0]["samples"]
        for row in rows:
            row["identical_to_" + first["config"]] = row.pop("samples") == reference
            row["speedup_vs_" + first["config"]] = first["seconds"] / row["seconds"]
    if args.mode == "train":
        times, precisions = in_subprocess("timing"), precisions_of(args)
        rows = [
            {**row, **times[step_key(row["config"], precision, precisions)]}
            for row in rows
            for precision in precisions
        ]
        if names[0] == "plain":
            plain = {row["precision"]: row["peak_gib"] for row in rows if row["config"] == "plain"}
            for row in rows:
                if row["config"] != "plain":
                    row["memory_ratio"] = row["peak_gib"] / plain[row["precision"]]
        rows += [{"config": key, **times[key]} for key in times if key.endswith("@fp32-eager")]
    results = Path(args.results or RESULTS / f"{args.mode}.jsonl")
    append_results(results, rows, ["bench.bench", *sys.argv[1:]], device=args.device,
                   settings={k: v for k, v in vars(args).items() if k != "config"},
                   **({"tag": args.tag} if args.tag else {}))  # fmt: skip
    keys = sorted({k for row in rows for k in row} - {"config"})
    widths = {k: max(16, len(k) + 2) for k in keys}
    first = max(10, *(len(row["config"]) + 2 for row in rows))
    print(f"{'config':{first}}" + "".join(f"{k:>{widths[k]}}" for k in keys))
    for row in rows:
        cells = "".join(
            f"{row[k]:>{widths[k]}.4f}" if isinstance(row.get(k), float)
            else f"{row.get(k, '')!s:>{widths[k]}}"
            for k in keys
        )  # fmt: skip
        print(f"{row['config']:{first}}{cells}")
    print(f"appended to {results}")


if __name__ == "__main__":
    main()
