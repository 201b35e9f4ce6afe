"""Speed and memory of training, likelihood and sampling against the bare network.

python bench/bench.py --mode train      # d3pm and mdlm step vs a plain masked-LM step
python bench/bench.py --mode elbo       # discrete NELBO vs the network calls it needs
python bench/bench.py --mode sample     # ancestral / cached / rowcache vs their network calls
python bench/bench.py --mode construct  # building the diffusion object (vocab 30522)
python bench/bench.py --mode data       # host cost of the data pipeline (bench/data.py)
Add --device cuda --preset bert-base on a GPU, and --compile to torch.compile the encoder (in
place, for every side alike; the warm-up rounds absorb the compilation). Each configuration
runs in its own process (so the CPU peak RSS is its own); the training objectives are timed
taking turns in one more process, and each sampler or bound takes turns with its bare network
calls, so a drift in the machine's speed hits both alike; ratios are medians over rounds of
the within-round ratio.
Results are printed and appended to bench/results/<mode>.jsonl.
"""

# Over 300 lines: one script for the five benchmark modes, which share the timing, replay and
# memory helpers.

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common.cli import Parser  # noqa: E402
from diffusion import (  # noqa: E402
    AbsorbingDiffusion,
    NoiseSchedule,
    d3pm_loss,
    discrete_nelbo,
    make_sampler,
    mdlm_loss,
    sample,
    token_information,
)
from models import DiffusionConfig, build_model, resolve_model_name  # noqa: E402

PRESETS = {"minilm": "minilm-l6", "bert-base": "bert-base-uncased"}
CONFIGS = {
    "train": ["plain", "d3pm", "mdlm"],
    "elbo": ["elbo"],
    "sample": ["ancestral", "cached", "rowcache"],
    "construct": ["construct"],
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def interleaved(fns: dict, device: torch.device, repeats: int, warmup: int = 2) -> dict:
    """Seconds of each callable, ``repeats`` rounds after ``warmup`` rounds, the callables
    taking turns within a round so that a drift in the machine's speed hits them alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def paired_ratio(times: list[float], baseline: list[float]) -> float:
    """Median over rounds of time / baseline time of the same round (robust to drift)."""
    return statistics.median(a / b for a, b in zip(times, baseline, strict=True))


def peak_memory(device: torch.device) -> float:
    """GiB: CUDA max allocated, else this process's max RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


class Replay:
    """Wraps the denoiser, records its inputs, and can replay exactly those calls."""

    def __init__(self, model):
        self.model, self.calls = model, []

    def __call__(self, xt, u, masked):
        self.calls.append((xt.clone(), u.clone(), masked.clone()))
        return self.model(xt, u, masked)

    def replay(self) -> None:
        for xt, u, masked in self.calls:
            self.model(xt, u, masked)


def setup(args):
    from transformers import AutoTokenizer
    from transformers.utils import logging

    logging.set_verbosity_error()
    path = resolve_model_name(PRESETS[args.preset])
    tokenizer = AutoTokenizer.from_pretrained(path)
    config = DiffusionConfig(num_steps=args.num_steps, word_freq_lambda=args.word_freq_lambda,
                             max_length=max(args.length, 8))  # fmt: skip
    torch.manual_seed(0)
    model = build_model(path, tokenizer, config, from_scratch=False).to(args.device)
    if args.compile:
        model.mlm.base_model.compile()
    counts = torch.randint(1, 10**6, (model.mlm.config.vocab_size,))
    diffusion = config.diffusion(counts, tokenizer.mask_token_id, tokenizer.pad_token_id)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randint(1000, 30000, (args.batch_size, args.length), generator=g).to(args.device)
    target = torch.ones_like(x0, dtype=torch.bool)
    return tokenizer, model, diffusion, x0, target


def train_steps(args, names: list[str]) -> tuple[dict, int, int]:
    """One optimizer step per named objective on the same network and batch."""
    device = torch.device(args.device)
    tokenizer, model, diffusion, x0, target = setup(args)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device.type == "cuda")
    g = torch.Generator(device=device).manual_seed(0)

    def step(name: str) -> None:
        with autocast:
            if name == "plain":
                masked = torch.rand(x0.shape, device=device, generator=g) < 0.15
                labels = x0.masked_fill(~masked, -100)
                inputs = x0.masked_fill(masked, tokenizer.mask_token_id)
                loss = model.mlm(input_ids=inputs, labels=labels).loss
            elif name == "d3pm":
                loss = d3pm_loss(diffusion, model, x0, target, 0.01, generator=g).loss
            else:
                loss = mdlm_loss(diffusion, model, x0, target, generator=g).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    model.train()
    params = sum(p.numel() for p in model.parameters())
    return {name: functools.partial(step, name) for name in names}, x0.numel(), params


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
        names = CONFIGS["train"] if name == "timing" else [name]
        steps, tokens, params = train_steps(args, names)
        times = interleaved(steps, device, args.repeats)
        if name != "timing":
            return {"peak_gib": peak_memory(device)}
        out = {}
        for config, seconds in times.items():
            median = statistics.median(seconds)
            out[config] = {"seconds": median, "tokens_per_s": tokens / median,
                           "time_ratio": paired_ratio(seconds, times["plain"])}  # fmt: skip
            if device.type == "cuda":
                out[config]["mfu"] = 6 * params * tokens / median / 989e12
        return out
    tokenizer, model, diffusion, x0, target = setup(args)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
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
            result["out"] = sample(diffusion, replay, xT, target, make_sampler(name),
                                   args.num_steps, args.step_size, generator=g)  # fmt: skip

    with torch.no_grad(), autocast:
        if not args.replay:  # timed alone: for runs too long to repeat
            times = interleaved({"total": work}, device, args.repeats, args.warmup)
        else:
            work()  # records the calls that the replay repeats
            times = interleaved({"total": work, "bare": replay.replay}, device, args.repeats,
                                args.warmup)  # fmt: skip
    out = {"seconds": statistics.median(times["total"]), "network_calls": len(replay.calls),
           "peak_gib": peak_memory(device)}  # fmt: skip
    if args.replay:
        out["network_seconds"] = statistics.median(times["bare"])
        out["ratio"] = paired_ratio(times["total"], times["bare"])
    if args.mode == "sample":
        out["calls_per_sample"] = result["out"].calls
        out["row_forwards_per_sample"] = result["out"].row_forwards / x0.shape[0]
        out["tokens_per_s"] = x0.numel() / out["seconds"]
        out["samples"] = result["out"].x0.cpu().tolist()
    return out


def in_subprocess(config: str) -> dict:
    """Run one configuration in a fresh process (its own peak memory); its JSON result."""
    command = [sys.executable, __file__, *sys.argv[1:], "--config", config]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO)
    if done.returncode:
        sys.exit(f"{config} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def build_parser() -> Parser:
    p = Parser(description=__doc__)
    a = p.flag
    a("--mode", choices=[*CONFIGS, "data"], required=True,
      help="what to time (data: bench/data.py)")  # fmt: skip
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
    a("--samplers", default=None, help="sample mode: a comma-separated subset of "
      + ",".join(CONFIGS["sample"]))  # fmt: skip
    a("--threads", type=int, default=2, help="torch CPU threads")
    p.boolean("--compile", help="torch.compile the encoder")
    return p


def main() -> None:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--mode")
    known, rest = pre.parse_known_args()
    if known.mode == "data":
        import importlib.util

        spec = importlib.util.spec_from_file_location("bench_data", REPO / "bench" / "data.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.main(rest)
        return
    args = build_parser().parse_args()
    if args.config:
        print(json.dumps(run_config(args, args.config)))
        return
    names = CONFIGS[args.mode]
    if args.mode == "sample" and args.samplers:
        names = args.samplers.split(",")
    rows = [{"config": name, **in_subprocess(name)} for name in names]
    if args.mode == "sample":  # the same seed: the same samples as ancestral (when it ran)
        first, reference = rows[0], rows[0]["samples"]
        for row in rows:
            row["identical_to_" + first["config"]] = row.pop("samples") == reference
            row["speedup_vs_" + first["config"]] = first["seconds"] / row["seconds"]
    if args.mode == "train":
        times = in_subprocess("timing")
        for row in rows:
            row.update(times[row["config"]])
        plain = rows[0]
        for row in rows[1:]:
            row["memory_ratio"] = row["peak_gib"] / plain["peak_gib"]
    stamp = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine":
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
             + (f", {torch.cuda.get_device_name()}" if args.device == "cuda" else ""),
             "command": " ".join(["python", "bench/bench.py", *sys.argv[1:]]),
             "settings": {k: v for k, v in vars(args).items() if k != "config"}}  # fmt: skip
    results = REPO / "bench" / "results" / f"{args.mode}.jsonl"
    with results.open("a") as f:
        for row in rows:
            f.write(json.dumps({**stamp, **row}) + "\n")
    keys = sorted({k for row in rows for k in row} - {"config"})
    print(f"{'config':10}" + "".join(f"{k:>16}" for k in keys))
    for row in rows:
        cells = "".join(
            f"{row[k]:>16.4f}" if isinstance(row.get(k), float) else f"{row.get(k, '')!s:>16}"
            for k in keys
        )  # fmt: skip
        print(f"{row['config']:10}{cells}")
    print(f"appended to {results}")


if __name__ == "__main__":
    main()
