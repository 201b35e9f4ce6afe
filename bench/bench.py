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
Each configuration runs in its own process (so the CPU peak RSS is its own); the training
objectives are timed taking turns in one more process, and each sampler or bound takes turns
with its bare network calls, so a drift in the machine's speed hits both alike; ratios are
medians over rounds of the within-round ratio.
Model FLOP utilisation (mfu): the model's matrix-multiply FLOPs per second (a training step is
3 forward passes: the encoder at every position, the masked-LM head at the scored ones) over
the peak of a square matrix product measured in the same process and dtype; on CUDA also over
the device's bf16 dense datasheet peak (mfu_datasheet).
Results are printed and appended to bench/results/<mode>.jsonl (or --results).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import importlib
import json
import statistics
import sys
import time
from pathlib import Path

import common.stored_help  # noqa: F401 (first: a bare --help prints without loading torch)

# isort: split
import torch

from bench.flops import forward_flops, matmul_peak, utilisation
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
from common.cli import Parser
from common.errors import UsageError, exit_on_usage_error
from common.precision import autocast
from diffusion import (
    AbsorbingDiffusion,
    NoiseSchedule,
    d3pm_loss,
    discrete_nelbo,
    make_sampler,
    mdlm_loss,
    sample,
    token_information,
)
from models import DiffusionConfig, build_model, resolve_model_name
from models.checkpoint import denoiser_from
from training.optim import adamw

PRESETS = {"minilm": "minilm-l6", "bert-base": "the bert-base architecture, random weights"}
CONFIGS = {
    "train": ["plain", "d3pm", "mdlm"],
    "elbo": ["elbo"],
    "sample": ["ancestral", "cached", "rowcache", "official"],
    "construct": ["construct"],
}
# modes run by another file's main(argv)
SCRIPTS = {"data": "bench.data", "padding": "bench.padding"}


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

    def flops(self) -> float:
        """Forward FLOPs of the recorded calls (``forward_flops``)."""
        config, extra = self.model.mlm.config, self.model.extra_positions
        scored = torch.stack([masked.sum() for _, _, masked in self.calls]).tolist()
        return sum(
            forward_flops(config, xt.shape[0], xt.shape[1] + extra, n)
            for (xt, _, _), n in zip(self.calls, scored, strict=True)
        )


def build(args, tokenizer, config: DiffusionConfig):
    """The denoiser of the preset: MiniLM-L6's weights, or bert-base built from its config."""
    if args.preset == "minilm":
        return build_model(resolve_model_name(PRESETS["minilm"]), tokenizer, config, False)
    from transformers import AutoModelForMaskedLM, BertConfig

    mlm = AutoModelForMaskedLM.from_config(BertConfig(vocab_size=len(tokenizer)))
    return denoiser_from(mlm, tokenizer, config, "bert-base")


def setup(args):
    from transformers import AutoTokenizer
    from transformers.utils import logging

    logging.set_verbosity_error()
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_name("minilm-l6"))  # bert-base vocab
    config = DiffusionConfig(num_steps=args.num_steps, word_freq_lambda=args.word_freq_lambda,
                             max_length=max(args.length, 8))  # fmt: skip
    torch.manual_seed(0)
    model = build(args, tokenizer, config).to(args.device)
    if args.compile:
        model.compile_encoder()
    counts = torch.randint(1, 10**6, (model.mlm.config.vocab_size,))
    diffusion = config.diffusion(counts, tokenizer.mask_token_id, tokenizer.pad_token_id)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randint(1000, 30000, (args.batch_size, args.length), generator=g).to(args.device)
    target = torch.ones_like(x0, dtype=torch.bool)
    return tokenizer, model, diffusion, x0, target


def train_steps(args, names: list[str]) -> tuple[dict, dict]:
    """One optimizer step per named objective and precision (``step_key``) on the same network
    and batch, and a function of a name giving the mean model FLOPs of that objective's steps
    so far."""
    device = torch.device(args.device)
    tokenizer, model, diffusion, x0, target = setup(args)
    optimizer = adamw(model, 1e-5, 0.0, device)
    g = torch.Generator(device=device)
    config, extra = model.mlm.config, model.extra_positions
    plain = 3 * forward_flops(config, x0.shape[0], x0.shape[1], x0.numel())
    scored = {name: [] for name in names}  # per step: the positions the head scored (on device)
    current = []

    def count(module, args, kwargs) -> None:
        masked = args[2] if len(args) > 2 else kwargs["masked"]
        scored[current[0]].append(masked.sum())

    model.register_forward_pre_hook(count, with_kwargs=True)

    def flops(name: str) -> float:
        if name == "plain":
            return plain
        per_step = torch.stack(scored[name]).double().mean().item()
        return 3 * forward_flops(config, x0.shape[0], x0.shape[1] + extra, per_step)

    calls = collections.Counter()

    def step(name: str, precision: str, eager: bool = False) -> None:
        """The k-th step of every precision draws its times and masks from seed k, so that
        the precisions' times are paired round by round. ``eager``: the compiled encoder run
        eagerly (``torch.compiler.set_stance``), the step as it is without --compile."""
        current[:] = [name]
        g.manual_seed(calls[name, precision, eager])
        calls[name, precision, eager] += 1
        stance = torch.compiler.set_stance("force_eager") if eager else contextlib.nullcontext()
        with stance, autocast(precision, device):
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
    precisions = precisions_of(args)
    steps = {
        step_key(name, precision, precisions): functools.partial(step, name, precision)
        for name in names
        for precision in precisions
    }
    if args.compile and "fp32" in precisions and len(precisions) > 1:
        for name in names:  # the default without --compile, for bf16's speed-up over it
            steps[f"{name}@fp32-eager"] = functools.partial(step, name, "fp32", eager=True)
    return steps, {"flops": flops}


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
