"""Sample text from a checkpoint folder.

python predict.py --checkpoint outputs/demo/best --num_samples 16 --output samples.txt
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common.errors import UsageError, exit_on_usage_error
from common.files import write_json, write_text
from common.runtime import pick_device, quiet_transformers
from diffusion import SAMPLERS
from generation.config import SamplingConfig
from generation.unconditional import generate
from models import load_checkpoint


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, help="a folder written by main.py")
    p.add_argument("--num_samples", type=int, default=16)
    p.add_argument("--length", type=int, default=0, help="tokens per sample; 0 = drawn from "
                   "the training length histogram")  # fmt: skip
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--num_steps", type=int, default=None, help="T' (default: training T)")
    p.add_argument("--step_size", type=int, default=1)
    p.add_argument("--topk", type=int, default=0, help="0 = off")
    p.add_argument("--topp", type=float, default=1.0, help="1 = off")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--sampler", default="ancestral", help=", ".join(SAMPLERS))
    p.add_argument("--semi_ar_windows", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.add_argument("--output", default="samples.txt")
    p.add_argument("--show_process", action="store_true", help="print the first sample's x0 "
                   "predictions step by step")  # fmt: skip
    return p.parse_args(argv)


@exit_on_usage_error
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    quiet_transformers()
    sampling = SamplingConfig.from_namespace(args)
    for name in ("num_samples", "batch_size", "semi_ar_windows"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be ≥ 1, got {getattr(args, name)}")
    if args.length < 0:
        raise UsageError(f"--length must be ≥ 0 (0 = drawn from the histogram), got {args.length}")
    device = pick_device(args.device)
    ckpt = load_checkpoint(args.checkpoint, device)
    if ckpt.config.task is not None:
        raise UsageError(
            f"--checkpoint {ckpt.path} is a seq2seq model (task {ckpt.config.task}): "
            "generate with predict_downstream_condition.py"
        )
    num_steps = sampling.steps(ckpt.config.num_steps)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    result = generate(
        ckpt, args.num_samples, args.length, args.batch_size, sampling, args.semi_ar_windows,
        args.show_process,
    )
    wall = time.perf_counter() - started
    texts = [ckpt.tokenizer.decode(ids, skip_special_tokens=True) for ids in result.ids]
    write_text(output, "".join(f"{t}\n" for t in texts))
    tokens = sum(len(ids) for ids in result.ids)
    settings = {k: v for k, v in vars(args).items() if k not in ("output", "show_process")}
    write_json(
        output.with_name(output.name + ".json"),
        {
            **settings,
            "num_steps": num_steps,
            "checkpoint": str(ckpt.path),
            "network_calls": result.calls,
            "calls_per_sample": result.calls / len(result.calls_per_batch),
            "sampler_used": result.sampler,
            "row_forwards": result.row_forwards,
            "row_forwards_per_sample": result.row_forwards / args.num_samples,
            "tokens": tokens,
            "tokens_per_second": tokens / wall,
            "wall_time_s": wall,
            "device": str(device),
        },
    )
    if args.show_process:
        shown = None
        for step, ids in result.process:
            text = ckpt.tokenizer.decode(ids)
            if text != shown:
                print(f"t={step:5d}  {text}")
                shown = text
    print(f"{args.num_samples} samples ({tokens} tokens) in {wall:.1f} s, {result.calls} network "
          f"calls, {tokens / wall:.1f} tokens/s → {output} (settings in "
          f"{output}.json)")  # fmt: skip
    for text in texts[:3]:
        print(f"  {text}")


if __name__ == "__main__":
    main()
