"""The autoregressive twin's costs, in one process: its training step against a plain
masked-LM step of the same backbone and batch, and left-to-right sampling with transformers'
key/value cache against the same loop without it.

python3 -m bench.autoregressive                  # MiniLM-L6, CPU, batch 32 x 32 tokens
python3 -m bench.autoregressive --length 128     # sampling at length 128 (the issue's target)

Prints the figures and appends one JSON line to bench/results/autoregressive.jsonl.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import common.stored_help  # noqa: F401 (first: a bare --help prints without loading torch)

# isort: split
import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer

from bench.bench import interleaved, paired_ratio
from bench.harness import RESULTS, append_results
from common.cli import Parser
from common.precision import autocast, resolve_precision
from generation.autoregressive import generate_left_to_right
from generation.config import SamplingConfig
from models import Checkpoint, DiffusionConfig, build_model, resolve_model_name
from models.causal import ar_loss
from training.optim import adamw


def build_parser() -> Parser:
    p = Parser(prog="python3 -m bench.autoregressive", description=__doc__.splitlines()[0])
    a = p.flag
    a("--model_name_or_path", default="minilm-l6", help="the backbone")
    a("--device", default="cpu", help="cpu, cuda or cuda:N")
    a("--batch_size", type=int, default=32, help="sequences per training step")
    a("--max_length", type=int, default=32, help="tokens per training sequence")
    a("--repeats", type=int, default=10, help="timed training steps of each kind")
    a("--length", type=int, default=128, help="tokens per sample (sampling)")
    a("--num_samples", type=int, default=32, help="samples per generate call")
    a("--sample_repeats", type=int, default=3, help="timed generate calls of each kind")
    a("--threads", type=int, default=2, help="torch CPU threads")
    p.boolean("--bf16", help="bf16 autocast where the device computes it natively")
    a("--results", default=None, help="default: bench/results/autoregressive.jsonl")
    return p


def training_steps(args, tokenizer, device: torch.device, precision: str) -> dict:
    """Seconds per step, interleaved: ``ar`` (the twin's next-token step) and ``plain`` (the
    backbone's masked-LM step, 15% masked), both with AdamW, on one random batch."""
    backbone = resolve_model_name(args.model_name_or_path)
    config = DiffusionConfig(objective="ar", word_freq_lambda=0.0, max_length=args.max_length)
    twin = build_model(backbone, tokenizer, config, from_scratch=False).to(device).train()
    mlm = AutoModelForMaskedLM.from_pretrained(backbone).to(device).train()
    low, high = 1000, len(tokenizer)  # ordinary wordpieces, no special ids
    x0 = torch.randint(low, high, (args.batch_size, args.max_length), device=device)
    target = torch.ones_like(x0, dtype=torch.bool)
    g = torch.Generator(device=device).manual_seed(0)
    optimizers = {"ar": adamw(twin, 1e-5, 0.0, device), "plain": adamw(mlm, 1e-5, 0.0, device)}

    def ar() -> None:
        with autocast(precision, device):
            loss = ar_loss(twin, x0, target).loss
        loss.backward()
        optimizers["ar"].step()
        optimizers["ar"].zero_grad(set_to_none=True)

    def plain() -> None:
        masked = torch.rand(x0.shape, device=device, generator=g) < 0.15
        with autocast(precision, device):
            inputs = x0.masked_fill(masked, tokenizer.mask_token_id)
            loss = mlm(input_ids=inputs, labels=x0.masked_fill(~masked, -100)).loss
        loss.backward()
        optimizers["plain"].step()
        optimizers["plain"].zero_grad(set_to_none=True)

    times = interleaved({"plain": plain, "ar": ar}, device, args.repeats)
    return {
        "plain_s": statistics.median(times["plain"]),
        "ar_s": statistics.median(times["ar"]),
        "ar_over_plain": paired_ratio(times["ar"], times["plain"]),
    }


def sampling(args, tokenizer, device: torch.device, precision: str) -> dict:
    """Samples per second at ``--length`` tokens, with and without the key/value cache (the
    same samples: one seed), on the pretrained twin (its weights do not change the cost)."""
    backbone = resolve_model_name(args.model_name_or_path)
    config = DiffusionConfig(objective="ar", word_freq_lambda=0.0, max_length=args.length)
    twin = build_model(backbone, tokenizer, config, from_scratch=False).to(device).eval()
    ckpt = Checkpoint(twin, tokenizer, config, None, Path(backbone))
    settings = SamplingConfig(seed=0)
    n = args.num_samples
    rates = {}
    for cache in (True, False):
        generate_left_to_right(ckpt, n, 4, n, settings, use_cache=cache)  # warm-up
        times = []
        for _ in range(args.sample_repeats):
            start = time.perf_counter()
            with autocast(precision, device):
                generate_left_to_right(ckpt, n, args.length, n, settings, use_cache=cache)
            times.append(time.perf_counter() - start)
        rates["cached" if cache else "uncached"] = n / statistics.median(times)
    return {
        "cached_samples_per_s": rates["cached"],
        "uncached_samples_per_s": rates["uncached"],
        "cache_speedup": rates["cached"] / rates["uncached"],
    }


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    precision = resolve_precision(args.bf16, device)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_name(args.model_name_or_path))
    row = {
        "threads": args.threads,
        "precision": precision,
        "model": args.model_name_or_path,
        "batch": [args.batch_size, args.max_length],
        "training": training_steps(args, tokenizer, device, precision),
        "sample_length": args.length,
        "num_samples": args.num_samples,
        "sampling": sampling(args, tokenizer, device, precision),
    }
    t, s = row["training"], row["sampling"]
    print(f"training step ({args.batch_size} x {args.max_length}, {precision}): plain MLM "
          f"{t['plain_s'] * 1e3:.0f} ms, AR {t['ar_s'] * 1e3:.0f} ms, AR / plain "
          f"{t['ar_over_plain']:.3f} (median of paired rounds)")  # fmt: skip
    print(f"sampling {args.num_samples} x {args.length} tokens: cached "
          f"{s['cached_samples_per_s']:.2f} samples/s, uncached "
          f"{s['uncached_samples_per_s']:.2f} samples/s, {s['cache_speedup']:.1f}x")  # fmt: skip
    results = Path(args.results or RESULTS / "autoregressive.jsonl")
    append_results(results, [row], ["bench.autoregressive", *sys.argv[1:]], device=args.device)
    print(f"appended to {results}")
    return row


if __name__ == "__main__":
    main()
